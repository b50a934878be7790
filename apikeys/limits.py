"""Throttles: fixed-window counters in Django's cache, shared by every process that shares the cache.

A counter is one cache entry per subject and window, raised with the cache's atomic
``incr`` (atomic in Redis, and within one process for the in-memory cache). DRF's own
throttles keep a list of timestamps and rewrite it on every request, which loses
counts when two processes race; a counter does not.
"""

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache


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
        if (cache.get(f"{key}:{subject}") or 0) >= self.limit:
            return max(1, math.ceil(ends - now))
        return None

    def hit(self, subject: str, now: float | None = None) -> int | None:
        """Count one event for ``subject``; returns the seconds to wait if it went over the limit."""
        now = time.time() if now is None else now
        key, ends = self._window(now)
        key = f"{key}:{subject}"
        # add() is a no-op when the counter exists; incr() is then atomic.
        cache.add(key, 0, timeout=math.ceil(ends - now) + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add() and incr()
            cache.add(key, 1, timeout=math.ceil(ends - now) + 1)
            count = 1
        if count > self.limit:
            return max(1, math.ceil(ends - now))
        return None


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
    wait = key_creation().hit(str(user.pk))
    if wait is None:
        return None
    return Refusal(wait, f"Too many keys created or rotated recently. Try again in {wait_message(wait)}.")


def failed_verification() -> Throttle:
    """Failed API-key verifications per client address."""
    limit, period = settings.OMIKEYS_FAILED_VERIFICATION_RATE
    return Throttle("verify-fail", limit, period)


def wait_message(seconds: int) -> str:
    """"1 second", "5 minutes": how long to wait, for a person to read."""
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minutes"
