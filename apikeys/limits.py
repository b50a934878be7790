"""Throttles: sliding-window counters in Django's cache, shared by every process that shares the cache.

A throttle allows at most ``limit`` events in *any* stretch of ``period`` seconds, not
per calendar window: a fixed window lets twice the limit through across its edge
(30 at hh:mm:59, 30 more at hh:mm+1:00). The period is cut into ``SLOTS`` slots, each
a counter in the cache raised with the cache's atomic ``incr`` (atomic in Redis, and
within one process for the in-memory cache). An event is allowed when the slots that
overlap the last ``period`` seconds hold fewer than ``limit`` events; the oldest slot
counts whole, so the limit holds in every window of the period's length, and is at
most one slot (1/60 of the period) stricter.

Why not a library: DRF's ``SimpleRateThrottle`` keeps each subject's exact history
as one list in the cache, read and written back on every event, so two processes
racing each other lose events (bench/throttles.py measures it letting 2-4 times the
limit through under 8 threads on Redis); django-ratelimit counts fixed windows; the
``limits`` package has moving windows but its own storages (Redis, memcached, memory),
not Django's cache, which is what CACHE_URL configures and what the tests run on.
"""

import ipaddress
import logging
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from . import metrics

logger = logging.getLogger(__name__)

# How many slots a throttle's period is cut into: 1 s slots for a per-minute limit,
# 1 min slots for a per-hour one. More slots make waits more exact and reads longer.
SLOTS = 60


@dataclass(frozen=True)
class Throttle:
    """At most ``limit`` events in any ``period`` seconds for each subject (a user id, an address)."""

    name: str
    limit: int
    period: int

    @property
    def _width(self) -> float:
        return self.period / SLOTS

    def _prefix(self, subject: str) -> str:
        return f"omikeys:throttle:{self.name}:{subject}"

    def _slots(self, subject: str, now: float) -> dict[int, str]:
        """The slot counters that overlap the ``period`` seconds up to ``now``, oldest first: {slot: cache key}."""
        first, last = math.floor((now - self.period) / self._width), math.floor(now / self._width)
        return {slot: f"{self._prefix(subject)}:{slot}" for slot in range(first, last + 1)}

    def _free_at(self, counts: dict[int, int], now: float) -> float:
        """The moment (Unix seconds) the slots hold fewer than ``limit`` events, as old slots leave the period."""
        to_drop = sum(counts.values()) - self.limit + 1
        for slot in sorted(counts):
            to_drop -= counts[slot]
            if to_drop <= 0:
                # A slot stops counting once it ends a whole period ago.
                return (slot + 1) * self._width + self.period
        return now + self.period  # not reached while the counts hold the limit

    def retry_after(self, subject: str, now: float | None = None) -> int | None:
        """Seconds until ``subject`` may act again, or None when it may act now. Reads one cache entry.

        The event that fills the limit records until when ``subject`` is blocked, so
        this check (made on every API-key verification) is one ``get``.
        """
        now = time.time() if now is None else now
        try:
            until = cache.get(f"{self._prefix(subject)}:blocked")
        except Exception:  # whatever the cache backend raises; see _unavailable
            return self._unavailable()
        if until is not None and until > now:
            return max(1, math.ceil(until - now))
        return None

    def hit(self, subject: str, now: float | None = None) -> int | None:
        """Count one event for ``subject``; returns the seconds to wait if it went over the limit.

        An event over the limit is not counted (its slot is lowered again), so a client
        that keeps trying is let in as soon as the period allows, and the wait returned
        (for ``Retry-After``) is when that is.
        """
        now = time.time() if now is None else now
        slots = self._slots(subject, now)
        current = max(slots)
        key = slots.pop(current)
        timeout = math.ceil(self.period + self._width) + 1
        try:
            count = None
            while count is None:
                # add() is a no-op when the counter exists; incr() is then atomic. If the
                # counter expires in between, incr() fails and the next add() starts it again.
                cache.add(key, 0, timeout=timeout)
                try:
                    count = cache.incr(key)
                except ValueError:
                    pass
            found = cache.get_many(list(slots.values()))
            counts = {slot: found.get(name) or 0 for slot, name in slots.items()}
            counts[current] = count
            if sum(counts.values()) > self.limit:
                try:
                    cache.decr(key)
                except ValueError:
                    pass  # the slot expired meanwhile: nothing left to take back
                counts[current] -= 1
                return self._block(subject, now, self._free_at(counts, now))
            if sum(counts.values()) == self.limit:
                self._block(subject, now, self._free_at(counts, now))
        except Exception:  # whatever the cache backend raises; see _unavailable
            return self._unavailable()
        return None

    def _block(self, subject: str, now: float, until: float) -> int:
        """Record that ``subject`` may not act before ``until``, for :meth:`retry_after`; the seconds to wait."""
        wait = max(1, math.ceil(until - now))
        cache.set(f"{self._prefix(subject)}:blocked", until, timeout=wait + 1)
        return wait

    def _unavailable(self) -> None:
        # A throttle protects the service; it must not take it down. With the cache
        # (say, Redis) unreachable, requests go through unthrottled and the error is logged.
        logger.exception("throttle %r: the cache is unavailable; not throttling", self.name)
        return None


def address_subject(address: str | None) -> str:
    """What a per-address throttle counts: an IPv4 address, or an IPv6 /64 network.

    One IPv6 user usually holds a whole /64, so counting single IPv6 addresses
    would give them 2**64 separate allowances.
    """
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return "unknown"
    if parsed.version == 4:
        return str(parsed)
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.ip_network(f"{parsed}/64", strict=False))


def key_creation() -> Throttle:
    """Keys issued (created or rotated) per user, through the API and the web pages."""
    limit, period = settings.OMIKEYS_KEY_CREATION_RATE
    return Throttle("create", limit, period)


@dataclass(frozen=True)
class Refusal:
    """A throttle's answer: how long to wait, and the message that says so."""

    wait: int
    message: str


def count_key_issued(user) -> Refusal | None:
    """Count one key created or rotated by ``user``; a :class:`Refusal` when over the rate."""
    throttle = key_creation()
    wait = throttle.hit(str(user.pk))
    if wait is None:
        return None
    metrics.record_throttle_refusal(throttle.name)
    return Refusal(wait, f"Too many keys created or rotated recently. Try again in {wait_message(wait)}.")


def count_leak_report(address: str | None) -> Refusal | None:
    """Count one leak report (``POST /v1/leaks/report``) from ``address`` (per :func:`address_subject`);
    a :class:`Refusal` when over ``OMIKEYS_LEAK_REPORT_RATE``."""
    limit, period = settings.OMIKEYS_LEAK_REPORT_RATE
    throttle = Throttle("leak-report", limit, period)
    wait = throttle.hit(address_subject(address))
    if wait is None:
        return None
    metrics.record_throttle_refusal(throttle.name)
    return Refusal(wait, f"Too many reports from this address. Try again in {wait_message(wait)}.")


def count_queued_leak_report() -> Refusal | None:
    """Count one leak report about to be queued, from any address (the subject "all"): a :class:`Refusal`
    when over ``OMIKEYS_LEAK_REPORT_TOTAL_RATE``, so many addresses together cannot flood the worker's queue."""
    limit, period = settings.OMIKEYS_LEAK_REPORT_TOTAL_RATE
    throttle = Throttle("leak-report", limit, period)
    wait = throttle.hit("all")
    if wait is None:
        return None
    metrics.record_throttle_refusal(throttle.name)
    return Refusal(wait, f"Too many reports are being made. Try again in {wait_message(wait)}.")


def failed_verification() -> Throttle:
    """Failed API-key verifications per client address."""
    limit, period = settings.OMIKEYS_FAILED_VERIFICATION_RATE
    return Throttle("verify-fail", limit, period)


def failed_service_authentication() -> Throttle:
    """Failed service-token authentications per client address (the calling service's), at the rate of failed keys."""
    limit, period = settings.OMIKEYS_FAILED_VERIFICATION_RATE
    return Throttle("service-auth-fail", limit, period)


def wait_message(seconds: int) -> str:
    """How long to wait, for a person to read: "1 second", "5 minutes"."""
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minutes"
