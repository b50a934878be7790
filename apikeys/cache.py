"""Django's Redis cache backend with a bounded wait and a circuit breaker on every Redis command.

``CACHE_URL=redis://...`` selects :class:`ResilientRedisCache` (see settings). Its
connections carry ``socket_timeout`` and ``socket_connect_timeout`` of
``OMIKEYS_CACHE_TIMEOUT`` seconds, and every command, pipeline and script goes
through the ``cache`` breaker of :mod:`apikeys.dependencies`: a hung or refusing
Redis costs at most that timeout for the first few calls, then nothing until the
breaker lets a trial call through. A failure reaches the caller as
:class:`CacheUnavailable`, which callers of the cache (the throttles) treat as
"no answer": they let the request through.

The guard wraps the redis-py client (``execute_command`` and ``Pipeline.execute``),
so code that takes the client from the backend (``cache._cache.get_client()``) is
guarded too.
"""

import redis
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.client import Pipeline

from . import dependencies

# What redis-py raises when Redis does not answer: refused, reset, timed out, loading.
FAILURES = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class CacheUnavailable(dependencies.DependencyUnavailable, redis.exceptions.ConnectionError):
    """Redis did not answer in time, refused, or its breaker is open.

    Also a redis-py ``ConnectionError``, so code written against redis-py's errors
    handles it as it would the original.
    """

    def __init__(self, dependency: str = dependencies.CACHE, retry_after: int | None = None):
        dependencies.DependencyUnavailable.__init__(self, dependency, retry_after)


def _guarded(call, *args, **kwargs):
    with dependencies.guarding(dependencies.CACHE, FAILURES, unavailable=CacheUnavailable):
        return call(*args, **kwargs)


class GuardedPipeline(Pipeline):
    """A redis-py pipeline whose round trips go through the cache breaker."""

    def execute(self, raise_on_error=True):
        return _guarded(super().execute, raise_on_error)

    def immediate_execute_command(self, *args, **options):
        return _guarded(super().immediate_execute_command, *args, **options)


class GuardedRedis(redis.Redis):
    """A redis-py client whose commands and pipelines go through the cache breaker."""

    def execute_command(self, *args, **options):
        return _guarded(super().execute_command, *args, **options)

    def pipeline(self, transaction=True, shard_hint=None):
        return GuardedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


class GuardedRedisCacheClient(RedisCacheClient):
    """Django's Redis cache client, using :class:`GuardedRedis`."""

    def __init__(self, servers, **options):
        super().__init__(servers, **options)
        self._client = GuardedRedis


class ResilientRedisCache(RedisCache):
    """``django.core.cache.backends.redis.RedisCache`` whose every command is bounded and guarded.

    Configured like Django's Redis backend (``LOCATION``, ``OPTIONS`` passed to the
    connection pool); settings add the timeouts.
    """

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = GuardedRedisCacheClient
