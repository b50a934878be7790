"""Dependencies (database, cache, Firebase): a circuit breaker each, and the one place that observes them.

Every call to a dependency goes through :func:`guard` (or its breaker directly), which
counts failures in a `pybreaker <https://github.com/danielfm/pybreaker>`_ circuit
breaker. After ``OMIKEYS_BREAKER_FAILURES`` consecutive failures the breaker opens and
calls fail at once with :class:`DependencyUnavailable`, without waiting on the
dependency, for ``OMIKEYS_BREAKER_RESET_SECONDS``; then one call is let through (the
breaker is "half-open") and its result closes or reopens it.

:class:`DependencyListener` is the one observer of every breaker: it writes one log line
when a dependency's outage begins and one when it ends (never one per failed request),
and it is where counters of dependency errors and the breakers' states are kept.

Breakers live in each process (each gunicorn worker has its own). Calls go through
pybreaker's ``calling()`` context manager, which takes the breaker's lock only to decide
and to record, not for the length of the call (``CircuitBreaker.call`` holds it
throughout, so in a threaded server one hung call would make every other thread wait).
"""

import datetime
import logging
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

import pybreaker
from django.conf import settings
from django.db.backends.signals import connection_created
from django.dispatch import receiver

from . import metrics

logger = logging.getLogger(__name__)

DATABASE = "database"
CACHE = "cache"
FIREBASE = "firebase"
NAMES = (DATABASE, CACHE, FIREBASE)

# What each outage means for users, for the one log line that reports it.
CONSEQUENCES = {
    DATABASE: "API requests answer 503 and pages show 'temporarily unavailable'",
    CACHE: "throttles are not applied (they fail open)",
    FIREBASE: "signing in and managing keys answer 503; verifying API keys is unaffected",
}


class DependencyUnavailable(Exception):
    """A dependency failed, timed out, or its breaker is open; the caller answers 503 or degrades.

    ``dependency`` is one of :data:`NAMES`; ``retry_after`` the whole seconds until the
    breaker next lets a call through (at least 1), for a ``Retry-After`` header.
    The message names the dependency only, never the request's data.
    """

    def __init__(self, dependency: str, retry_after: int | None = None):
        super().__init__(f"{dependency} is unavailable")
        self.dependency = dependency
        self.retry_after = retry_after if retry_after is not None else retry_after_seconds(dependency)


class DependencyListener(pybreaker.CircuitBreakerListener):
    """The one observer of the breakers: outage and recovery log lines, error counts, states.

    An outage is logged once, when a closed breaker opens (WARNING, with the error's
    type and message, never a traceback), and its end once, when the breaker closes
    again (INFO, with the outage's length). A failed trial while half-open reopens the
    breaker without a new line. ``errors`` counts failed calls per dependency since the
    process started; ``states`` holds each breaker's state ("closed", "open",
    "half-open"). Both are also published as the Prometheus metrics
    ``omikeys_dependency_errors_total`` and ``omikeys_dependency_breaker_state``.
    """

    def __init__(self):
        self.errors = dict.fromkeys(NAMES, 0)
        self.states = dict.fromkeys(NAMES, pybreaker.STATE_CLOSED)
        self.last_error: dict[str, str] = {}
        self._outage_started: dict[str, float] = {}

    def failure(self, cb, exc):
        self.errors[cb.name] = self.errors.get(cb.name, 0) + 1
        metrics.record_dependency_error(cb.name)
        self.last_error[cb.name] = str(exc) if isinstance(exc, DependencyFailure) else describe(exc)

    def state_change(self, cb, old_state, new_state):
        name = cb.name
        self.states[name] = new_state.name
        metrics.set_breaker_state(name, new_state.name)
        if new_state.name == pybreaker.STATE_OPEN and name not in self._outage_started:
            self._outage_started[name] = time.monotonic()
            logger.warning(
                "%s unavailable after %d failed calls (%s): %s; calls fail fast for %g s, then one is retried",
                name,
                cb.fail_max,
                self.last_error.get(name, "unknown error"),
                CONSEQUENCES.get(name, "requests that need it answer 503"),
                cb.reset_timeout,
            )
        elif new_state.name == pybreaker.STATE_CLOSED and name in self._outage_started:
            lasted = time.monotonic() - self._outage_started.pop(name)
            logger.info("%s available again after %.1f s", name, lasted)


def describe(exc: BaseException) -> str:
    """``"ConnectionError: Connection refused"``: an error's type and first line, for a log line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


listener = DependencyListener()
_breakers: dict[str, pybreaker.CircuitBreaker] = {}
# One per dependency: held by the call trying the dependency while its breaker is not closed.
_trial_locks: dict[str, threading.Lock] = {}


def breaker(name: str) -> pybreaker.CircuitBreaker:
    """The process's breaker for dependency ``name``, made on first use from the settings.

    Only :class:`DependencyFailure` counts as a failure: a dependency's "no such user"
    or "missing key" answers are answers, not outages.
    """
    found = _breakers.get(name)
    if found is None:
        found = _breakers[name] = pybreaker.CircuitBreaker(
            fail_max=settings.OMIKEYS_BREAKER_FAILURES,
            reset_timeout=settings.OMIKEYS_BREAKER_RESET_SECONDS,
            exclude=[lambda exc: not isinstance(exc, DependencyFailure)],
            listeners=[listener],
            name=name,
        )
    return found


def reset() -> None:
    """Forget every breaker and outage (tests, and after settings change)."""
    _breakers.clear()
    listener.__init__()


class DependencyFailure(Exception):
    """Raised inside a guarded call to report that the dependency itself failed (wraps the cause)."""


def guard(name: str, call: Callable, *args, failures: tuple[type[BaseException], ...] = (), **kwargs):
    """Run ``call(*args, **kwargs)`` through dependency ``name``'s breaker; see :func:`guarding`."""
    with guarding(name, failures):
        return call(*args, **kwargs)


@contextmanager
def guarding(
    name: str,
    failures: tuple[type[BaseException], ...],
    unavailable: type[DependencyUnavailable] = DependencyUnavailable,
):
    """Run the block through dependency ``name``'s breaker.

    An exception of a type in ``failures`` (the dependency's transport errors and
    timeouts) counts against the breaker and becomes ``unavailable`` (a
    :class:`DependencyUnavailable`); with the breaker open the block does not run and
    the same exception is raised at once. Any other exception passes through
    unchanged and counts as an answer. While the breaker is not closed, only one call
    at a time runs the block (the half-open trial); a concurrent call raises
    ``unavailable`` at once instead of also trying.
    """
    cb = breaker(name)
    trial = None
    if cb.current_state != pybreaker.STATE_CLOSED:
        # Open or half-open: at most one call at a time may be the trial (pybreaker lets
        # every concurrent call through while half-open); the others fail at once rather
        # than each waiting on a dependency that may still be down.
        trial = _trial_locks.setdefault(name, threading.Lock())
        if not trial.acquire(blocking=False):
            raise unavailable(name)
    try:
        with cb.calling():
            try:
                yield
            except DependencyUnavailable:
                raise
            except failures as exc:
                raise DependencyFailure(describe(exc)) from exc
    except DependencyFailure as exc:
        raise unavailable(name) from exc.__cause__
    except pybreaker.CircuitBreakerError as exc:
        raise unavailable(name) from exc
    finally:
        if trial is not None:
            trial.release()


class OutageAlreadyReported(logging.Filter):
    """A logging filter that drops records carrying a :class:`DependencyUnavailable`.

    :class:`DependencyListener` writes one line per outage; callers that log the
    exception they caught (with its traceback) on every request would repeat it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DependencyUnavailable)


def retry_after_seconds(name: str) -> int:
    """Whole seconds until ``name``'s breaker lets a call through again; the reset time when closed."""
    cb = _breakers.get(name)
    reset_timeout = settings.OMIKEYS_BREAKER_RESET_SECONDS
    if cb is not None and cb.current_state == pybreaker.STATE_OPEN and cb._state_storage.opened_at:
        opened_at = cb._state_storage.opened_at
        elapsed = (datetime.datetime.now(datetime.UTC) - opened_at).total_seconds()
        return max(1, int(reset_timeout - elapsed + 0.999))
    return max(1, int(reset_timeout + 0.999))


def is_open(name: str) -> bool:
    """True while ``name``'s breaker refuses calls (open, and its reset time not yet reached)."""
    cb = _breakers.get(name)
    return cb is not None and cb.current_state == pybreaker.STATE_OPEN


def count_database_errors(execute, sql, params, many, context):
    """Django execute wrapper: count a query that fails with ``OperationalError`` or
    ``InterfaceError`` as one ``database`` dependency error, then re-raise it.

    These are the database's own failures while a statement runs: a statement
    timeout (``OMIKEYS_DATABASE_TIMEOUT`` on PostgreSQL), a connection dropped
    mid-request, SQLite's write lock not granted in time. Failures to connect are
    counted by the ``database`` breaker instead (:func:`guarding`), which never sees a
    query. This is the one place query errors are counted; they do not move the
    breaker, which guards connecting only.
    """
    from django.db import InterfaceError, OperationalError

    try:
        return execute(sql, params, many, context)
    except (OperationalError, InterfaceError):
        metrics.record_dependency_error(DATABASE)
        raise


@receiver(connection_created, dispatch_uid="omikeys-count-database-errors")
def install_database_error_counter(sender, connection, **kwargs) -> None:
    """Put :func:`count_database_errors` on each new database connection, once."""
    if count_database_errors not in connection.execute_wrappers:
        # First in the list: Django's ``connection.execute_wrapper()`` removes the last one.
        connection.execute_wrappers.insert(0, count_database_errors)
