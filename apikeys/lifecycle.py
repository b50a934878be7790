"""Issuing, rotating, revoking and verifying keys: the only code that writes API keys.

The JSON API, the web pages, the admin and the management commands all call
these functions, so a key is created, and its plaintext handled, one way, and
every change is audited in the same transaction that makes it.
"""

import datetime
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from . import audit, crypto, lookup
from .audit import Actor
from .models import ApiKey, KeyEvent, Scope, User, validate_key_name

MAX_GRACE_SECONDS = 7 * 24 * 60 * 60
# The codes of the ValidationErrors validate_expiry raises, for doors that show them beside the expiry field.
EXPIRY_ERROR_CODES = frozenset({"timezone_aware", "datetime_future", "datetime_too_late"})

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedKey:
    """A newly issued key and its plaintext, which exists only here and only once."""

    api_key: ApiKey
    plaintext: str

    def __repr__(self) -> str:
        return f"IssuedKey(api_key={self.api_key.pk}, key_prefix={self.api_key.key_prefix!r})"


class AlreadyIssued(Exception):
    """A request token was used before: its key exists, and its plaintext was shown then."""

    def __init__(self, api_key: ApiKey):
        super().__init__(f"A key was already issued for this request: {api_key.pk}")
        self.api_key = api_key


class TooManyKeys(Exception):
    """The owner already has the most active keys allowed."""

    def __init__(self, limit: int):
        keys = "key" if limit == 1 else "keys"
        super().__init__(
            f"You already have {limit} active API {keys}, the most allowed. "
            "Revoke a key you no longer use, then create a new one."
        )
        self.limit = limit


class NotChangeable(Exception):
    """The key's state forbids the change asked for; the message says why."""


class KeyRevoked(NotChangeable):
    """A revoked key never changes again."""


class NotRotatable(NotChangeable):
    """An expired key cannot be given a new secret (a revoked one raises :class:`KeyRevoked`)."""


class AlreadyRotated(Exception):
    """The key's secret changed since the caller looked: the rotation asked for has happened."""

    def __init__(self, api_key: ApiKey):
        super().__init__(f"The key {api_key.pk} was rotated already.")
        self.api_key = api_key


def default_scopes() -> list[Scope]:
    return list(Scope.objects.filter(is_default=True).order_by("code"))


def validate_expiry(expires_at: datetime.datetime | None, now: datetime.datetime | None = None) -> None:
    """An expiry must be in the future and at most ``OMIKEYS_MAX_KEY_LIFETIME_DAYS`` ahead.

    ``None`` (never expires) is always valid.
    """
    if expires_at is None:
        return
    if timezone.is_naive(expires_at):
        raise ValidationError(
            "Give the expiry with a time zone, for example 2027-01-31T00:00:00Z.", code="timezone_aware"
        )
    now = now or timezone.now()
    if expires_at <= now:
        raise ValidationError("The expiry must be in the future.", code="datetime_future")
    days = settings.OMIKEYS_MAX_KEY_LIFETIME_DAYS
    if expires_at > now + datetime.timedelta(days=days):
        raise ValidationError(f"The expiry must be at most {days} days from now.", code="datetime_too_late")


def issue_key(
    *,
    owner: User,
    name: str,
    scopes: Iterable[Scope] | None = None,
    expires_at: datetime.datetime | None = None,
    request_token: str | None = None,
    actor: Actor | None = None,
) -> IssuedKey:
    """Create a key for ``owner`` and return it with its plaintext.

    ``scopes`` of ``None`` means the read-only default. Duplicates are collapsed.
    The name is stripped and checked against the same rules every door uses, and
    ``expires_at`` (``None``: never) by :func:`validate_expiry`; a violation raises
    ``django.core.exceptions.ValidationError``. An owner with
    ``OMIKEYS_MAX_ACTIVE_KEYS`` active keys gets :class:`TooManyKeys`.

    ``request_token`` makes the call idempotent for forms: a second call by the
    same owner with the same token, even a concurrent one, issues nothing and
    raises :class:`AlreadyIssued` with the first call's key.
    """
    name = name.strip()
    validate_key_name(name)
    now = timezone.now()
    validate_expiry(expires_at, now)
    chosen = default_scopes() if scopes is None else sorted(set(scopes), key=lambda scope: scope.code)
    generated = crypto.generate_key()
    try:
        with transaction.atomic():
            _lock_owner(owner.pk)
            if request_token and ApiKey.objects.filter(owner=owner, request_token=request_token).exists():
                raise IntegrityError("request token used")
            _check_room_for_one_more(owner.pk)
            api_key = ApiKey.objects.create(
                owner=owner,
                name=name,
                key_prefix=generated.display_prefix,
                key_hash=generated.hashed,
                request_token=request_token,
                expires_at=expires_at,
                created_at=now,
            )
            api_key.scopes.add(*chosen)
            audit.record(
                api_key,
                KeyEvent.Action.CREATED,
                actor,
                at=now,
                scopes=[scope.code for scope in chosen],
                expires_at=_iso(expires_at),
            )
    except IntegrityError:
        # The unique (owner, request_token) constraint makes a concurrent twin wait
        # for the first insert and then fail here, so exactly one key is issued.
        earlier = ApiKey.objects.filter(owner=owner, request_token=request_token).first() if request_token else None
        if earlier is None:
            raise
        raise AlreadyIssued(earlier) from None
    logger.info("api key issued id=%s owner=%s prefix=%s", api_key.pk, owner.pk, api_key.key_prefix)
    return IssuedKey(api_key=api_key, plaintext=generated.plaintext)


def _lock_owner(owner_id) -> None:
    # Locking the owner's row makes changes that add an active key count one at a time,
    # so the limit holds under races (SQLite's IMMEDIATE transactions already do).
    list(User.objects.select_for_update().filter(pk=owner_id).values_list("pk", flat=True))


def _check_room_for_one_more(owner_id) -> None:
    limit = settings.OMIKEYS_MAX_ACTIVE_KEYS
    if ApiKey.objects.filter(owner_id=owner_id).active().count() >= limit:
        raise TooManyKeys(limit)


def update_key(
    api_key: ApiKey, *, name: str | None = None, scopes: Iterable[Scope] | None = None, actor: Actor | None = None
) -> list[str]:
    """Rename ``api_key`` and/or replace its scopes; returns the actions recorded.

    ``None`` leaves that part as it is. Each real change is audited ("renamed",
    "scopes_changed", with the old and new values) in the same transaction. The
    name follows the rules of :func:`issue_key`. A revoked key raises :class:`KeyRevoked`.
    A scope change applies to the key's next request.
    """
    if name is not None:
        name = name.strip()
        validate_key_name(name)
    with transaction.atomic():
        current = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if current.is_revoked:
            raise KeyRevoked("This key has been revoked; it cannot change.")
        now = timezone.now()
        recorded = []
        if name is not None and name != current.name:
            ApiKey.objects.filter(pk=current.pk).update(name=name)
            audit.record(current, KeyEvent.Action.RENAMED, actor, at=now, name=name, previous_name=current.name)
            recorded.append(KeyEvent.Action.RENAMED)
        if scopes is not None:
            before = sorted(current.scopes.values_list("code", flat=True))
            chosen = sorted(set(scopes), key=lambda scope: scope.code)
            after = [scope.code for scope in chosen]
            if after != before:
                current.scopes.set(chosen)
                audit.record(
                    current, KeyEvent.Action.SCOPES_CHANGED, actor, at=now, scopes=after, previous_scopes=before
                )
                recorded.append(KeyEvent.Action.SCOPES_CHANGED)
    if name is not None:
        api_key.name = name
    if recorded:
        logger.info("api key updated id=%s owner=%s changes=%s", api_key.pk, api_key.owner_id, ",".join(recorded))
    return recorded


def rotate_key(
    api_key: ApiKey,
    *,
    grace_seconds: int = 0,
    expected_prefix: str | None = None,
    actor: Actor | None = None,
) -> IssuedKey:
    """Give ``api_key`` a new secret and return it; id, name, scopes and expiry stay.

    The old secret stops at once, or keeps working for ``grace_seconds`` (at most
    seven days) so clients can move over. A secret still in the grace period of an
    earlier rotation stops now: only the newest replaced secret is kept.

    ``expected_prefix`` is the display prefix the caller saw; if the secret has
    changed since, nothing happens and :class:`AlreadyRotated` is raised, so a
    form sent twice rotates once. A revoked key raises :class:`KeyRevoked`, an
    expired one :class:`NotRotatable`. The caller decides access.
    """
    if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
        raise ValidationError(
            f"The grace period must be between 0 and {MAX_GRACE_SECONDS} seconds (7 days).", code="grace_range"
        )
    generated = crypto.generate_key()
    with transaction.atomic():
        current = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        now = timezone.now()
        if current.is_revoked:
            raise KeyRevoked("This key has been revoked; a revoked key cannot be rotated.")
        if current.is_expired(now):
            raise NotRotatable("This key has expired; an expired key cannot be rotated.")
        if expected_prefix is not None and current.key_prefix != expected_prefix:
            raise AlreadyRotated(current)
        grace_ends = now + datetime.timedelta(seconds=grace_seconds) if grace_seconds else None
        current.previous_key_hash = current.key_hash if grace_ends else None
        current.previous_key_expires_at = grace_ends
        current.key_hash = generated.hashed
        current.key_prefix = generated.display_prefix
        current.rotated_at = now
        current.save(
            update_fields=["previous_key_hash", "previous_key_expires_at", "key_hash", "key_prefix", "rotated_at"]
        )
        audit.record(
            current,
            KeyEvent.Action.ROTATED,
            actor,
            at=now,
            grace_seconds=grace_seconds,
            previous_key_expires_at=_iso(grace_ends),
        )
    for field in ("previous_key_hash", "previous_key_expires_at", "key_hash", "key_prefix", "rotated_at"):
        setattr(api_key, field, getattr(current, field))
    logger.info("api key rotated id=%s owner=%s grace=%ss", api_key.pk, api_key.owner_id, grace_seconds)
    return IssuedKey(api_key=api_key, plaintext=generated.plaintext)


def set_expiry(api_key: ApiKey, expires_at: datetime.datetime | None, *, actor: Actor | None = None) -> bool:
    """Change when ``api_key`` expires (``None``: never). Returns False when nothing changed.

    The new value follows :func:`validate_expiry`. A revoked key raises
    :class:`KeyRevoked`. An expired key given a later expiry works again, so it
    needs a place under the owner's active-key limit (:class:`TooManyKeys`).
    """
    if expires_at == api_key.expires_at:
        return False
    validate_expiry(expires_at)
    with transaction.atomic():
        _lock_owner(api_key.owner_id)
        current = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if current.is_revoked:
            raise KeyRevoked("This key has been revoked; its expiry cannot change.")
        if current.is_expired():
            _check_room_for_one_more(api_key.owner_id)
        previous = current.expires_at
        ApiKey.objects.filter(pk=api_key.pk).update(expires_at=expires_at)
        audit.record(
            current,
            KeyEvent.Action.EXPIRY_CHANGED,
            actor,
            at=timezone.now(),
            expires_at=_iso(expires_at),
            previous_expires_at=_iso(previous),
        )
    api_key.expires_at = expires_at
    logger.info("api key expiry changed id=%s owner=%s", api_key.pk, api_key.owner_id)
    return True


def _iso(moment: datetime.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def revoke_key(*, owner: User, key_id: uuid.UUID, actor: Actor | None = None) -> ApiKey:
    """Revoke one of ``owner``'s keys; it stops verifying at once.

    Revoking an already revoked key changes nothing and is not an error.
    Raises ``ApiKey.DoesNotExist`` for an unknown key or another owner's key.
    """
    api_key = ApiKey.objects.for_owner(owner).get(pk=key_id)
    revoke_api_key(api_key, actor=actor)
    return api_key


def revoke_api_key(api_key: ApiKey, *, actor: Actor | None = None) -> bool:
    """Revoke ``api_key`` whoever owns it; it stops verifying at once.

    For callers that have already decided access: the staff doors, or a page
    that fetched the key through its owner.

    Returns True when this call revoked it, False when it was already revoked.
    ``api_key.revoked_at`` is up to date afterwards either way.
    """
    if api_key.revoked_at is not None:
        return False
    now = timezone.now()
    # The guarded update keeps the first revocation time if two requests race,
    # and only the request that revoked the key records the event.
    with transaction.atomic():
        revoked = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now)
        if revoked:
            audit.record(api_key, KeyEvent.Action.REVOKED, actor, at=now)
    if revoked:
        api_key.revoked_at = now
        logger.info("api key revoked id=%s owner=%s", api_key.pk, api_key.owner_id)
        return True
    api_key.refresh_from_db(fields=["revoked_at"])
    return False


class Rejection:
    """Why a key did not verify; each reason has the message the API answers with."""

    INVALID = "Invalid API Key"
    EXPIRED = "Invalid API Key: this key has expired."


@dataclass(frozen=True)
class Verification:
    """The outcome of :func:`check_key`: the key, or the reason it was refused."""

    api_key: ApiKey | None  # with ``scope_codes``, a frozenset read in the same query
    rejection: str | None = None


def check_key(plaintext: str) -> Verification:
    """Verify a presented secret with one indexed read; no write.

    A key verifies when it exists, is not revoked, has not expired, and its owner
    is an active user; the secret replaced by a rotation verifies until its grace
    period ends. The lookup is by the SHA-256 of the candidate, so its timing says
    nothing about the secret.
    """
    if not crypto.is_well_formed(plaintext):
        return Verification(None, Rejection.INVALID)
    hashed = crypto.hash_key(plaintext)
    api_key = lookup.find_by_hash(hashed)
    now = timezone.now()
    if api_key is None or api_key.is_revoked or not api_key.owner.is_active:
        return Verification(None, Rejection.INVALID)
    if api_key.key_hash != hashed and not api_key.previous_secret_works(now):
        return Verification(None, Rejection.INVALID)
    if api_key.is_expired(now):
        return Verification(None, Rejection.EXPIRED)
    return Verification(api_key, None)


def verify_key(plaintext: str) -> ApiKey | None:
    """The key whose secret is ``plaintext`` if it verifies now, else ``None``."""
    return check_key(plaintext).api_key


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
