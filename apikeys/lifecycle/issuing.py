"""Issuing a key, and the pieces every later change of a key shares (the owner lock, the active-key limit).

The key is created and audited in one transaction. Bad input raises a
``ValidationError`` keyed by field; any other refusal a ``LifecycleError``.
"""

import datetime
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import audit, crypto
from ..audit import Actor
from ..firebase import FirebaseUser
from ..models import ApiKey, KeyEvent, Scope, User, validate_key_name
from .errors import AlreadyIssued, OwnerNotEligible, TooManyKeys
from .rules import default_scopes, ensure_may_hold_keys, validate_expiry

logger = logging.getLogger("apikeys.lifecycle")


@dataclass(frozen=True)
class IssuedKey:
    """A newly issued (or rotated) key and its plaintext, which exists only here and only once."""

    api_key: ApiKey
    plaintext: str

    def __repr__(self) -> str:
        return f"IssuedKey(api_key={self.api_key.pk}, key_prefix={self.api_key.key_prefix!r})"


@contextmanager
def field_errors(field: str) -> Iterator[None]:
    """Raise a validator's field-less ``ValidationError`` as ``ValidationError({field: ...})``."""
    try:
        yield
    except ValidationError as error:
        raise ValidationError({field: error.error_list}) from None


def clean_name(name: str) -> str:
    """The name stripped, or ``ValidationError`` keyed "name" if it breaks the rules every door uses."""
    name = name.strip()
    with field_errors("name"):
        validate_key_name(name)
    return name


def choose_scopes(scopes: Iterable[Scope] | None) -> list[Scope]:
    """The scopes a key gets: each of ``scopes`` once, by code, or the read-only default for ``None``.

    A key without a scope could do nothing, so an empty choice raises ``ValidationError``
    keyed "scopes" (code "scopes_empty"); so does ``None`` while no scope is a default.
    """
    if scopes is None:
        chosen = default_scopes()
        message = "There is no read-only default at present: choose at least one scope."
    else:
        chosen = sorted(set(scopes), key=lambda scope: scope.code)
        message = "A key needs at least one scope."
    if not chosen:
        raise ValidationError({"scopes": ValidationError(message, code="scopes_empty")})
    return chosen


def issue_key(
    *,
    owner: User,
    name: str,
    scopes: Iterable[Scope] | None = None,
    expires_at: datetime.datetime | None = None,
    request_token: str | None = None,
    actor: Actor | None = None,
    firebase_account: FirebaseUser | None = None,
) -> IssuedKey:
    """Create a key for ``owner`` and return it with its plaintext.

    The owner must pass :func:`ensure_may_hold_keys` (given ``firebase_account`` when
    the door has just asked Firebase), else :class:`OwnerNotEligible`; whether the owner is
    still active is checked again under the lock on their row, so a user deactivated or erased
    meanwhile gets no key. ``scopes`` of
    ``None`` means the read-only default; duplicates are collapsed (:func:`choose_scopes`).
    The name is stripped and checked by the rules every door uses, ``expires_at``
    (``None``: never) by :func:`validate_expiry`: a violation raises ``ValidationError``
    keyed "name", "scopes" or "expires_at". An owner with ``OMIKEYS_MAX_ACTIVE_KEYS`` active keys
    gets :class:`TooManyKeys`.

    ``request_token`` (at most 64 characters) makes the call idempotent for forms: a
    second call by the same owner with the same token, even a concurrent one, issues
    nothing and raises :class:`AlreadyIssued` with the first call's key.
    """
    ensure_may_hold_keys(owner, firebase_account)
    name = clean_name(name)
    now = timezone.now()
    with field_errors("expires_at"):
        validate_expiry(expires_at, now)
    chosen = choose_scopes(scopes)
    generated = crypto.generate_key(settings.OMIKEYS_KEY_FORMAT)
    try:
        with transaction.atomic():
            if not lock_owner(owner.pk):
                # Deactivated (by staff, syncfirebaseusers, an erasure) after ``owner`` was read: an erasure
                # that committed meanwhile revoked every key, and must not be followed by a new one.
                raise OwnerNotEligible(owner, OwnerNotEligible.INACTIVE)
            if request_token and ApiKey.objects.filter(owner=owner, request_token=request_token).exists():
                raise IntegrityError("request token used")
            check_room_for_one_more(owner.pk)
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
            scope_codes = [scope.code for scope in chosen]
            audit.record(
                api_key, KeyEvent.Action.CREATED, actor, at=now, scopes=scope_codes, expires_at=iso(expires_at)
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


def iso(moment: datetime.datetime | None) -> str | None:
    """A moment as the audit records it: ISO 8601, or None."""
    return moment.isoformat() if moment else None


def lock_owner(owner_id) -> bool:
    """Lock the owner's row until the transaction ends; whether the owner is active now (as locked)."""
    # Locking the owner's row makes changes that add an active key count one at a time,
    # so the limit holds under races (SQLite's IMMEDIATE transactions already do).
    return any(User.objects.select_for_update().filter(pk=owner_id).values_list("is_active", flat=True))


def check_room_for_one_more(owner_id) -> None:
    """Raise :class:`TooManyKeys` if the owner already has ``OMIKEYS_MAX_ACTIVE_KEYS`` active keys."""
    limit = settings.OMIKEYS_MAX_ACTIVE_KEYS
    if ApiKey.objects.filter(owner_id=owner_id).active().count() >= limit:
        raise TooManyKeys(limit)
