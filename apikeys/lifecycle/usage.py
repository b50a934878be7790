"""Usage per key: counts held in each process's memory on the verification path, written with the last-used stamp.

The verification path pays nothing for it: :func:`record` adds to a dictionary under a
lock. A key's pending counts are written (:func:`flush_key`) at most once per
``OMIKEYS_LAST_USED_INTERVAL`` seconds per key and process: on the first use of the key
at least that long after the process last wrote them (its first use in a process only
starts the interval, so that request costs what it did before), beside ``mark_used``'s
stamp; by a background thread of each gunicorn worker (:func:`start_flusher`) for keys
that are due and not used again; and everything still pending when the worker exits
(:func:`flush_all`, ``apikeys.gunicorn_hooks``). Writes are increments (``n = n + k``), so any
number of processes add up exactly; they follow ``mark_used``'s best-effort rules: a
short lock wait on SQLite, and on any database error the counts stay pending for the
next try, the request is neither failed nor delayed. docs/usage.md says what a crash loses.

Reads (:func:`key_usage`) and the retention pass (:func:`prune`) are here too, and
:func:`erase_for_owner` for an erased user.
"""

import datetime
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Sum
from django.db.models.functions import Greatest
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
    addresses: dict = field(default_factory=dict)  # address -> _AddressSeen

    def merge(self, other: "_Pending") -> None:
        """Add ``other``'s counts (taken out for a write that failed) back into these."""
        for hour, counts in other.hours.items():
            mine = self.hours.setdefault(hour, {})
            for outcome, n in counts.items():
                mine[outcome] = mine.get(outcome, 0) + n
        if other.last_use is not None and (self.last_use is None or other.last_use[0] > self.last_use[0]):
            self.last_use = other.last_use
        for address, seen in other.addresses.items():
            mine = self.addresses.get(address)
            if mine is None:
                self.addresses[address] = seen
            else:
                mine.first_seen = min(mine.first_seen, seen.first_seen)
                mine.last_seen = max(mine.last_seen, seen.last_seen)
                mine.requests += seen.requests


class Accumulator:
    """A process's usage counts waiting to be written, safe for any number of threads.

    ``_pending``: key id -> :class:`_Pending`; ``_flushed``: key id -> the ``time.monotonic()`` of the
    key's last write attempt in this process (absent: never, so the next use writes).
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
    ) -> bool:
        """Count one presentation of ``key_id``; True when the key's counts are due to be written now.

        ``keep_address`` False (the owner is inactive or erased) counts without the address and user agent.
        Beyond ``OMIKEYS_USAGE_MAX_PENDING_KEYS`` keys the count is dropped; beyond
        ``OMIKEYS_USAGE_MAX_PENDING_ADDRESSES`` addresses for a key, the address is (each counted in
        ``omikeys_usage_dropped``).
        """
        # timezone.now() is already in UTC: the common case skips the conversion.
        hour = at.replace(minute=0, second=0, microsecond=0) if at.tzinfo is datetime.UTC else hour_of(at)
        if not keep_address:
            address, user_agent = None, ""
        with self._lock:
            pending = self._pending.get(key_id)
            if pending is None:
                if len(self._pending) >= settings.OMIKEYS_USAGE_MAX_PENDING_KEYS:
                    metrics.record_usage_dropped("request")
                    return False
                pending = self._pending[key_id] = _Pending()
            counts = pending.hours.setdefault(hour, {})
            counts[outcome] = counts.get(outcome, 0) + 1
            if pending.last_use is None or at >= pending.last_use[0]:
                pending.last_use = (at, outcome, address, user_agent[:USER_AGENT_MAX_LENGTH])
            if address:
                seen = pending.addresses.get(address)
                if seen is None:
                    if len(pending.addresses) >= settings.OMIKEYS_USAGE_MAX_PENDING_ADDRESSES:
                        metrics.record_usage_dropped("address")
                    else:
                        seen = pending.addresses[address] = _AddressSeen(at, at)
                if seen is not None:
                    seen.last_seen = max(seen.last_seen, at)
                    seen.requests += 1
            return self._due(key_id)

    def move(self, key_id, at: datetime.datetime, source: str, target: str) -> None:
        """Count one presentation at ``at`` under ``target`` instead of ``source`` (a scope refusal found late).

        The pending count may already be written: the change is then an increment of -1 and +1 in the same hour.
        """
        hour = hour_of(at)
        with self._lock:
            pending = self._pending.get(key_id)
            if pending is None:
                if len(self._pending) >= settings.OMIKEYS_USAGE_MAX_PENDING_KEYS:
                    metrics.record_usage_dropped("request")
                    return
                pending = self._pending[key_id] = _Pending()
            counts = pending.hours.setdefault(hour, {})
            counts[source] = counts.get(source, 0) - 1
            counts[target] = counts.get(target, 0) + 1
            if pending.last_use is not None and pending.last_use[0] == at and pending.last_use[1] == source:
                pending.last_use = (at, target, *pending.last_use[2:])

    def _due(self, key_id) -> bool:
        # Under the lock: claim the write, so one thread of the process makes it. A key seen for the first
        # time in the process starts its interval (no write: its first request costs what it did before).
        now = self.clock()
        last = self._flushed.get(key_id)
        if last is None:
            self._flushed[key_id] = now
            return settings.OMIKEYS_LAST_USED_INTERVAL == 0
        if now - last < settings.OMIKEYS_LAST_USED_INTERVAL:
            return False
        if len(self._flushed) >= 2 * settings.OMIKEYS_USAGE_MAX_PENDING_KEYS:
            # Forget writes older than the interval: such a key is due anyway.
            interval = settings.OMIKEYS_LAST_USED_INTERVAL
            self._flushed = {k: t for k, t in self._flushed.items() if now - t < interval}
        self._flushed[key_id] = now
        return True

    def claim_due(self) -> list:
        """The keys with pending counts whose interval has passed, each claimed for a write now."""
        with self._lock:
            return [key_id for key_id in list(self._pending) if self._due_again(key_id)]

    def _due_again(self, key_id) -> bool:
        last = self._flushed.get(key_id)
        if last is not None and self.clock() - last < settings.OMIKEYS_LAST_USED_INTERVAL:
            return False
        self._flushed[key_id] = self.clock()
        return True

    def take(self, key_id) -> "_Pending | None":
        """Remove and return ``key_id``'s pending counts (``None``: nothing pending)."""
        with self._lock:
            return self._pending.pop(key_id, None)

    def take_all(self) -> dict:
        """Remove and return every key's pending counts."""
        with self._lock:
            pending, self._pending = self._pending, {}
            return pending

    def put_back(self, key_id, pending: "_Pending") -> None:
        """Return counts whose write failed, to be written with the key's next write."""
        with self._lock:
            current = self._pending.get(key_id)
            if current is None:
                self._pending[key_id] = pending
            else:
                current.merge(pending)

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
    """Count a verdict (``lifecycle.Code``) on ``api_key`` and write the key's counts if they are due.

    Codes that name no key's use (MALFORMED, NOT_FOUND, RATE_LIMITED) are ignored. ``at`` defaults to now; it
    is kept on the key as ``usage_at`` for :func:`record_scope_refusal`. No query unless a write is due.
    """
    outcome = OUTCOME_OF_CODE.get(code)
    if outcome is None:
        return
    at = at or timezone.now()
    api_key.usage_at = at
    keep_address = api_key.owner.is_active
    if ACCUMULATOR.add(api_key.pk, outcome, at, client_address, user_agent or "", keep_address=keep_address):
        flush_key(api_key.pk)


def record_scope_refusal(api_key: ApiKey) -> None:
    """A key :func:`record` counted as accepted was then refused for a missing scope (a door's own check)."""
    at = getattr(api_key, "usage_at", None)
    if at is not None:
        ACCUMULATOR.move(api_key.pk, at, "accepted", "insufficient_scope")


def flush_key(key_id) -> bool:
    """Write ``key_id``'s pending counts now; True when written (or nothing was pending).

    Best effort, as ``mark_used``: on any database error the counts go back to pending and False is returned.
    """
    pending = ACCUMULATOR.take(key_id)
    if pending is None:
        return True
    return _write(key_id, pending)


def flush_all(attempts: int = 3) -> int:
    """Write every key's pending counts (a worker that exits); the number of keys whose write still failed.

    Not on a request's path, so each write waits for SQLite's lock as long as any statement
    (``OMIKEYS_DATABASE_TIMEOUT``), and a failed one is tried again, ``attempts`` times in all.
    Counts that could not be written stay pending.
    """
    failed = 0
    # After a flusher pass under way: the flusher is a daemon thread, ended with the process, and the
    # counts it holds while writing are no longer in the accumulator.
    with _pass_lock:
        for _ in range(attempts):
            failed = 0
            for key_id, pending in ACCUMULATOR.take_all().items():
                if not _write(key_id, pending, short_wait=False):
                    failed += 1
            if not failed:
                break
    return failed


def flush_due() -> int:
    """Write the pending counts of every key whose interval has passed (the flusher's pass); keys whose write
    failed."""
    with _pass_lock:
        return sum(not flush_key(key_id) for key_id in ACCUMULATOR.claim_due())


# Held by a flusher pass and by flush_all, so a worker's exit waits for a pass that is writing.
_pass_lock = threading.Lock()
_flusher_lock = threading.Lock()
_flusher_pid: int | None = None


def start_flusher(period: float | None = None) -> bool:
    """Start this process's background flusher (once per process; True when this call started it).

    A daemon thread that runs :func:`flush_due` every ``period`` seconds (default: the stamping interval, at most
    10 s and at least 1 s), so a key used in a burst and then left alone has its counts written within about one
    interval. gunicorn starts it in each worker (``post_worker_init``); a test process does not.
    """
    import os

    global _flusher_pid
    with _flusher_lock:
        if _flusher_pid == os.getpid():
            return False
        _flusher_pid = os.getpid()
    wait = period if period is not None else min(max(settings.OMIKEYS_LAST_USED_INTERVAL, 1), 10)
    threading.Thread(target=_flusher_loop, args=(wait,), name="omikeys-usage-flusher", daemon=True).start()
    return True


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


def _write(key_id, pending: _Pending, *, short_wait: bool = True) -> bool:
    from contextlib import nullcontext

    from .verification import _short_lock_wait

    try:
        with _short_lock_wait() if short_wait else nullcontext(), transaction.atomic():
            _write_counts(key_id, pending)
    except DatabaseError as exc:
        ACCUMULATOR.put_back(key_id, pending)
        metrics.record_usage_flush("failed")
        logger.info("usage of key %s not written this time: %s", key_id, type(exc).__name__)
        return False
    metrics.record_usage_flush("written")
    return True


def _increment(model, lookup: dict, increments: dict, create: dict, updates: dict | None = None) -> None:
    """``UPDATE ... SET n = n + k`` on the row of ``lookup``; on a miss insert it, and if another process inserted
    it meanwhile (IntegrityError, in a savepoint) update again."""
    changes = {name: F(name) + n for name, n in increments.items() if n}
    changes.update(updates or {})
    if not changes:
        return
    if model._default_manager.filter(**lookup).update(**changes):
        return
    try:
        with transaction.atomic():
            model._default_manager.create(**lookup, **create)
    except IntegrityError:
        model._default_manager.filter(**lookup).update(**changes)


def _write_counts(key_id, pending: _Pending) -> None:
    # Addresses held from before the owner's erasure (or deactivation) are not written after it.
    if (pending.addresses or pending.last_use) and not ApiKey.objects.filter(pk=key_id, owner__is_active=True).exists():
        pending.addresses = {}
        if pending.last_use is not None:
            pending.last_use = (*pending.last_use[:2], None, "")
    for hour, counts in sorted(pending.hours.items()):
        counts = {outcome: n for outcome, n in counts.items() if n}
        if counts:
            _increment(KeyUsageHour, {"api_key_id": key_id, "hour": hour}, counts, {**counts})
    if pending.last_use is not None:
        at, outcome, address, user_agent = pending.last_use
        values = {"at": at, "outcome": outcome, "address": address, "user_agent": user_agent}
        older = KeyLastUse.objects.filter(api_key_id=key_id, at__lte=at)
        if not older.update(**values) and not KeyLastUse.objects.filter(api_key_id=key_id).exists():
            try:
                with transaction.atomic():
                    KeyLastUse.objects.create(api_key_id=key_id, **values)
            except IntegrityError:
                older.update(**values)
    for address, seen in sorted(pending.addresses.items()):
        _increment(
            KeyAddress,
            {"api_key_id": key_id, "address": address},
            {"requests": seen.requests},
            {"first_seen": seen.first_seen, "last_seen": seen.last_seen, "requests": seen.requests},
            {"last_seen": Greatest(F("last_seen"), seen.last_seen)},
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


def totals_by_key(keys: Iterable[ApiKey], *, days: int = 30) -> dict:
    """Requests per key id over the last ``days`` days (every outcome), in one query."""
    since = hour_of(timezone.now()) - datetime.timedelta(days=days)
    sums = {f"n_{o}": Sum(o) for o in USAGE_OUTCOMES}
    rows = (
        KeyUsageHour.objects.filter(api_key__in=list(keys), hour__gt=since)
        .values("api_key_id")
        .annotate(**sums)
        .values_list("api_key_id", *sums)
    )
    return {row[0]: sum(n or 0 for n in row[1:]) for row in rows}


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
