"""Usage per key: counts held in each process's memory on the verification path, written by a background writer.

A request pays nothing for it: :func:`record` adds to a dictionary under a lock and never
reads or writes the database (``mark_used``'s stamp stays as it was). Every write is made
outside requests: by the process's background writer (:func:`start_flusher`, a thread that
runs :func:`flush_due`), which writes each key's counts at most once per
``OMIKEYS_LAST_USED_INTERVAL`` seconds per process and advances the key's ``last_used_at``
(guarded: never backwards) in the same transaction; and by :func:`flush_all` when a
worker exits (``apikeys.gunicorn_hooks``). A write is a fixed handful of statements
whatever the key holds: one lock on the owner's row, then one multi-row
``INSERT ... ON CONFLICT DO UPDATE`` (``n = n + k``) per table (an hour with a negative correction
is its own statement), and the stamp. Increments make any number of processes add up exactly. A
write that fails on an error that may pass (``OperationalError``, ``InterfaceError``: locked,
unavailable, a timeout) is kept, and the pass ends there; anything else (the database refuses the
counts: ``IntegrityError``, ``DataError``...; or a value that cannot be sent) is dropped, counted
and logged.
docs/usage.md says what a crash loses.

Reads (:func:`key_usage`) and the retention pass (:func:`prune`) are here too, and
:func:`erase_for_owner` for an erased user.
"""

import datetime
import logging
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from .. import metrics
from ..models import USAGE_OUTCOMES, USER_AGENT_MAX_LENGTH, ApiKey, KeyAddress, KeyLastUse, KeyUsageHour, User

logger = logging.getLogger(__name__)

# Hourly counts are kept this many days (the longest window the usage endpoint shows).
HOURS_RETENTION_DAYS = 90

# Verdict code (lifecycle.Code) -> the outcome column it counts in; other codes (MALFORMED, NOT_FOUND,
# RATE_LIMITED) name no key and are not counted per key.
OUTCOME_OF_CODE = {
    "VALID": "accepted",
    "INSUFFICIENT_SCOPE": "insufficient_scope",
    "EXPIRED": "expired",
    "DISABLED": "disabled",
    "REVOKED": "revoked",
    "OWNER_INACTIVE": "owner_inactive",
}

# Outcomes of a key that verified: they advance the key's last_used_at (as mark_used does).
VERIFIED_OUTCOMES = ("accepted", "insufficient_scope")

# Rows per INSERT statement: far below SQLite's bound on parameters (999 before 3.32) at 8 columns.
ROWS_PER_STATEMENT = 100

# Errors after which a write may succeed later (the database locked, unavailable, a timeout, a lost connection):
# the counts are kept and the pass ends, as the next key's write would wait and fail the same way.
RETRYABLE_ERRORS = (OperationalError, InterfaceError)

# flush_all's overall bound in seconds when the caller gives none (gunicorn's graceful_timeout is 30 by default).
FLUSH_ALL_DEADLINE = 20.0

# Seconds between two attempts of flush_all after a write failed on an error that may pass.
FLUSH_ALL_BACKOFF = 0.5


def stored_address(address: str) -> str:
    """``address`` in the form KeyAddress stores it (IPv6 compressed and lower-case, its scope id removed), so
    forms of one address are one pending entry (one row of an upsert). Text that is no IP address is unchanged."""
    return _ADDRESS_FIELD.get_prep_value(address)


_ADDRESS_FIELD = KeyAddress._meta.get_field("address")


def hour_of(moment: datetime.datetime) -> datetime.datetime:
    """The start of the UTC hour ``moment`` (aware) falls in."""
    return moment.astimezone(datetime.UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class _AddressSeen:
    first_seen: datetime.datetime
    last_seen: datetime.datetime
    requests: int = 0


@dataclass
class _Pending:
    """One key's counts not written yet."""

    hours: dict = field(default_factory=dict)  # hour -> {outcome: count}
    last_use: tuple | None = None  # (at, outcome, address, user_agent)
    verified_at: datetime.datetime | None = None  # the latest use that verified: the key's last_used_at
    addresses: dict = field(default_factory=dict)  # address -> _AddressSeen

    def requests(self) -> int:
        """How many requests these counts hold (a moved count, -1 and +1, adds none)."""
        return max(sum(n for counts in self.hours.values() for n in counts.values()), 0)

    def merge(self, other: "_Pending") -> None:
        """Add ``other``'s counts (taken out for a write that failed) back into these."""
        for hour, counts in other.hours.items():
            mine = self.hours.setdefault(hour, {})
            for outcome, n in counts.items():
                mine[outcome] = mine.get(outcome, 0) + n
        if other.last_use is not None and (self.last_use is None or other.last_use[0] > self.last_use[0]):
            self.last_use = other.last_use
        if other.verified_at is not None and (self.verified_at is None or other.verified_at > self.verified_at):
            self.verified_at = other.verified_at
        for address, seen in other.addresses.items():  # keys already in stored form (Accumulator.add)
            mine = self.addresses.get(address)
            if mine is None:
                if len(self.addresses) >= settings.OMIKEYS_USAGE_MAX_PENDING_ADDRESSES:
                    metrics.record_usage_dropped("address")
                    continue
                self.addresses[address] = seen
            else:
                mine.first_seen = min(mine.first_seen, seen.first_seen)
                mine.last_seen = max(mine.last_seen, seen.last_seen)
                mine.requests += seen.requests


class Accumulator:
    """A process's usage counts waiting to be written, safe for any number of threads.

    ``_pending``: key id -> :class:`_Pending`; ``_flushed``: key id -> the ``time.monotonic()`` the key's
    interval started in this process (its first count, or its last write attempt).
    """

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock  # seconds, only differences matter; tests set their own
        self._lock = threading.Lock()
        self._pending: dict = {}
        self._flushed: dict = {}

    def add(
        self,
        key_id,
        outcome: str,
        at: datetime.datetime,
        address: str | None,
        user_agent: str,
        *,
        keep_address: bool = True,
    ) -> None:
        """Count one presentation of ``key_id`` in memory (never a query).

        ``keep_address`` False (the owner is inactive or erased) counts without the address and user agent.
        Beyond ``OMIKEYS_USAGE_MAX_PENDING_KEYS`` keys the count is dropped; beyond
        ``OMIKEYS_USAGE_MAX_PENDING_ADDRESSES`` addresses for a key, the address is (each counted in
        ``omikeys_usage_dropped``).
        """
        # timezone.now() is already in UTC: the common case skips the conversion.
        hour = at.replace(minute=0, second=0, microsecond=0) if at.tzinfo is datetime.UTC else hour_of(at)
        if not keep_address:
            address, user_agent = None, ""
        elif address and ":" in address:  # IPv6: one entry per stored form (IPv4 is stored as given)
            address = stored_address(address)
        with self._lock:
            pending = self._pending_for(key_id)
            if pending is None:
                return
            counts = pending.hours.setdefault(hour, {})
            counts[outcome] = counts.get(outcome, 0) + 1
            if pending.last_use is None or at >= pending.last_use[0]:
                pending.last_use = (at, outcome, address, user_agent[:USER_AGENT_MAX_LENGTH])
            if outcome in VERIFIED_OUTCOMES and (pending.verified_at is None or at > pending.verified_at):
                pending.verified_at = at
            if address:
                seen = pending.addresses.get(address)
                if seen is None:
                    if len(pending.addresses) >= settings.OMIKEYS_USAGE_MAX_PENDING_ADDRESSES:
                        metrics.record_usage_dropped("address")
                    else:
                        seen = pending.addresses[address] = _AddressSeen(at, at)
                if seen is not None:
                    seen.last_seen = max(seen.last_seen, at)
                    seen.first_seen = min(seen.first_seen, at)
                    seen.requests += 1

    def _pending_for(self, key_id) -> "_Pending | None":
        """The key's pending counts, new ones if it has none (held under ``self._lock``); ``None`` when the
        process already holds ``OMIKEYS_USAGE_MAX_PENDING_KEYS`` other keys (the request is dropped and counted)."""
        pending = self._pending.get(key_id)
        if pending is None:
            if len(self._pending) >= settings.OMIKEYS_USAGE_MAX_PENDING_KEYS:
                metrics.record_usage_dropped("request")
                return None
            pending = self._pending[key_id] = _Pending()
            # A key first seen in the process starts its interval: written one interval later.
            self._flushed.setdefault(key_id, self.clock())
        return pending

    def move(self, key_id, at: datetime.datetime, source: str, target: str) -> None:
        """Count one presentation at ``at`` under ``target`` instead of ``source`` (a scope refusal found late).

        When the pending count of ``source`` in that hour is already gone (written meanwhile, or dropped), the
        change is kept as -1 and +1 and the write never takes a column below zero (it stops at zero).
        """
        hour = hour_of(at)
        with self._lock:
            pending = self._pending_for(key_id)
            if pending is None:
                return
            counts = pending.hours.setdefault(hour, {})
            counts[source] = counts.get(source, 0) - 1
            counts[target] = counts.get(target, 0) + 1
            if pending.last_use is not None and pending.last_use[0] == at and pending.last_use[1] == source:
                pending.last_use = (at, target, *pending.last_use[2:])

    def claim_due(self) -> list:
        """The keys with pending counts whose interval has passed, each claimed (its interval restarted) now."""
        interval = settings.OMIKEYS_LAST_USED_INTERVAL
        with self._lock:
            now = self.clock()
            due = []
            for key_id in self._pending:
                last = self._flushed.get(key_id)
                if last is None or now - last >= interval:
                    self._flushed[key_id] = now
                    due.append(key_id)
            if len(self._flushed) > len(self._pending) + settings.OMIKEYS_USAGE_MAX_PENDING_KEYS:
                # Forget keys with nothing pending whose interval has passed: such a key is due anyway.
                self._flushed = {k: t for k, t in self._flushed.items() if k in self._pending or now - t < interval}
            return due

    def take(self, key_id) -> "_Pending | None":
        """Remove and return ``key_id``'s pending counts (``None``: nothing pending)."""
        with self._lock:
            return self._pending.pop(key_id, None)

    def take_all(self) -> dict:
        """Remove and return every key's pending counts."""
        with self._lock:
            pending, self._pending = self._pending, {}
            return pending

    def put_back(self, key_id, pending: "_Pending") -> bool:
        """Return counts whose write failed, to be written with the key's next write; False when dropped instead
        (``OMIKEYS_USAGE_MAX_PENDING_KEYS`` keys are already pending: counted as ``omikeys_usage_dropped``)."""
        with self._lock:
            current = self._pending.get(key_id)
            if current is None:
                if len(self._pending) >= settings.OMIKEYS_USAGE_MAX_PENDING_KEYS:
                    metrics.record_usage_dropped("request", pending.requests())
                    return False
                self._pending[key_id] = pending
            else:
                current.merge(pending)
            return True

    def pending_keys(self) -> int:
        """How many keys have counts waiting."""
        with self._lock:
            return len(self._pending)

    def clear(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._pending.clear()
            self._flushed.clear()


ACCUMULATOR = Accumulator()


def record(
    api_key: ApiKey, code: str, *, client_address: str | None, user_agent: str = "", at: datetime.datetime | None = None
) -> None:
    """Count a verdict (``lifecycle.Code``) on ``api_key`` in this process's memory; never a query.

    Codes that name no key's use (MALFORMED, NOT_FOUND, RATE_LIMITED) are ignored. ``at`` defaults to now; it
    is kept on the key as ``usage_at`` for :func:`record_scope_refusal`. The background writer writes it.
    """
    outcome = OUTCOME_OF_CODE.get(code)
    if outcome is None:
        return
    at = at or timezone.now()
    api_key.usage_at = at
    keep_address = api_key.owner.is_active
    ACCUMULATOR.add(api_key.pk, outcome, at, client_address, user_agent or "", keep_address=keep_address)


def record_scope_refusal(api_key: ApiKey) -> None:
    """A key :func:`record` counted as accepted was then refused for a missing scope (a door's own check)."""
    at = getattr(api_key, "usage_at", None)
    if at is not None:
        ACCUMULATOR.move(api_key.pk, at, "accepted", "insufficient_scope")


def flush_key(key_id) -> bool:
    """Write ``key_id``'s pending counts now (not on a request's path); True when written or nothing was pending.

    False when the write failed: kept pending on an error that may pass, else dropped (see :func:`_write`).
    """
    pending = ACCUMULATOR.take(key_id)
    if pending is None:
        return True
    return _write(key_id, pending) == WRITTEN


def flush_all(attempts: int = 3, deadline: float | None = None) -> int:
    """Write every key's pending counts (a worker that exits); the number of keys whose counts were not written.

    Bounded by ``deadline`` seconds in all (default :data:`FLUSH_ALL_DEADLINE`; gunicorn's hook passes less than
    its ``graceful_timeout``): it waits that long at most for a writer pass under way, and starts no write after
    it (a write under way still waits up to ``OMIKEYS_DATABASE_TIMEOUT``). An error that may pass ends an attempt
    (the keys not tried are kept); it tries again after :data:`FLUSH_ALL_BACKOFF` seconds, ``attempts`` times in
    all. What is not written stays in the accumulator (lost if the process exits).
    """
    limit = time.monotonic() + (FLUSH_ALL_DEADLINE if deadline is None else deadline)
    # After a writer pass under way: the writer is a daemon thread, ended with the process, and the
    # counts it holds while writing are no longer in the accumulator.
    if not _pass_lock.acquire(timeout=max(limit - time.monotonic(), 0)):
        logger.warning("usage not written: a writer pass was still under way at the deadline")
        return ACCUMULATOR.pending_keys()
    try:
        dropped = 0
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(FLUSH_ALL_BACKOFF, max(limit - time.monotonic(), 0)))
            if time.monotonic() >= limit:
                break
            taken = ACCUMULATOR.take_all()
            dropped += _write_keys(list(taken), taken.pop, limit)[1]
            for key_id, pending in taken.items():  # not tried: kept
                ACCUMULATOR.put_back(key_id, pending)
            if not ACCUMULATOR.pending_keys():
                break
        return dropped + ACCUMULATOR.pending_keys()
    finally:
        _pass_lock.release()


def exit_deadline(graceful_timeout: float | None) -> float:
    """Seconds :func:`flush_all` may take in a worker that exits: :data:`FLUSH_ALL_DEADLINE` at most, and below
    gunicorn's ``graceful_timeout`` (seconds; ``None``: unknown) by a write's own wait (connect timeout plus
    ``OMIKEYS_DATABASE_TIMEOUT``) and a second, so a write started just before the deadline ends before the
    worker is killed; at least one second."""
    if graceful_timeout is None:
        return FLUSH_ALL_DEADLINE
    margin = settings.OMIKEYS_DATABASE_CONNECT_TIMEOUT + settings.OMIKEYS_DATABASE_TIMEOUT + 1
    return max(min(FLUSH_ALL_DEADLINE, graceful_timeout - margin), 1.0)


def flush_due() -> int:
    """The background writer's pass: write the pending counts of every key whose interval has passed; the number
    of keys not written. An error that may pass ends the pass: the keys not tried keep their counts, written when
    their next interval has passed (they were claimed). Its duration is observed in
    ``omikeys_usage_flush_pass_seconds``."""
    started = time.perf_counter()
    with _pass_lock:
        failed = _write_keys(ACCUMULATOR.claim_due(), ACCUMULATOR.take, None)[0]
    metrics.observe_usage_flush_pass(time.perf_counter() - started)
    return failed


def _write_keys(key_ids: list, take, limit: float | None) -> tuple[int, int]:
    """Write the counts ``take(key_id)`` returns (``None``: nothing pending) for each of ``key_ids`` in turn, until
    an error that may pass or the ``time.monotonic()`` ``limit``: the counts of the keys after it are not taken.
    ``(keys not written, keys of those dropped)``; one log line when it stopped early."""
    failed = dropped = 0
    for done, key_id in enumerate(key_ids):
        if limit is not None and time.monotonic() >= limit:
            stopped = "the deadline passed"
            break
        pending = take(key_id)
        if pending is None:
            continue
        result = _write(key_id, pending)
        failed += result != WRITTEN
        dropped += result == DROPPED
        if result == KEPT:
            done += 1
            stopped = "an error that may pass"
            break
    else:
        return failed, dropped
    logger.info(
        "usage writes stopped after %s: %d of %d keys tried, %d not written; the rest kept for the next write",
        stopped,
        done,
        len(key_ids),
        failed,
    )
    return failed + len(key_ids) - done, dropped


# Held by a writer pass and by flush_all, so a worker's exit waits for a pass that is writing.
_pass_lock = threading.Lock()
_flusher_lock = threading.Lock()
_flusher_pid: int | None = None


def start_flusher(period: float | None = None) -> bool:
    """Start this process's background writer (once per process; True when this call started it).

    A daemon thread that runs :func:`flush_due` every ``period`` seconds (default: the stamping interval, at most
    10 s and at least 1 s), so counts are written within about the interval plus the period. gunicorn starts it
    in each worker (``post_worker_init``), ``runserver`` in its serving process (``ApiKeysConfig.ready``); tests
    and management commands do not.
    """
    import os

    global _flusher_pid
    with _flusher_lock:
        if _flusher_pid == os.getpid():
            return False
        _flusher_pid = os.getpid()
    wait = period if period is not None else writer_period()
    threading.Thread(target=_flusher_loop, args=(wait,), name="omikeys-usage-flusher", daemon=True).start()
    return True


def writer_period() -> float:
    """Seconds between two passes of the background writer: the stamping interval, at least 1 and at most 10."""
    return min(max(settings.OMIKEYS_LAST_USED_INTERVAL, 1), 10)


def usage_delay_seconds() -> int:
    """About the longest a count waits in memory while writes succeed: the stamping interval plus the writer's
    period, in seconds (70 by default). Pages say counts this recent may be missing."""
    return int(settings.OMIKEYS_LAST_USED_INTERVAL + writer_period())


def _flusher_loop(wait: float) -> None:
    from django.db import close_old_connections

    while True:
        time.sleep(wait)
        try:
            flush_due()
        except Exception:  # never let the thread die: the next pass tries again
            logger.exception("usage flush pass failed")
        finally:
            close_old_connections()


# What _write did with a key's counts.
WRITTEN, KEPT, DROPPED = "written", "kept", "dropped"


def _write(key_id, pending: _Pending) -> str:
    """Write ``pending`` in one transaction; :data:`WRITTEN`, :data:`KEPT` or :data:`DROPPED`.

    An error that may pass (:data:`RETRYABLE_ERRORS`: locked, unavailable, a timeout, a lost connection) puts
    the counts back for the next write (``KEPT``); any other error (the database refused them:
    ``IntegrityError``, ``DataError``...; or a value that cannot be sent: ``ValueError``, ``UnicodeError``) would
    fail again every time, so they are dropped, counted (``omikeys_usage_flushes_total{result="dropped"}``) and
    logged (``DROPPED``). A commit whose outcome is unknown (the connection lost during COMMIT) is kept too, and
    may be counted twice.
    """
    try:
        with transaction.atomic():
            _write_counts(key_id, pending)
    except RETRYABLE_ERRORS:
        ACCUMULATOR.put_back(key_id, pending)
        metrics.record_usage_flush("failed")
        return KEPT
    except Exception as exc:  # dropped, counted and logged: never retried forever
        metrics.record_usage_flush("dropped")
        logger.warning("usage of key %s dropped, it could not be written: %s: %s", key_id, type(exc).__name__, exc)
        return DROPPED
    metrics.record_usage_flush("written")
    return WRITTEN


def _db(model, name: str, value):
    return model._meta.get_field(name).get_db_prep_value(value, connection)


def _upsert(model, columns: tuple, conflict: tuple, rows: list, assignments: str, where: str = "") -> None:
    """``INSERT INTO <model's table> (columns) VALUES (...), ... ON CONFLICT (conflict) DO UPDATE SET ...``,
    ``ROWS_PER_STATEMENT`` rows a statement (SQLite >= 3.24 and PostgreSQL). ``assignments`` and ``where`` may
    name the table as ``{t}`` and the proposed row as ``excluded``."""
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    names = ", ".join(qn(c) for c in columns)
    update = assignments.format(t=table) + (f" WHERE {where.format(t=table)}" if where else "")
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES {', '.join([row_sql] * len(chunk))} "
                f"ON CONFLICT ({', '.join(qn(c) for c in conflict)}) DO UPDATE SET {update}",
                [value for row in chunk for value in row],
            )


def _write_counts(key_id, pending: _Pending) -> None:
    # The owner's row first, locked whatever it holds (erase_user locks it before the keys, in the same order;
    # a lock taken only on an active owner would let an inactive owner's write wait on the keys erase_user holds
    # while erase_user waits on this write's rows); then decided here: addresses held from before the owner's
    # erasure or deactivation are not written after it.
    owner_active = list(
        User.objects.select_for_update(of=("self",))
        .filter(api_keys__pk=key_id)
        .values_list("is_active", flat=True)
        .order_by()[:1]
    )
    if not any(owner_active):
        pending.addresses = {}
        if pending.last_use is not None:
            pending.last_use = (*pending.last_use[:2], None, "")
    key = _db(KeyUsageHour, "api_key", key_id)  # the database's form of the key's id (a UUID)
    qn = connection.ops.quote_name
    plain, signed = [], []
    for hour, counts in sorted(pending.hours.items()):
        increments = [counts.get(o, 0) for o in USAGE_OUTCOMES]
        if any(increments):
            row = [key, _db(KeyUsageHour, "hour", hour), *(max(k, 0) for k in increments)]
            (signed if min(increments) < 0 else plain).append((row, increments))
    if plain:
        _upsert(
            KeyUsageHour,
            ("api_key_id", "hour", *USAGE_OUTCOMES),
            ("api_key_id", "hour"),
            [row for row, _ in plain],
            ", ".join(f"{qn(o)} = {{t}}.{qn(o)} + excluded.{qn(o)}" for o in USAGE_OUTCOMES),
        )
    for row, increments in signed:  # rare: a late scope refusal after its count was written or dropped
        _upsert(
            KeyUsageHour,
            ("api_key_id", "hour", *USAGE_OUTCOMES),
            ("api_key_id", "hour"),
            [row],
            # Never below zero: the count it corrects may have been dropped.
            ", ".join(
                f"{qn(o)} = CASE WHEN {{t}}.{qn(o)} + {int(k)} < 0 THEN 0 ELSE {{t}}.{qn(o)} + {int(k)} END"
                for o, k in zip(USAGE_OUTCOMES, increments, strict=True)
                if k
            ),
        )
    if pending.last_use is not None:
        at, outcome, address, user_agent = pending.last_use
        _upsert(
            KeyLastUse,
            ("api_key_id", "at", "outcome", "address", "user_agent"),
            ("api_key_id",),
            [[key, _db(KeyLastUse, "at", at), outcome, _db(KeyLastUse, "address", address), user_agent]],
            ", ".join(f"{qn(c)} = excluded.{qn(c)}" for c in ("at", "outcome", "address", "user_agent")),
            where=f"excluded.{qn('at')} >= {{t}}.{qn('at')}",
        )
    if pending.addresses:
        first, last = qn("first_seen"), qn("last_seen")
        _upsert(
            KeyAddress,
            ("api_key_id", "address", "first_seen", "last_seen", "requests"),
            ("api_key_id", "address"),
            [
                [
                    key,
                    _db(KeyAddress, "address", address),
                    _db(KeyAddress, "first_seen", seen.first_seen),
                    _db(KeyAddress, "last_seen", seen.last_seen),
                    seen.requests,
                ]
                for address, seen in sorted(pending.addresses.items())
            ],
            f"{qn('requests')} = {{t}}.{qn('requests')} + excluded.{qn('requests')}, "
            f"{first} = CASE WHEN excluded.{first} < {{t}}.{first} THEN excluded.{first} ELSE {{t}}.{first} END, "
            f"{last} = CASE WHEN excluded.{last} > {{t}}.{last} THEN excluded.{last} ELSE {{t}}.{last} END",
        )
    if pending.verified_at is not None:
        # mark_used's guarded stamp, written with the counts: last_used_at only moves forward.
        ApiKey.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=pending.verified_at), pk=key_id).update(
            last_used_at=pending.verified_at
        )


# --- reading ------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageRow:
    """One day's or hour's counts: ``start`` (aware, UTC), a count per outcome (``counts``), and their ``total``."""

    start: datetime.datetime
    counts: dict

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class KeyUsage:
    """What :func:`key_usage` reads: ``rows`` oldest first (every day or hour of the window, zeros included),
    ``totals`` per outcome, ``last_use`` (a :class:`~apikeys.models.KeyLastUse` or ``None``) and ``addresses``
    (:class:`~apikeys.models.KeyAddress` seen in the retention window, most recent first)."""

    days: int
    granularity: str
    rows: list
    totals: dict
    last_use: KeyLastUse | None
    addresses: list

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    @property
    def busiest(self) -> int:
        """The largest row total (0 when unused): the chart's scale."""
        return max((row.total for row in self.rows), default=0)


GRANULARITIES = ("day", "hour")
MAX_DAYS = HOURS_RETENTION_DAYS


def key_usage(
    api_key: ApiKey, *, days: int = 30, granularity: str = "day", now: datetime.datetime | None = None
) -> KeyUsage:
    """``api_key``'s usage over the last ``days`` days (1..90) per day or hour (UTC), counts written so far.

    The window ends with the current day (hour) and holds ``days`` days (``days * 24`` hours). Counts still
    pending in processes' memory are not included (docs/usage.md). Raises ``ValueError`` for ``days`` outside
    1..90 or an unknown ``granularity``.
    """
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS}")
    if granularity not in GRANULARITIES:
        raise ValueError("granularity must be day or hour")
    now = now or timezone.now()
    current_hour = hour_of(now)
    if granularity == "day":
        step = datetime.timedelta(days=1)
        last = current_hour.replace(hour=0)
        starts = [last - step * i for i in range(days - 1, -1, -1)]
    else:
        step = datetime.timedelta(hours=1)
        starts = [current_hour - step * i for i in range(days * 24 - 1, -1, -1)]
    window = KeyUsageHour.objects.filter(api_key=api_key, hour__gte=starts[0], hour__lte=current_hour)
    by_start = {start: dict.fromkeys(USAGE_OUTCOMES, 0) for start in starts}
    for hour in window.only("hour", *USAGE_OUTCOMES):
        start = hour_of(hour.hour)
        if granularity == "day":
            start = start.replace(hour=0)
        counts = by_start.get(start)
        if counts is not None:
            for outcome in USAGE_OUTCOMES:
                counts[outcome] += getattr(hour, outcome)
    rows = [UsageRow(start, counts) for start, counts in by_start.items()]
    totals = {outcome: sum(row.counts[outcome] for row in rows) for outcome in USAGE_OUTCOMES}
    last_use = KeyLastUse.objects.filter(api_key=api_key).first()
    since = now - datetime.timedelta(days=settings.OMIKEYS_USAGE_ADDRESS_RETENTION_DAYS)
    addresses = list(KeyAddress.objects.filter(api_key=api_key, last_seen__gte=since).order_by("-last_seen", "address"))
    return KeyUsage(days, granularity, rows, totals, last_use, addresses)


# --- retention and erasure ---------------------------------------------------------------


@dataclass(frozen=True)
class PruneReport:
    """What :func:`prune` removed: hourly rows, address rows, and last uses whose address and user agent it emptied."""

    hours: int
    addresses: int
    last_uses: int


def prune(now: datetime.datetime | None = None) -> PruneReport:
    """Delete hourly counts older than 90 days and addresses last seen more than
    ``OMIKEYS_USAGE_ADDRESS_RETENTION_DAYS`` ago; empty the address and user agent of older last uses."""
    now = now or timezone.now()
    oldest_hour = hour_of(now) - datetime.timedelta(days=HOURS_RETENTION_DAYS)
    hours, _ = KeyUsageHour.objects.filter(hour__lt=oldest_hour).delete()
    cutoff = now - datetime.timedelta(days=settings.OMIKEYS_USAGE_ADDRESS_RETENTION_DAYS)
    addresses, _ = KeyAddress.objects.filter(last_seen__lt=cutoff).delete()
    stale = KeyLastUse.objects.filter(at__lt=cutoff).exclude(address__isnull=True, user_agent="")
    last_uses = stale.update(address=None, user_agent="")
    return PruneReport(hours, addresses, last_uses)


def erase_for_owner(user: User) -> int:
    """Delete the addresses ``user``'s keys were used from and empty their last uses' address and user agent
    (counts stay: they hold no personal data). Run inside ``erase_user``'s transaction; the number of rows changed."""
    deleted, _ = KeyAddress.objects.filter(api_key__owner=user).delete()
    key_ids = list(ApiKey.objects.for_owner(user).values_list("pk", flat=True))
    emptied = (
        KeyLastUse.objects.filter(api_key_id__in=key_ids)
        .exclude(address__isnull=True, user_agent="")
        .update(address=None, user_agent="")
    )
    return deleted + emptied
