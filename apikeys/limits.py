"""Throttles: fixed-window counters in Django's cache, shared by every process that shares the cache.

A counter is one cache entry per subject and window, raised with the cache's atomic
``incr`` (atomic in Redis, and within one process for the in-memory cache). DRF's own
throttles keep a list of timestamps and rewrite it on every request, which loses
counts when two processes race; a counter does not.
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


@dataclass(frozen=True)
class Throttle:
    """At most ``limit`` events per ``period`` seconds for each subject (a user id, an address)."""

    name: str
    limit: int
    period: int

    def _window(self, now: float) -> tuple[str, float]:
        start = now - now % self.period
        return f"omikeys:throttle:{self.name}:{int(start)}", start + self.period

    def retry_after(self, subject: str, now: float | None = None) -> int | None:
        """Seconds until ``subject`` may act again, or None when it may act now. Reads only."""
        now = time.time() if now is None else now
        key, ends = self._window(now)
        try:
            count = cache.get(f"{key}:{subject}") or 0
        except Exception:  # whatever the cache backend raises; see _unavailable
            return self._unavailable()
        if count >= self.limit:
            return max(1, math.ceil(ends - now))
        return None

    def hit(self, subject: str, now: float | None = None) -> int | None:
        """Count one event for ``subject``; returns the seconds to wait if it went over the limit."""
        now = time.time() if now is None else now
        key, ends = self._window(now)
        key = f"{key}:{subject}"
        timeout = math.ceil(ends - now) + 1
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
        except Exception:  # whatever the cache backend raises; see _unavailable
            return self._unavailable()
        if count > self.limit:
            return max(1, math.ceil(ends - now))
        return None

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


def failed_verification() -> Throttle:
    """Failed API-key verifications per client address."""
    limit, period = settings.OMIKEYS_FAILED_VERIFICATION_RATE
    return Throttle("verify-fail", limit, period)


def wait_message(seconds: int) -> str:
    """How long to wait, for a person to read: "1 second", "5 minutes"."""
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minutes"
