"""Django's PostgreSQL backend, bounded: a circuit breaker on connecting, and closed connections dropped early.

Settings select it (``ENGINE = "apikeys.backends.postgresql"``) for every
``postgres://`` ``DATABASE_URL``, with ``connect_timeout`` and ``statement_timeout``
from ``OMIKEYS_DATABASE_CONNECT_TIMEOUT`` and ``OMIKEYS_DATABASE_TIMEOUT``.

* Opening a connection goes through the ``database`` breaker
  (:mod:`apikeys.dependencies`): with the server down or unreachable, after a few
  failed attempts requests fail at once with :class:`DatabaseUnavailable` (503)
  instead of each waiting for the connect timeout, and the outage is logged once.
* Workers keep their connection between requests (``CONN_MAX_AGE``). When
  PostgreSQL restarts it closes every connection, and the next query on a kept one
  would fail. Before each request (Django's ``close_old_connections``), a kept
  connection whose socket has become readable while idle (the server's goodbye and
  end of file) is closed, so the request opens a fresh one. That costs one
  zero-timeout ``poll`` system call, not a round trip as ``CONN_HEALTH_CHECKS`` does.
"""

import select

from django.db import OperationalError
from django.db.backends.postgresql import base
from psycopg import OperationalError as DriverOperationalError

from ... import dependencies


class DatabaseUnavailable(dependencies.DependencyUnavailable, OperationalError):
    """The database could not be reached (or its breaker is open); also a Django ``OperationalError``."""

    def __init__(self, dependency: str = dependencies.DATABASE, retry_after: int | None = None):
        dependencies.DependencyUnavailable.__init__(self, dependency, retry_after)


def closed_by_server(driver_connection) -> bool:
    """True when an idle connection's socket has something to read: the server closed or is closing it.

    An idle PostgreSQL connection receives nothing unless the server ends the session
    (shutdown, restart, ``pg_terminate_backend``) or sends a notification; a closed
    notification channel costs one needless reconnect, which is harmless.
    """
    try:
        if driver_connection.closed or driver_connection.broken:
            return True
        poller = select.poll()
        poller.register(driver_connection.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))
    except (OSError, ValueError, DriverOperationalError):
        return True


class DatabaseWrapper(base.DatabaseWrapper):
    """``django.db.backends.postgresql``'s wrapper with the connect breaker and the closed-connection check."""

    def get_new_connection(self, conn_params):
        with dependencies.guarding(dependencies.DATABASE, (DriverOperationalError,), unavailable=DatabaseUnavailable):
            return super().get_new_connection(conn_params)

    def close_if_unusable_or_obsolete(self):
        if self.connection is not None and not self.in_atomic_block and closed_by_server(self.connection):
            self.close()
            return
        super().close_if_unusable_or_obsolete()
