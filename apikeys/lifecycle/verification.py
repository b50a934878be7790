"""Verifying a presented key (one indexed read, no write), and stamping when a key was last used."""

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from .. import crypto, lookup
from ..models import ApiKey


class Rejection:
    """Why a key did not verify; each reason is the message the API answers with."""

    INVALID = "Invalid API Key"
    EXPIRED = "Invalid API Key: this key has expired."


@dataclass(frozen=True)
class Verification:
    """The verdict of :func:`verify_key`: the key (``api_key``), or ``None`` and the ``rejection``."""

    api_key: ApiKey | None  # with ``scope_codes``, a frozenset read in the same query
    rejection: str | None = None


def verify_key(plaintext: str) -> Verification:
    """Verify a presented secret with one indexed read and no write.

    A key verifies when it exists, is not revoked, has not expired, and its owner
    is an active user; the secret replaced by a rotation verifies until its grace
    period ends. Otherwise ``api_key`` is ``None`` and ``rejection`` one of
    :class:`Rejection`'s messages. The lookup is by the SHA-256 of the candidate,
    so its timing says nothing about the secret. Both stored forms of the key are
    looked up at once (Omi's hash of the secret, and the tagged whole-key hash of keys
    issued before omikeys adopted it: ``crypto.candidate_hashes``).
    """
    if not crypto.is_well_formed(plaintext):
        return Verification(None, Rejection.INVALID)
    hashed, legacy_hashed = crypto.candidate_hashes(plaintext)
    api_key = lookup.find_by_hash(hashed, legacy_hashed)
    now = timezone.now()
    if api_key is None or api_key.is_revoked or not api_key.owner.is_active:
        return Verification(None, Rejection.INVALID)
    if api_key.key_hash not in (hashed, legacy_hashed) and not api_key.previous_secret_works(now):
        return Verification(None, Rejection.INVALID)
    if api_key.is_expired(now):
        return Verification(None, Rejection.EXPIRED)
    return Verification(api_key, None)


def mark_used(api_key: ApiKey) -> bool:
    """Stamp ``last_used_at``, at most once per ``OMIKEYS_LAST_USED_INTERVAL`` seconds per key.

    Inside the interval this is free: no query. The guarded update lets exactly one
    of several processes racing past the interval write. Returns True when it wrote.
    """
    now = timezone.now()
    interval = datetime.timedelta(seconds=settings.OMIKEYS_LAST_USED_INTERVAL)
    if api_key.last_used_at is not None and now - api_key.last_used_at < interval:
        return False
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - interval)
    if ApiKey.objects.filter(stale, pk=api_key.pk).update(last_used_at=now):
        api_key.last_used_at = now
        return True
    return False
