"""Usage per key (lifecycle.usage): counting in memory, the background writer's writes, retention and erasure."""

import datetime
import sqlite3
import time

import pytest
from django.db import DataError, IntegrityError, InterfaceError, OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apikeys import lifecycle, metrics, tasks
from apikeys.lifecycle import usage
from apikeys.models import ApiKey, KeyAddress, KeyLastUse, KeyUsageHour

from .helpers import NOW, expire, issue, key_client, make_owner

pytestmark = [pytest.mark.django_db]
URL = "/v1/dev/key"


class Clock:
    """The accumulator's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks(monkeypatch):
    """The seconds the accumulator sees (its one time seam: time.monotonic), moved with ``ticks.now += n``."""
    clock = Clock()
    monkeypatch.setattr(usage.ACCUMULATOR, "clock", clock)
    return clock


def judge(plaintext: str, *, address: str = "203.0.113.7", user_agent: str = "curl/8.5", scopes=()):
    return lifecycle.judge_key(plaintext, client_address=address, user_agent=user_agent, required_scopes=scopes)


def hours(api_key: ApiKey) -> list[tuple]:
    return [
        (row.hour, {o: getattr(row, o) for o in usage.USAGE_OUTCOMES if getattr(row, o)})
        for row in KeyUsageHour.objects.filter(api_key=api_key).order_by("hour")
    ]


def test_every_outcome_is_counted_in_its_column_and_written_after_the_interval(clock, ticks):
    owner = make_owner("usage-owner")
    issued = issue(owner, scopes=["memories:read"])
    key = issued.api_key
    judge(issued.plaintext)  # first sight: the interval starts, nothing written
    judge(issued.plaintext, scopes=["memories:write"])
    assert not KeyUsageHour.objects.exists()
    lifecycle.disable_key(key)
    judge(issued.plaintext)
    lifecycle.enable_key(key)
    expire(key)
    judge(issued.plaintext)
    judge(issued.plaintext)
    ApiKey.objects.filter(pk=key.pk).update(expires_at=None)
    lifecycle.revoke_key(key)
    ticks.now += 60
    judge(issued.plaintext, address="198.51.100.1", user_agent="omi-sdk/2")
    assert not KeyUsageHour.objects.exists()  # a request never writes: the background writer does
    assert usage.flush_due() == 0
    assert hours(key) == [
        (NOW, {"accepted": 1, "insufficient_scope": 1, "disabled": 1, "expired": 2, "revoked": 1}),
    ]
    last = KeyLastUse.objects.get(api_key=key)
    assert (last.at, last.outcome, last.address, last.user_agent) == (NOW, "revoked", "198.51.100.1", "omi-sdk/2")
    seen = {a.address: (a.first_seen, a.last_seen, a.requests) for a in KeyAddress.objects.filter(api_key=key)}
    assert seen == {"203.0.113.7": (NOW, NOW, 5), "198.51.100.1": (NOW, NOW, 1)}


def test_an_inactive_owner_is_counted_without_address_or_user_agent(clock, ticks):
    owner = make_owner("inactive-usage-owner")
    issued = issue(owner)
    owner.is_active = False
    owner.save(update_fields=["is_active"])
    judge(issued.plaintext)
    assert usage.flush_all() == 0
    assert hours(issued.api_key) == [(NOW, {"owner_inactive": 1})]
    last = KeyLastUse.objects.get(api_key=issued.api_key)
    assert (last.outcome, last.address, last.user_agent) == ("owner_inactive", None, "")
    assert not KeyAddress.objects.exists()


def test_unknown_and_malformed_keys_are_counted_for_no_key(clock):
    judge("omi_dev_" + "0" * 32)
    judge("not a key")
    assert usage.ACCUMULATOR.pending_keys() == 0


def test_counts_fall_in_the_utc_hour_and_days_are_sums_of_hours(clock, ticks):
    issued = issue(make_owner("hours-owner"))
    clock.move_to(datetime.datetime(2027, 6, 1, 23, 59, 59, 999999, tzinfo=datetime.UTC), tick=False)
    judge(issued.plaintext)
    clock.move_to(datetime.datetime(2027, 6, 2, 0, 0, tzinfo=datetime.UTC), tick=False)
    judge(issued.plaintext)
    judge(issued.plaintext)
    usage.flush_all()
    assert hours(issued.api_key) == [
        (datetime.datetime(2027, 6, 1, 23, tzinfo=datetime.UTC), {"accepted": 1}),
        (datetime.datetime(2027, 6, 2, 0, tzinfo=datetime.UTC), {"accepted": 2}),
    ]
    daily = lifecycle.key_usage(issued.api_key, days=2)
    assert [(row.start, row.total) for row in daily.rows] == [
        (datetime.datetime(2027, 6, 1, tzinfo=datetime.UTC), 1),
        (datetime.datetime(2027, 6, 2, tzinfo=datetime.UTC), 2),
    ]
    hourly = lifecycle.key_usage(issued.api_key, days=1, granularity="hour")
    assert len(hourly.rows) == 24
    assert hourly.rows[0].start == datetime.datetime(2027, 6, 1, 1, tzinfo=datetime.UTC)
    assert [row.total for row in hourly.rows][-2:] == [1, 2]
    assert daily.totals["accepted"] == 3 and daily.total == 3


USAGE_TABLES = ("keyusagehour", "keylastuse", "keyaddress")


def usage_statements(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if any(t in q["sql"].lower() for t in USAGE_TABLES)]


def test_a_request_never_reads_or_writes_usage_whatever_the_clocks(clock, ticks):
    issued = issue(make_owner("quiet-owner"))
    lifecycle.verify_key("omi_dev_" + "0" * 32)  # on PostgreSQL, the connection prepares the lookup once
    judge(issued.plaintext)  # the first use: the lookup and the last-used stamp, as before
    for _ in range(5):  # inside the interval: the lookup alone
        ticks.now += 11
        with CaptureQueriesContext(connection) as queries:
            assert judge(issued.plaintext).code == "VALID"
        assert len(queries.captured_queries) == 1
    # Both clocks past the interval: the lookup and mark_used's stamp, as before; no usage statement.
    ticks.now += 3600
    clock.move_to(NOW + datetime.timedelta(hours=1), tick=False)
    with CaptureQueriesContext(connection) as queries:
        assert judge(issued.plaintext, address="198.51.100.9").code == "VALID"
    assert len(queries.captured_queries) == 2 and not usage_statements(queries)
    # Another process stamped the key: this one's own clock says due, the request still writes nothing.
    ticks.now += 3600
    clock.move_to(NOW + datetime.timedelta(hours=2), tick=False)
    ApiKey.objects.filter(pk=issued.api_key.pk).update(last_used_at=timezone.now())
    with CaptureQueriesContext(connection) as queries:
        assert judge(issued.plaintext).code == "VALID"
    assert len(queries.captured_queries) == 1 and not usage_statements(queries)
    lifecycle.revoke_key(issued.api_key)  # refused keys too
    ticks.now += 3600
    with CaptureQueriesContext(connection) as queries:
        assert judge(issued.plaintext).code == "REVOKED"
    assert not usage_statements(queries)
    assert not KeyUsageHour.objects.exists()
    assert usage.flush_due() == 0
    assert sum(total for _, counts in hours(issued.api_key) for total in counts.values()) == 9


def test_a_write_is_a_few_statements_whatever_the_addresses(clock, ticks, settings):
    settings.OMIKEYS_USAGE_MAX_PENDING_ADDRESSES = 100
    owner = make_owner("many-addresses-owner")
    one, many = issue(owner, "one"), issue(owner, "many")
    judge(one.plaintext)
    for i in range(100):
        judge(many.plaintext, address=f"198.51.100.{i}")
    statements = {}
    for issued in (one, many):
        with CaptureQueriesContext(connection) as queries:
            assert usage.flush_key(issued.api_key.pk) is True
        statements[issued.api_key.pk] = len(queries.captured_queries)
    assert statements[one.api_key.pk] == statements[many.api_key.pk] <= 8
    assert KeyAddress.objects.filter(api_key=many.api_key).count() == 100
    assert hours(many.api_key) == [(NOW, {"accepted": 100})]
    # Again, on rows that exist now: the same statements update them.
    for i in range(100):
        judge(many.plaintext, address=f"198.51.100.{i}")
    with CaptureQueriesContext(connection) as queries:
        assert usage.flush_key(many.api_key.pk) is True
    assert len(queries.captured_queries) == statements[many.api_key.pk]
    assert set(KeyAddress.objects.filter(api_key=many.api_key).values_list("requests", flat=True)) == {2}
    assert hours(many.api_key) == [(NOW, {"accepted": 200})]


@pytest.mark.parametrize("active", [True, False])
def test_the_write_locks_the_owner_it_checks_is_active(clock, ticks, active):
    owner = make_owner(f"locked-owner-{active}")
    issued = issue(owner)
    owner.is_active = active
    owner.save(update_fields=["is_active"])
    judge(issued.plaintext)
    with CaptureQueriesContext(connection) as queries:
        assert usage.flush_all() == 0
    check = next(q["sql"] for q in queries.captured_queries if "is_active" in q["sql"])
    # Serialized with erase_user, which locks the user's row first too (SQLite serializes every write), whatever
    # the owner's state: an inactive owner's write that skipped the lock would wait on the keys erase_user holds.
    assert ("FOR UPDATE OF" in check) is connection.features.has_select_for_update_of
    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "BEGIN"))]
    assert statements[0] == check  # before any write of the key's rows
    assert hours(issued.api_key) == [(NOW, {"accepted" if active else "owner_inactive": 1})]


def test_the_writer_advances_last_used_at_with_the_counts_never_backwards(clock, ticks):
    issued = issue(make_owner("stamped-owner"))
    judge(issued.plaintext)  # mark_used stamps NOW
    later = NOW + datetime.timedelta(seconds=30)
    clock.move_to(later, tick=False)
    judge(issued.plaintext)  # inside the interval: not stamped by the request
    assert ApiKey.objects.get(pk=issued.api_key.pk).last_used_at == NOW
    ticks.now += 60
    usage.flush_due()
    assert ApiKey.objects.get(pk=issued.api_key.pk).last_used_at == later
    usage.ACCUMULATOR.add(issued.api_key.pk, "accepted", NOW, None, "")
    usage.flush_all()
    assert ApiKey.objects.get(pk=issued.api_key.pk).last_used_at == later
    # A refused use is counted but is no use of the key: last_used_at stays.
    usage.ACCUMULATOR.add(issued.api_key.pk, "revoked", later + datetime.timedelta(minutes=5), None, "")
    usage.flush_all()
    assert ApiKey.objects.get(pk=issued.api_key.pk).last_used_at == later


def test_refused_keys_are_written_on_the_same_interval(clock, ticks):
    issued = issue(make_owner("refused-owner"))
    lifecycle.revoke_key(issued.api_key)
    judge(issued.plaintext)
    ticks.now += 59
    judge(issued.plaintext)
    usage.flush_due()
    assert not KeyUsageHour.objects.exists()
    ticks.now += 1
    judge(issued.plaintext)
    usage.flush_due()
    assert hours(issued.api_key) == [(NOW, {"revoked": 3})]


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("database is locked"),
        OperationalError("canceling statement"),
        InterfaceError("connection already closed"),
    ],
)
def test_an_error_that_may_pass_keeps_the_counts_pending(clock, ticks, monkeypatch, error):
    issued = issue(make_owner("failing-owner"))
    judge(issued.plaintext)
    ticks.now += 60
    failures = metrics.USAGE_FLUSHES.labels("failed")._value.get()

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(usage, "_write_counts", broken)
    assert usage.flush_due() == 1
    assert metrics.USAGE_FLUSHES.labels("failed")._value.get() == failures + 1
    assert usage.ACCUMULATOR.pending_keys() == 1
    monkeypatch.undo()
    assert judge(issued.plaintext).code == "VALID"
    ticks.now += 60
    assert usage.flush_due() == 0
    assert hours(issued.api_key) == [(NOW, {"accepted": 2})]


@pytest.mark.parametrize(
    "error",
    [
        IntegrityError("check constraint failed"),
        DataError("value too long"),
        ValueError("A string literal cannot contain NUL (0x00) characters."),
        UnicodeEncodeError("utf-8", "\udc80", 0, 1, "surrogates not allowed"),
    ],
)
def test_counts_the_database_refuses_are_dropped_not_retried_forever(clock, ticks, monkeypatch, caplog, error):
    issued = issue(make_owner("refused-write-owner"))
    judge(issued.plaintext)
    dropped = metrics.USAGE_FLUSHES.labels("dropped")._value.get()

    def refused(*args, **kwargs):
        raise error

    monkeypatch.setattr(usage, "_write_counts", refused)
    with caplog.at_level("WARNING", logger="apikeys.lifecycle.usage"):
        assert usage.flush_all() == 1
    assert metrics.USAGE_FLUSHES.labels("dropped")._value.get() == dropped + 1
    assert any(r.levelname == "WARNING" and "dropped" in r.getMessage() for r in caplog.records)
    assert usage.ACCUMULATOR.pending_keys() == 0
    monkeypatch.undo()
    judge(issued.plaintext)  # the key's next counts are written
    assert usage.flush_all() == 0
    assert hours(issued.api_key) == [(NOW, {"accepted": 1})]


def test_a_late_scope_refusal_never_takes_a_count_below_zero(clock, ticks, settings):
    issued = issue(make_owner("clamped-owner"))
    key_id = issued.api_key.pk
    # The accepted count it corrects was dropped (or never written): the move alone is -1 accepted.
    usage.ACCUMULATOR.move(key_id, NOW, "accepted", "insufficient_scope")
    assert usage.flush_all() == 0
    assert hours(issued.api_key) == [(NOW, {"insufficient_scope": 1})]
    usage.ACCUMULATOR.move(key_id, NOW, "accepted", "insufficient_scope")
    assert usage.flush_all() == 0
    assert hours(issued.api_key) == [(NOW, {"insufficient_scope": 2})]
    judge(issued.plaintext)  # and the key's counts keep being written
    assert usage.flush_all() == 0
    assert hours(issued.api_key) == [(NOW, {"accepted": 1, "insufficient_scope": 2})]


def test_counts_put_back_respect_the_pending_keys_bound(clock, settings):
    settings.OMIKEYS_USAGE_MAX_PENDING_KEYS = 1
    owner = make_owner("put-back-owner")
    first, second = issue(owner, "first"), issue(owner, "second")
    for _ in range(3):
        judge(first.plaintext)
    held = usage.ACCUMULATOR.take(first.api_key.pk)
    judge(second.plaintext)
    dropped = metrics.USAGE_DROPPED.labels("request")._value.get()
    assert usage.ACCUMULATOR.put_back(first.api_key.pk, held) is False
    assert usage.ACCUMULATOR.pending_keys() == 1
    assert metrics.USAGE_DROPPED.labels("request")._value.get() == dropped + 3  # the requests, not the key


def test_first_seen_moves_earlier_for_an_older_use_written_late(clock, ticks):
    issued = issue(make_owner("first-seen-owner"))
    judge(issued.plaintext, address="192.0.2.5")
    usage.flush_all()
    earlier = NOW - datetime.timedelta(minutes=3)
    usage.ACCUMULATOR.add(issued.api_key.pk, "accepted", earlier, "192.0.2.5", "other-process")
    usage.flush_all()
    seen = KeyAddress.objects.get(api_key=issued.api_key)
    assert (seen.first_seen, seen.last_seen, seen.requests) == (earlier, NOW, 2)


@pytest.mark.urls("tests.scoped_urls")
def test_a_scope_refusal_found_by_the_door_moves_the_count(clock, ticks):
    issued = issue(make_owner("scoped-usage-owner"), scopes=["conversations:read"])
    assert key_client(issued.plaintext, HTTP_USER_AGENT="app/1").get("/v1/memories").status_code == 403
    ticks.now += 60
    usage.flush_due()
    assert key_client(issued.plaintext, HTTP_USER_AGENT="app/1").get("/v1/memories").status_code == 403
    usage.flush_all()
    assert hours(issued.api_key) == [(NOW, {"insufficient_scope": 2})]
    assert KeyLastUse.objects.get(api_key=issued.api_key).user_agent == "app/1"


def test_the_flusher_pass_writes_keys_whose_interval_passed(clock, ticks):
    issued = issue(make_owner("idle-owner"))
    judge(issued.plaintext)
    judge(issued.plaintext)
    assert usage.flush_due() == 0
    assert not KeyUsageHour.objects.exists()
    ticks.now += 60
    assert usage.flush_due() == 0
    assert hours(issued.api_key) == [(NOW, {"accepted": 2})]
    judge(issued.plaintext)
    ticks.now += 30
    usage.flush_due()  # only 30 s since its last write
    assert hours(issued.api_key) == [(NOW, {"accepted": 2})]


def test_pending_memory_is_bounded_and_what_is_dropped_is_counted(clock, ticks, settings):
    settings.OMIKEYS_USAGE_MAX_PENDING_KEYS = 1
    settings.OMIKEYS_USAGE_MAX_PENDING_ADDRESSES = 2
    owner = make_owner("bounded-owner")
    first, second = issue(owner, "first"), issue(owner, "second")
    dropped_requests = metrics.USAGE_DROPPED.labels("request")._value.get()
    dropped_addresses = metrics.USAGE_DROPPED.labels("address")._value.get()
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        judge(first.plaintext, address=address)
    judge(second.plaintext)
    assert metrics.USAGE_DROPPED.labels("request")._value.get() == dropped_requests + 1
    assert metrics.USAGE_DROPPED.labels("address")._value.get() == dropped_addresses + 1
    usage.flush_all()
    assert hours(first.api_key) == [(NOW, {"accepted": 3})]
    assert sorted(KeyAddress.objects.values_list("address", flat=True)) == ["192.0.2.1", "192.0.2.2"]
    assert hours(second.api_key) == []


def test_the_retention_pass_removes_old_addresses_and_hours(clock, settings):
    settings.OMIKEYS_USAGE_ADDRESS_RETENTION_DAYS = 30
    key = issue(make_owner("retention-owner")).api_key
    old, recent = NOW - datetime.timedelta(days=31), NOW - datetime.timedelta(days=29)
    KeyAddress.objects.create(api_key=key, address="192.0.2.1", first_seen=old, last_seen=old, requests=1)
    KeyAddress.objects.create(api_key=key, address="192.0.2.2", first_seen=old, last_seen=recent, requests=2)
    KeyLastUse.objects.create(api_key=key, at=old, outcome="accepted", address="192.0.2.1", user_agent="x")
    KeyUsageHour.objects.create(api_key=key, hour=NOW - datetime.timedelta(days=90, hours=1), accepted=1)
    KeyUsageHour.objects.create(api_key=key, hour=NOW - datetime.timedelta(days=90), accepted=1)
    assert tasks.prune_usage() == 3
    assert list(KeyAddress.objects.values_list("address", flat=True)) == ["192.0.2.2"]
    last = KeyLastUse.objects.get(api_key=key)
    assert (last.at, last.outcome, last.address, last.user_agent) == (old, "accepted", None, "")
    assert list(KeyUsageHour.objects.values_list("hour", flat=True)) == [NOW - datetime.timedelta(days=90)]
    assert tasks.prune_usage() == 0
    assert "omikeys: prune key usage" in tasks.SCHEDULES


def test_erasing_the_owner_erases_addresses_and_keeps_counts(clock):
    owner = make_owner("erased-usage-owner")
    other = make_owner("other-usage-owner")
    key, others = issue(owner).api_key, issue(other).api_key
    for api_key in (key, others):
        KeyAddress.objects.create(api_key=api_key, address="192.0.2.9", first_seen=NOW, last_seen=NOW, requests=1)
        KeyLastUse.objects.create(api_key=api_key, at=NOW, outcome="accepted", address="192.0.2.9", user_agent="ua")
        KeyUsageHour.objects.create(api_key=api_key, hour=NOW, accepted=4)
    report = lifecycle.erase_user(owner, actor=None)
    assert report.usage_records_erased == 2
    assert not KeyAddress.objects.filter(api_key=key).exists()
    last = KeyLastUse.objects.get(api_key=key)
    assert (last.address, last.user_agent) == (None, "")
    assert KeyUsageHour.objects.get(api_key=key).accepted == 4
    assert KeyAddress.objects.filter(api_key=others).count() == 1
    assert KeyLastUse.objects.get(api_key=others).address == "192.0.2.9"
    assert lifecycle.erase_user(owner, actor=None).usage_records_erased == 0


def test_key_usage_refuses_windows_it_does_not_keep(clock):
    key = issue(make_owner("window-owner")).api_key
    for days in (0, 91):
        with pytest.raises(ValueError):
            lifecycle.key_usage(key, days=days)
    with pytest.raises(ValueError):
        lifecycle.key_usage(key, granularity="minute")
    assert len(lifecycle.key_usage(key, days=90).rows) == 90


def test_the_last_use_keeps_the_latest_across_writes(clock, ticks):
    issued = issue(make_owner("latest-owner"))
    judge(issued.plaintext, address="192.0.2.1")
    usage.flush_all()
    # An older presentation written late (another process's) does not replace a newer last use.
    usage.ACCUMULATOR.add(issued.api_key.pk, "accepted", NOW - datetime.timedelta(seconds=5), "192.0.2.2", "old")
    usage.flush_all()
    assert KeyLastUse.objects.get(api_key=issued.api_key).address == "192.0.2.1"
    assert KeyAddress.objects.get(address="192.0.2.2").last_seen == NOW - datetime.timedelta(seconds=5)
    assert KeyAddress.objects.get(address="192.0.2.1").last_seen == timezone.now()


def test_addresses_held_from_before_an_erasure_are_not_written_after_it(clock, ticks):
    owner = make_owner("erased-while-pending")
    issued = issue(owner)
    judge(issued.plaintext, address="192.0.2.44", user_agent="before/1")
    lifecycle.erase_user(owner, actor=None)
    usage.flush_all()
    assert hours(issued.api_key) == [(NOW, {"accepted": 1})]
    assert not KeyAddress.objects.exists()
    last = KeyLastUse.objects.get(api_key=issued.api_key)
    assert (last.outcome, last.address, last.user_agent) == ("accepted", None, "")


def test_a_process_starts_one_flusher(monkeypatch):
    monkeypatch.setattr(usage, "_flusher_pid", None)
    started = []
    monkeypatch.setattr(usage.threading, "Thread", lambda **kwargs: started.append(kwargs) or _NotStarted())
    assert usage.start_flusher() is True
    assert usage.start_flusher() is False
    assert [(t["name"], t["daemon"], t["args"]) for t in started] == [("omikeys-usage-flusher", True, (10,))]


class _NotStarted:
    def start(self) -> None:
        """The thread's loop is the real one in the gunicorn test (tests/test_usage_processes.py)."""


def test_forms_of_one_ipv6_address_are_one_pending_address(clock, ticks):
    issued = issue(make_owner("scoped-address-owner"))
    key_id = issued.api_key.pk
    for address in ("fe80::1%eth0", "fe80::1%eth1", "FE80:0:0::1", "2001:db8::7", "192.0.2.9"):
        usage.ACCUMULATOR.add(key_id, "accepted", NOW, address, "ua")
    pending = usage.ACCUMULATOR.take(key_id)
    # One row per stored form in an upsert (PostgreSQL refuses a row affected twice in one statement).
    held = {a: seen.requests for a, seen in pending.addresses.items()}
    assert held == {"fe80::1": 3, "2001:db8::7": 1, "192.0.2.9": 1}
    usage.ACCUMULATOR.put_back(key_id, pending)
    assert usage.flush_all() == 0
    assert dict(KeyAddress.objects.filter(api_key=issued.api_key).values_list("address", "requests")) == {
        "fe80::1": 3,
        "2001:db8::7": 1,
        "192.0.2.9": 1,
    }


class WriteLock:
    """SQLite's write lock, held by a second connection (another process's transaction) between hold and release."""

    def __init__(self, name: str) -> None:
        self.holder = sqlite3.connect(name, timeout=10, isolation_level=None)

    def hold(self) -> None:
        self.holder.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self.holder.in_transaction:
            self.holder.execute("ROLLBACK")


@pytest.fixture
def write_lock():
    """A :class:`WriteLock` on the test database, this connection's own wait for it shortened to half a second."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's write lock; on PostgreSQL a lock is per row")
    options = connection.settings_dict["OPTIONS"]
    waited = options["timeout"]  # OMIKEYS_DATABASE_TIMEOUT, given to the connection when it opens
    options["timeout"] = 0.5
    connection.close()
    lock = WriteLock(connection.settings_dict["NAME"])
    yield lock
    lock.release()
    lock.holder.close()
    options["timeout"] = waited
    connection.close()


def _issued_and_counted(names):
    owner = make_owner("locked-out-writer")
    issued = [issue(owner, name) for name in names]
    for each in issued:
        judge(each.plaintext)
    return issued


@pytest.mark.django_db(transaction=True)
def test_a_pass_ends_at_the_first_write_the_database_refuses_for_now(clock, ticks, write_lock, contract_scopes):
    issued = _issued_and_counted(["a", "b", "c", "d"])
    write_lock.hold()
    ticks.now += 60
    failed, written = (metrics.USAGE_FLUSHES.labels(r)._value.get() for r in ("failed", "written"))
    started = time.monotonic()
    assert usage.flush_due() == 4
    took = time.monotonic() - started
    # One write tried and failed (each waits for the lock): the three after it were not tried.
    assert metrics.USAGE_FLUSHES.labels("failed")._value.get() == failed + 1
    assert metrics.USAGE_FLUSHES.labels("written")._value.get() == written
    assert took < 4 * 0.5  # four waits for the lock would take 2 s; one takes 0.5 s
    assert usage.ACCUMULATOR.pending_keys() == 4  # nothing lost
    write_lock.release()
    ticks.now += 60
    assert usage.flush_due() == 0
    for each in issued:
        assert hours(each.api_key) == [(NOW, {"accepted": 1})]


@pytest.mark.django_db(transaction=True)
def test_flush_all_returns_within_its_deadline_while_the_database_is_locked(clock, ticks, write_lock, contract_scopes):
    issued = _issued_and_counted(["a", "b", "c"])
    write_lock.hold()
    started = time.monotonic()
    assert usage.flush_all(attempts=100, deadline=1.5) == 3
    # The deadline, plus at most one write's wait for the lock (0.5 s) started just before it: a generous bound.
    assert time.monotonic() - started < 1.5 + 0.5 + 1
    assert usage.ACCUMULATOR.pending_keys() == 3  # what was not written is kept, not taken and lost
    write_lock.release()
    assert usage.flush_all(deadline=5) == 0
    for each in issued:
        assert hours(each.api_key) == [(NOW, {"accepted": 1})]


def test_flush_all_waits_for_a_writer_pass_no_longer_than_its_deadline(clock, ticks):
    issued = _issued_and_counted(["a"])
    assert usage._pass_lock.acquire(timeout=5)  # a writer pass under way (stuck on the database)
    try:
        started = time.monotonic()
        assert usage.flush_all(deadline=0.5) == 1
        assert time.monotonic() - started < 0.5 + 2
    finally:
        usage._pass_lock.release()
    assert usage.flush_all() == 0
    assert hours(issued[0].api_key) == [(NOW, {"accepted": 1})]


def test_the_exit_deadline_stays_below_gunicorns_graceful_timeout(settings):
    settings.OMIKEYS_DATABASE_CONNECT_TIMEOUT, settings.OMIKEYS_DATABASE_TIMEOUT = 3, 5
    assert usage.exit_deadline(30) == 20  # FLUSH_ALL_DEADLINE
    assert usage.exit_deadline(20) == 20 - 3 - 5 - 1
    assert usage.exit_deadline(5) == 1  # never nothing
    assert usage.exit_deadline(None) == usage.FLUSH_ALL_DEADLINE


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("active", [True, False])
def test_a_write_waits_for_the_owners_row_held_by_another_transaction(clock, ticks, active, contract_scopes):
    """erase_user locks the owner's row, then the keys: a write that took the key's locks without the owner's
    (an inactive owner's, before) could wait on erase_user while erase_user waits on it, a deadlock."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks: SQLite serializes every write with its one write lock")
    import psycopg

    owner = make_owner(f"row-held-{active}")
    issued = issue(owner)
    owner.is_active = active
    owner.save(update_fields=["is_active"])
    judge(issued.plaintext)
    settings_dict = connection.settings_dict
    holder = psycopg.connect(
        host=settings_dict["HOST"],
        port=settings_dict["PORT"],
        user=settings_dict["USER"],
        password=settings_dict["PASSWORD"],
        dbname=settings_dict["NAME"],
    )
    try:
        holder.execute(f"SELECT 1 FROM {owner._meta.db_table} WHERE id = %s FOR UPDATE", [owner.pk])
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 500")
        started = time.monotonic()
        assert usage.flush_all(attempts=1) == 1  # waited for the owner's row, then its statement timed out
        assert time.monotonic() - started < 5
        assert not KeyUsageHour.objects.exists()
        assert usage.ACCUMULATOR.pending_keys() == 1  # kept for the next write
    finally:
        holder.rollback()
        holder.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")
    assert usage.flush_all() == 0
    assert hours(issued.api_key) == [(NOW, {"accepted" if active else "owner_inactive": 1})]
