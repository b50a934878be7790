"""Verifying a presented key (one indexed read, no write), the verdict every door gives on it (with the
failed-attempt throttle), and stamping when a key was last used."""

import datetime
import logging
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Q
from django.utils import timezone

from .. import crypto, limits, lookup, metrics
from ..models import ApiKey
from . import usage

logger = logging.getLogger(__name__)

# How long a usage stamp may wait for SQLite's write lock before it is skipped.
STAMP_LOCK_WAIT_MS = 50


class Rejection:
    """Why a key did not verify; each reason is the message the API answers with."""

    INVALID = "Invalid API Key"
    EXPIRED = "Invalid API Key: this key has expired."
    DISABLED = "Invalid API Key: this key is disabled."


@dataclass(frozen=True)
class Verification:
    """The verdict of :func:`verify_key`: the key (``api_key``), or ``None`` and the ``rejection``.

    ``outcome`` says why, for metrics and logs: "valid", "malformed", "not_found",
    "revoked", "owner_inactive", "grace_ended", "expired" or "disabled" (the client is told less:
    see :class:`Rejection`). ``secret`` is which of the key's secrets matched,
    "current" or "replaced" (by a rotation), or ``None`` when no key matched; ``matched`` is the
    key the secret belongs to, refused or not (``None`` when none matched).
    """

    api_key: ApiKey | None  # with ``scope_codes``, a frozenset read in the same query
    rejection: str | None = None
    outcome: str = "valid"
    secret: str | None = None
    # The key the secret belongs to, even when it was refused (revoked, expired...); None when no key matched.
    # Not part of a verdict's equality: two verdicts with the same outcome are the same verdict.
    matched: ApiKey | None = field(default=None, compare=False, repr=False)


def verify_key(plaintext: str) -> Verification:
    """Verify a presented secret with one indexed read and no write.

    A key verifies when it exists, is not revoked, has not expired, is not disabled
    (paused), and its owner is an active user; an expired key that is also disabled is
    refused as expired (the lasting reason); the secret replaced by a rotation verifies until its grace
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
        return Verification(None, Rejection.INVALID, "revoked", secret, api_key)
    if not api_key.owner.is_active:
        return Verification(None, Rejection.INVALID, "owner_inactive", secret, api_key)
    if secret == "replaced" and not api_key.previous_secret_works(now):
        # A grace period cut short by the key's expiry ended because the key expired: say so.
        ended_by_expiry = api_key.expires_at is not None and api_key.previous_key_expires_at == api_key.expires_at
        if not (ended_by_expiry and api_key.is_expired(now)):
            return Verification(None, Rejection.INVALID, "grace_ended", secret, api_key)
    if api_key.is_expired(now):
        return Verification(None, Rejection.EXPIRED, "expired", secret, api_key)
    if api_key.is_disabled:
        return Verification(None, Rejection.DISABLED, "disabled", secret, api_key)
    api_key.replaced_secret_sunset = api_key.replaced_secret_works_until(now) if secret == "replaced" else None
    return Verification(api_key, None, "valid", secret, api_key)


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
    return stamp_last_used(api_key, what="key")


def stamp_last_used(obj, *, what: str) -> bool:
    """:func:`mark_used`'s stamp for any row with a ``last_used_at`` (a key, a service client); ``what``
    names it in the log line. True when it wrote."""
    now = timezone.now()
    interval = datetime.timedelta(seconds=settings.OMIKEYS_LAST_USED_INTERVAL)
    if obj.last_used_at is not None and now - obj.last_used_at < interval:
        return False
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - interval)
    try:
        with _short_lock_wait():
            written = type(obj)._default_manager.filter(stale, pk=obj.pk).update(last_used_at=now)
    except DatabaseError as exc:
        logger.info("last_used_at of %s %s not stamped this time: %s", what, obj.pk, type(exc).__name__)
        return False
    if written:
        obj.last_used_at = now
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


class Code:
    """The verdict on a presented key, as the service API names it (``POST /v1/service/keys/verify``)."""

    VALID = "VALID"
    MALFORMED = "MALFORMED"  # not shaped like a key at all (another credential, a typo, nothing)
    NOT_FOUND = "NOT_FOUND"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"  # the key expired, or the replaced secret presented is past its grace period
    OWNER_INACTIVE = "OWNER_INACTIVE"
    DISABLED = "DISABLED"  # paused by its owner or staff (lifecycle.disable_key); it may be enabled again
    INSUFFICIENT_SCOPE = "INSUFFICIENT_SCOPE"
    RATE_LIMITED = "RATE_LIMITED"

    ALL = (VALID, NOT_FOUND, REVOKED, EXPIRED, OWNER_INACTIVE, DISABLED, INSUFFICIENT_SCOPE, RATE_LIMITED, MALFORMED)


# Verification.outcome -> Code.
_CODE_OF_OUTCOME = {
    "valid": Code.VALID,
    "malformed": Code.MALFORMED,
    "not_found": Code.NOT_FOUND,
    "revoked": Code.REVOKED,
    "owner_inactive": Code.OWNER_INACTIVE,
    "grace_ended": Code.EXPIRED,
    "expired": Code.EXPIRED,
    "disabled": Code.DISABLED,
}


@dataclass(frozen=True)
class KeyVerdict:
    """What :func:`judge_key` decided: a :class:`Code`, the :class:`Verification` behind it, and for
    ``RATE_LIMITED`` the seconds to wait (``retry_after``); for ``INSUFFICIENT_SCOPE`` the scopes missing.

    ``verification`` is ``None`` only when the address was already throttled (nothing was looked up).
    ``api_key`` is the key when it verified (``VALID`` or ``INSUFFICIENT_SCOPE``), else ``None``.
    """

    code: str
    verification: Verification | None
    retry_after: int | None = None
    missing_scopes: tuple[str, ...] = ()

    @property
    def api_key(self) -> ApiKey | None:
        return self.verification.api_key if self.verification is not None else None


def judge_key(
    presented: str | None,
    *,
    client_address: str | None,
    required_scopes: Iterable[str] = (),
    user_agent: str = "",
) -> KeyVerdict:
    """The one verdict on a key presented by a client at ``client_address``, for every door that checks keys.

    ``presented`` is the text the client sent as its key (``None``: it sent something that
    cannot be one, such as a malformed ``Authorization`` header). In order:

    1. an address with too many failed attempts (``OMIKEYS_FAILED_VERIFICATION_RATE``, per IPv4
       address or IPv6 /64: ``limits.address_subject``) is ``RATE_LIMITED`` for any key, valid or
       not, without a lookup;
    2. :func:`verify_key`; a key that does not verify counts one failed attempt for the address
       (``RATE_LIMITED`` if that one goes over the rate) and is ``MALFORMED``, ``NOT_FOUND``,
       ``REVOKED``, ``EXPIRED`` or ``OWNER_INACTIVE``;
    3. a key that verifies is stamped used (:func:`mark_used`), then is ``INSUFFICIENT_SCOPE`` if it
       lacks any of ``required_scopes`` (not a failed attempt), else ``VALID``.

    A verdict on a key that matched (every code but ``MALFORMED``, ``NOT_FOUND`` and ``RATE_LIMITED``) is
    counted in the key's usage with ``client_address`` and ``user_agent`` (:mod:`.usage`: in memory, no query;
    the process's background writer writes it, at most once per ``OMIKEYS_LAST_USED_INTERVAL`` per key).

    Every verdict is counted in the verification metrics. ``ApiKeyAuthentication`` (``GET /v1/dev/key``
    and the views it protects) and the service API's verify endpoint both call this, so a key is judged
    one way wherever it is presented; only their words differ.
    """
    started = time.perf_counter()
    subject = limits.address_subject(client_address)
    throttle = limits.failed_verification()
    wait = throttle.retry_after(subject)
    if wait:
        return _throttled(throttle, wait, started, None)
    if presented is None:
        verification = Verification(None, Rejection.INVALID, "malformed")
    else:
        verification = verify_key(presented)
    api_key = verification.api_key
    if api_key is None:
        wait = throttle.hit(subject)
        if wait:
            return _throttled(throttle, wait, started, verification)
        code = _CODE_OF_OUTCOME[verification.outcome]
        if verification.matched is not None:
            usage.record(verification.matched, code, client_address=client_address, user_agent=user_agent)
        metrics.record_verification(verification.outcome, verification.secret, started)
        return KeyVerdict(code, verification)
    mark_used(api_key)
    missing = tuple(scope for scope in dict.fromkeys(required_scopes) if scope not in api_key.scope_codes)
    code = Code.INSUFFICIENT_SCOPE if missing else Code.VALID
    usage.record(api_key, code, client_address=client_address, user_agent=user_agent)
    metrics.record_verification(verification.outcome, verification.secret, started)
    if missing:
        metrics.record_scope_refusal()
        return KeyVerdict(Code.INSUFFICIENT_SCOPE, verification, missing_scopes=missing)
    return KeyVerdict(Code.VALID, verification)


def _throttled(throttle: limits.Throttle, wait: int, started: float, verification) -> KeyVerdict:
    metrics.record_throttle_refusal(throttle.name)
    metrics.record_verification("throttled", None, started)
    return KeyVerdict(Code.RATE_LIMITED, verification, retry_after=wait)
