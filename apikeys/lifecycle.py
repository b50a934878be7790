"""Issuing, revoking and verifying keys: the only code that writes API keys.

The JSON API, the web pages, the admin and the management commands all call
these functions, so a key is created, and its plaintext handled, one way.
"""

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from . import crypto
from .models import ApiKey, Scope, User, validate_key_name

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


def default_scopes() -> list[Scope]:
    return list(Scope.objects.filter(is_default=True).order_by("code"))


def issue_key(
    *, owner: User, name: str, scopes: Iterable[Scope] | None = None, request_token: str | None = None
) -> IssuedKey:
    """Create a key for ``owner`` and return it with its plaintext.

    ``scopes`` of ``None`` means the read-only default. Duplicates are collapsed.
    The name is stripped and checked against the same rules every door uses;
    a violation raises ``django.core.exceptions.ValidationError``.

    ``request_token`` makes the call idempotent for forms: a second call by the
    same owner with the same token, even a concurrent one, issues nothing and
    raises :class:`AlreadyIssued` with the first call's key.
    """
    name = name.strip()
    validate_key_name(name)
    chosen = default_scopes() if scopes is None else sorted(set(scopes), key=lambda scope: scope.code)
    generated = crypto.generate_key()
    try:
        with transaction.atomic():
            api_key = ApiKey.objects.create(
                owner=owner,
                name=name,
                key_prefix=generated.display_prefix,
                key_hash=generated.hashed,
                request_token=request_token,
            )
            api_key.scopes.add(*chosen)
    except IntegrityError:
        # The unique (owner, request_token) constraint makes a concurrent twin wait
        # for the first insert and then fail here, so exactly one key is issued.
        earlier = ApiKey.objects.filter(owner=owner, request_token=request_token).first() if request_token else None
        if earlier is None:
            raise
        raise AlreadyIssued(earlier) from None
    logger.info("api key issued id=%s owner=%s prefix=%s", api_key.pk, owner.pk, api_key.key_prefix)
    return IssuedKey(api_key=api_key, plaintext=generated.plaintext)


def revoke_key(*, owner: User, key_id: uuid.UUID) -> ApiKey:
    """Revoke one of ``owner``'s keys; it stops verifying at once.

    Revoking an already revoked key changes nothing and is not an error.
    Raises ``ApiKey.DoesNotExist`` for an unknown key or another owner's key.
    """
    api_key = ApiKey.objects.for_owner(owner).get(pk=key_id)
    revoke_api_key(api_key)
    return api_key


def revoke_api_key(api_key: ApiKey) -> bool:
    """Revoke ``api_key`` whoever owns it; it stops verifying at once.

    For callers that have already decided access: the staff doors, or a page
    that fetched the key through its owner.

    Returns True when this call revoked it, False when it was already revoked.
    ``api_key.revoked_at`` is up to date afterwards either way.
    """
    if api_key.revoked_at is not None:
        return False
    now = timezone.now()
    # The guarded update keeps the first revocation time if two requests race.
    if ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now):
        api_key.revoked_at = now
        logger.info("api key revoked id=%s owner=%s", api_key.pk, api_key.owner_id)
        return True
    api_key.refresh_from_db(fields=["revoked_at"])
    return False


def verify_key(plaintext: str) -> ApiKey | None:
    """The active key whose secret is ``plaintext``, or ``None``.

    One indexed lookup by hash; a revoked key never verifies. The lookup is by
    the SHA-256 of the candidate, so its timing says nothing about the secret.
    """
    if not crypto.is_well_formed(plaintext):
        return None
    return ApiKey.objects.active().filter(key_hash=crypto.hash_key(plaintext)).select_related("owner").first()
