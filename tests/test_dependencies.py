"""Breakers, bounded waits and their answers, in-process: refused connections, a held SQLite lock, /readyz."""

import datetime
import http.server
import logging
import socket
import sqlite3
import sys
import threading
import time

import pytest
import redis
from django.db import OperationalError, connection, transaction
from prometheus_client import REGISTRY

from apikeys import dependencies, firebase, lifecycle, metrics
from apikeys.cache import CacheUnavailable, ResilientRedisCache

from .helpers import free_port, issue, make_owner
from .test_settings import REQUIRED, run_settings


def refused_port() -> int:
    """A loopback port nothing listens on: connecting is refused at once, for real."""
    return free_port()


def connect(port: int) -> None:
    socket.create_connection(("127.0.0.1", port), timeout=1).close()


@pytest.fixture
def breaker_settings(settings, time_machine):
    """Breakers that open after 2 failed calls, for 0.3 s, with the clock stopped.

    pybreaker decides with ``datetime.now`` whether an open breaker's reset time has
    passed. With the clock running, a busy machine taking 0.3 s over a test's quick calls
    let a trial call through in the middle of them; stopped, the breaker half-opens only
    when the test moves the clock (``time_machine.shift``).
    """
    time_machine.move_to(datetime.datetime.now(datetime.UTC), tick=False)
    settings.OMIKEYS_BREAKER_FAILURES = 2
    settings.OMIKEYS_BREAKER_RESET_SECONDS = 0.3
    return settings


def past_the_reset(time_machine) -> None:
    """Move the stopped clock past OMIKEYS_BREAKER_RESET_SECONDS: an open breaker's next call is its trial."""
    time_machine.shift(datetime.timedelta(seconds=0.35))


def test_an_outage_is_logged_once_when_it_begins_and_once_when_it_ends(breaker_settings, caplog, time_machine):
    port = refused_port()
    caplog.set_level(logging.INFO, logger="apikeys.dependencies")
    for _ in range(10):
        with pytest.raises(dependencies.DependencyUnavailable) as raised:
            dependencies.guard("cache", connect, port, failures=(OSError,))
        assert raised.value.dependency == "cache"
    assert dependencies.is_open("cache")
    assert dependencies.listener.errors["cache"] == 2  # the rest were refused by the open breaker, not tried
    past_the_reset(time_machine)
    with pytest.raises(dependencies.DependencyUnavailable):  # the trial call fails: open again, no new line
        dependencies.guard("cache", connect, port, failures=(OSError,))
    past_the_reset(time_machine)
    assert dependencies.guard("cache", lambda: "answered") == "answered"
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "apikeys.dependencies"]
    assert len(lines) == 2, lines
    assert lines[0][0] == "WARNING"
    assert lines[0][1].startswith("cache unavailable after 2 failed calls (ConnectionRefusedError")
    assert lines[1][0] == "INFO"
    assert lines[1][1].startswith("cache available again after")
    assert not any(r.exc_info for r in caplog.records)


def test_an_outage_shows_in_the_dependency_metrics(breaker_settings, time_machine):
    def sample(name):
        return REGISTRY.get_sample_value(name, {"dependency": "cache"}) or 0.0

    errors_before = sample("omikeys_dependency_errors_total")
    port = refused_port()
    for _ in range(5):
        with pytest.raises(dependencies.DependencyUnavailable):
            dependencies.guard("cache", connect, port, failures=(OSError,))
    assert sample("omikeys_dependency_errors_total") - errors_before == 2  # calls tried, not those refused while open
    assert sample("omikeys_dependency_breaker_state") == metrics.BreakerState.OPEN
    past_the_reset(time_machine)
    assert dependencies.guard("cache", lambda: "answered") == "answered"
    assert sample("omikeys_dependency_breaker_state") == metrics.BreakerState.CLOSED


def test_only_one_call_tries_a_half_open_dependency_the_others_fail_fast(breaker_settings, time_machine):
    """pybreaker lets every concurrent call through while half-open; the trial gate lets one."""

    def refused():
        raise ConnectionRefusedError("refused")

    for _ in range(2):
        with pytest.raises(dependencies.DependencyUnavailable):
            dependencies.guard("cache", refused, failures=(OSError,))
    assert dependencies.is_open("cache")
    past_the_reset(time_machine)

    in_flight, release, calls = threading.Event(), threading.Event(), []

    def trial():
        calls.append("trial")
        in_flight.set()
        release.wait(10)
        return "answered"

    results = []
    worker = threading.Thread(target=lambda: results.append(dependencies.guard("cache", trial, failures=(OSError,))))
    worker.start()
    try:
        assert in_flight.wait(5)
        for _ in range(5):
            started = time.monotonic()
            with pytest.raises(dependencies.DependencyUnavailable):
                dependencies.guard("cache", lambda: calls.append("concurrent"), failures=(OSError,))
            assert time.monotonic() - started < 0.5
    finally:
        release.set()
        worker.join(10)
    assert calls == ["trial"] and results == ["answered"]
    assert not dependencies.is_open("cache")
    assert dependencies.guard("cache", lambda: "closed again", failures=(OSError,)) == "closed again"


def test_answers_that_are_errors_do_not_open_the_breaker(breaker_settings):
    for _ in range(5):
        with pytest.raises(KeyError):
            dependencies.guard("firebase", {}.__getitem__, "missing", failures=(OSError,))
    assert not dependencies.is_open("firebase")


def test_retry_after_counts_down_while_the_breaker_is_open(settings):
    settings.OMIKEYS_BREAKER_FAILURES = 1
    settings.OMIKEYS_BREAKER_RESET_SECONDS = 30
    with pytest.raises(dependencies.DependencyUnavailable) as raised:
        dependencies.guard("database", connect, refused_port(), failures=(OSError,))
    assert 1 <= raised.value.retry_after <= 30
    assert 28 <= dependencies.retry_after_seconds("database") <= 30


def test_a_refusing_redis_costs_nothing_once_the_breaker_is_open(breaker_settings):
    redis_cache = ResilientRedisCache(
        f"redis://127.0.0.1:{refused_port()}/0", {"OPTIONS": {"socket_timeout": 0.25, "socket_connect_timeout": 0.25}}
    )
    for _ in range(2):
        with pytest.raises(CacheUnavailable):
            redis_cache.get("k")
    started = time.monotonic()
    for _ in range(100):
        with pytest.raises(CacheUnavailable):
            redis_cache.incr("k")
    assert time.monotonic() - started < 1  # no connection attempt while open
    # Also a redis-py ConnectionError, for code written against redis-py.
    assert issubclass(CacheUnavailable, redis.exceptions.ConnectionError)


def test_the_outage_filter_drops_callers_repeats_of_a_reported_outage():
    record = logging.LogRecord("apikeys.limits", logging.ERROR, __file__, 1, "cache down", None, None)
    assert dependencies.OutageAlreadyReported().filter(record)
    try:
        raise CacheUnavailable()
    except CacheUnavailable:
        record.exc_info = sys.exc_info()
    assert not dependencies.OutageAlreadyReported().filter(record)


def test_firebase_unreachable_opens_its_breaker_and_answers_at_once(breaker_settings, monkeypatch):
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", f"127.0.0.1:{refused_port()}")
    firebase.reset_app()
    for _ in range(2):
        with pytest.raises(firebase.AuthUnavailable):
            firebase.get_user("someone")
    assert dependencies.is_open("firebase")
    started = time.monotonic()
    with pytest.raises(firebase.AuthUnavailable):
        firebase.get_user("someone")
    assert time.monotonic() - started < 0.1


@pytest.fixture
def firebase_answering_503():
    """A real HTTP server standing in for Firebase Auth that answers every request
    503 with ``Retry-After: 5``; yields the list of paths it was asked for."""
    hits = []

    class Unavailable(http.server.BaseHTTPRequestHandler):
        def answer(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            hits.append(self.path)
            body = b'{"error": {"code": 503, "message": "UNAVAILABLE"}}'
            self.send_response(503)
            self.send_header("Retry-After", "5")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.hits = hits
    yield server
    server.shutdown()
    server.server_close()


def test_a_firebase_503_with_retry_after_is_not_retried_or_waited_on(firebase_answering_503, monkeypatch):
    """firebase-admin alone would ask 5 times and wait out each Retry-After (20 s and more)."""
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", f"127.0.0.1:{firebase_answering_503.server_port}")
    firebase.reset_app()
    started = time.monotonic()
    with pytest.raises(firebase.AuthUnavailable):
        firebase.get_user("someone")
    assert time.monotonic() - started < 3  # a bound, not a timing: the unbounded call takes 20 s+
    assert len(firebase_answering_503.hits) == 1


def test_firebase_calls_carry_the_timeout_setting(settings):
    settings.OMIKEYS_FIREBASE_TIMEOUT = 1.5
    firebase.reset_app()
    assert firebase.get_app().options.get("httpTimeout") == 1.5


@pytest.mark.django_db
def test_readiness_reports_each_dependency(client, settings, monkeypatch):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "cache": "ok", "firebase": "ok"}}
    assert "no-cache" in response["Cache-Control"]

    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", f"127.0.0.1:{refused_port()}")
    firebase.reset_app()
    response = client.get("/readyz")
    assert response.status_code == 200  # only the database is required by default
    assert response.json()["checks"]["firebase"] == "unavailable"
    settings.OMIKEYS_READINESS_REQUIRES = ["database", "firebase"]
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "not ready"
    assert int(response["Retry-After"]) >= 1


@pytest.mark.django_db(transaction=True)
def test_a_usage_stamp_never_waits_for_sqlites_write_lock(contract_scopes):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's write lock; PostgreSQL writes rows, not the whole file")
    issued = issue(make_owner("locked-out"))
    holder = sqlite3.connect(connection.settings_dict["NAME"], timeout=10, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        verification = lifecycle.verify_key(issued.plaintext)
        assert verification.api_key is not None
        assert lifecycle.mark_used(verification.api_key) is False
        assert time.monotonic() - started < 1  # the connection's own wait is OMIKEYS_DATABASE_TIMEOUT (5 s)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert lifecycle.mark_used(verification.api_key) is True


@pytest.mark.django_db(transaction=True)
def test_database_errors_while_a_query_runs_are_counted_once(contract_scopes):
    """A query the database fails counts one database error (SQLite: its write lock not
    granted, the usage stamp staying best-effort; PostgreSQL: a statement cancelled by
    its statement_timeout); a query that answers counts none."""

    def errors() -> float:
        return REGISTRY.get_sample_value("omikeys_dependency_errors_total", {"dependency": "database"}) or 0.0

    issued = issue(make_owner("counted"))
    verification = lifecycle.verify_key(issued.plaintext)
    before = errors()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert errors() == before
    if connection.vendor == "sqlite":
        holder = sqlite3.connect(connection.settings_dict["NAME"], timeout=10, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            assert lifecycle.mark_used(verification.api_key) is False
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    else:
        with pytest.raises(OperationalError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = '50ms'")
            cursor.execute("SELECT pg_sleep(2)")
    assert errors() == before + 1


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OMIKEYS_CACHE_TIMEOUT": "fast"}, "OMIKEYS_CACHE_TIMEOUT must be a number of seconds"),
        ({"OMIKEYS_FIREBASE_TIMEOUT": "0"}, "OMIKEYS_FIREBASE_TIMEOUT must be between 0.1 and 120 seconds"),
        ({"OMIKEYS_BREAKER_FAILURES": "0"}, "OMIKEYS_BREAKER_FAILURES must be between 1 and 1000"),
        ({"OMIKEYS_READINESS_REQUIRES": "database,queue"}, "OMIKEYS_READINESS_REQUIRES takes database, cache"),
    ],
)
def test_bad_dependency_settings_stop_the_service_with_a_message(env, message):
    result = run_settings({**REQUIRED, **env})
    assert result.returncode != 0
    assert message in result.stderr


def test_postgresql_urls_get_the_bounded_backend_and_timeouts():
    code = (
        "import django; django.setup(); from django.conf import settings as s; d = s.DATABASES['default']; "
        "print(d['ENGINE'], d['OPTIONS']['connect_timeout'], d['OPTIONS']['options'], "
        "s.CACHES['default']['OPTIONS']['socket_timeout'])"
    )
    env = {
        **REQUIRED,
        "DATABASE_URL": "postgres://u:p@db.internal:5432/omikeys",
        "CACHE_URL": "redis://cache.internal:6379/0",
        "OMIKEYS_DATABASE_TIMEOUT": "2.5",
        "OMIKEYS_CACHE_TIMEOUT": "0.1",
    }
    result = run_settings(env, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["apikeys.backends.postgresql", "3", "-c", "statement_timeout=2500", "0.1"]
