"""Verifying a presented key (one indexed read, no write), and stamping when a key was last used."""

import datetime
import logging
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Q
from django.utils import timezone

from .. import crypto, lookup
from ..models import ApiKey

logger = logging.getLogger(__name__)

# How long a usage stamp may wait for SQLite's write lock before it is skipped.
STAMP_LOCK_WAIT_MS = 50


class Rejection:
    """Why a key did not verify; each reason is the message the API answers with."""

    INVALID = "Invalid API Key"
    EXPIRED = "Invalid API Key: this key has expired."


@dataclass(frozen=True)
class Verification:
    """The verdict of :func:`verify_key`: the key (``api_key``), or ``None`` and the ``rejection``.

    ``outcome`` says why, for metrics and logs: "valid", "malformed", "not_found",
    "revoked", "owner_inactive", "grace_ended" or "expired" (the client is told less:
    see :class:`Rejection`). ``secret`` is which of the key's secrets matched,
    "current" or "replaced" (by a rotation), or ``None`` when no key matched.
    """

    api_key: ApiKey | None  # with ``scope_codes``, a frozenset read in the same query
    rejection: str | None = None
    outcome: str = "valid"
    secret: str | None = None


def verify_key(plaintext: str) -> Verification:
    """Verify a presented secret with one indexed read and no write.

    A key verifies when it exists, is not revoked, has not expired, and its owner
    is an active user; the secret replaced by a rotation verifies until its grace
    period ends: then ``api_key.replaced_secret_sunset`` is the moment it stops (the
    grace period's end, or the key's expiry if sooner), else ``None``. Otherwise
    ``api_key`` is ``None`` and ``rejection`` one of :class:`Rejection`'s messages.
    The lookup is by the SHA-256 of the candidate, so its timing says nothing about the secret.
    Both stored forms of the key are looked up at once (Omi's hash of the secret, and the
    tagged whole-key hash of keys issued before omikeys adopted it: ``crypto.candidate_hashes``).
    """
    if not crypto.is_well_formed(plaintext):
        return Verification(None, Rejection.INVALID, "malformed")
    hashed, legacy_hashed = crypto.candidate_hashes(plaintext)
    api_key = lookup.find_by_hash(hashed, legacy_hashed)
    now = timezone.now()
    if api_key is None:
        return Verification(None, Rejection.INVALID, "not_found")
    secret = "current" if api_key.key_hash in (hashed, legacy_hashed) else "replaced"
    if api_key.is_revoked:
        return Verification(None, Rejection.INVALID, "revoked", secret)
    if not api_key.owner.is_active:
        return Verification(None, Rejection.INVALID, "owner_inactive", secret)
    if secret == "replaced" and not api_key.previous_secret_works(now):
        # A grace period cut short by the key's expiry ended because the key expired: say so.
        ended_by_expiry = api_key.expires_at is not None and api_key.previous_key_expires_at == api_key.expires_at
        if not (ended_by_expiry and api_key.is_expired(now)):
            return Verification(None, Rejection.INVALID, "grace_ended", secret)
    if api_key.is_expired(now):
        return Verification(None, Rejection.EXPIRED, "expired", secret)
    api_key.replaced_secret_sunset = api_key.replaced_secret_works_until(now) if secret == "replaced" else None
    return Verification(api_key, None, "valid", secret)


def mark_used(api_key: ApiKey) -> bool:
    """Stamp ``last_used_at``, at most once per ``OMIKEYS_LAST_USED_INTERVAL`` seconds per key.

    Inside the interval this is free: no query. The guarded update lets exactly one
    of several processes racing past the interval write. Returns True when it wrote.

    The stamp is best-effort: it never delays or fails the verification it follows.
    On SQLite it waits at most ``STAMP_LOCK_WAIT_MS`` for the write lock (another
    process may hold it for seconds); if the write cannot be made, for that or any
    other database error, it is skipped (False) and the key's next use tries again.
    Call it outside a transaction: on PostgreSQL a failed write inside one would
    abort it.
    """
    now = timezone.now()
    interval = datetime.timedelta(seconds=settings.OMIKEYS_LAST_USED_INTERVAL)
    if api_key.last_used_at is not None and now - api_key.last_used_at < interval:
        return False
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - interval)
    try:
        with _short_lock_wait():
            written = ApiKey.objects.filter(stale, pk=api_key.pk).update(last_used_at=now)
    except DatabaseError as exc:
        logger.info("last_used_at of key %s not stamped this time: %s", api_key.pk, type(exc).__name__)
        return False
    if written:
        api_key.last_used_at = now
        return True
    return False


@contextmanager
def _short_lock_wait():
    """On SQLite, wait at most ``STAMP_LOCK_WAIT_MS`` for the write lock inside the block.

    SQLite's busy timeout belongs to the connection; it is set on the driver's
    connection directly (not through a cursor, so no query is added to Django's
    record) and put back afterwards. Elsewhere this does nothing.
    """
    if connection.vendor != "sqlite":
        yield
        return
    connection.ensure_connection()
    raw = connection.connection
    usual_ms = int(float(connection.settings_dict.get("OPTIONS", {}).get("timeout", 5)) * 1000)
    raw.execute(f"PRAGMA busy_timeout = {STAMP_LOCK_WAIT_MS}")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA busy_timeout = {usual_ms}")
