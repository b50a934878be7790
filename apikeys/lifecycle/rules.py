"""The rules a change must meet before the lifecycle writes it: expiry limits, grace periods,
default scopes, and who may hold keys. Doors may check them early to show errors beside a field.
"""

import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from .. import crypto
from ..firebase import FirebaseUser
from ..models import Scope, User
from .errors import OwnerNotEligible

# The grace periods forms offer after a rotation, in seconds, and how each reads ("in 1 hour",
# "after 1 hour"). The API accepts any whole number of seconds up to the longest.
GRACE_PERIODS = {
    0: "immediately",
    60 * 60: "1 hour",
    24 * 60 * 60: "24 hours",
    7 * 24 * 60 * 60: "7 days",
}
MAX_GRACE_SECONDS = max(GRACE_PERIODS)


# The message every door shows for a reason that holds a secret (it would be stored and emailed).
SECRET_IN_REASON = "The reason looks like it contains an API key; describe where it was found instead."


def validate_reason(reason: str) -> None:
    """A reason for a change (disable, revoke) must hold no secret: it is kept in the audit event's
    details and shown to the key's owner in the email notice.

    Refuses what the key-name rule refuses (``crypto.contains_raw_key``: developer keys, MCP keys,
    service tokens, disguised or not) with a ``ValidationError`` keyed "reason" (code "secret_in_reason").
    An empty reason is valid.
    """
    if reason and crypto.contains_raw_key(reason):
        raise ValidationError({"reason": ValidationError(SECRET_IN_REASON, code="secret_in_reason")})


def default_scopes() -> list[Scope]:
    """The read-only default a key gets when created without scopes, sorted by code."""
    return list(Scope.objects.filter(is_default=True).order_by("code"))


def validate_expiry(expires_at: datetime.datetime | None, now: datetime.datetime | None = None) -> None:
    """An expiry must be aware, in the future, and at most ``OMIKEYS_MAX_KEY_LIFETIME_DAYS`` days ahead.

    ``None`` (never expires) is always valid. A field validator: it raises a
    ``ValidationError`` without a field (codes "timezone_aware", "datetime_future",
    "datetime_too_late"), which the lifecycle's functions raise keyed as "expires_at".
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


def validate_grace(grace_seconds: int) -> None:
    """A grace period is a whole number of seconds from 0 to :data:`MAX_GRACE_SECONDS` (7 days).

    Raises ``ValidationError({"grace_seconds": ...})`` (code "grace_range") otherwise.
    """
    if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
        message = f"The grace period must be between 0 and {MAX_GRACE_SECONDS} seconds (7 days)."
        raise ValidationError({"grace_seconds": ValidationError(message, code="grace_range")})


def ensure_may_hold_keys(owner: User, firebase_account: FirebaseUser | None = None) -> None:
    """Raise :class:`OwnerNotEligible` unless ``owner`` may be given a key.

    An owner must be an active user with a Firebase uid (``User.objects.key_holders()``
    is the same rule as a query), whose Firebase account is not disabled. Firebase is
    not asked here: a door passes ``firebase_account`` when it has just looked the
    account up (a web session's check, createapikey). A door holding a verified ID
    token passes nothing: Firebase refuses the tokens of disabled accounts. The admin
    passes nothing either: staff choose among local users.
    """
    if not owner.is_active:
        raise OwnerNotEligible(owner, OwnerNotEligible.INACTIVE)
    if not owner.firebase_uid:
        raise OwnerNotEligible(owner, OwnerNotEligible.NO_FIREBASE_UID)
    if firebase_account is not None and firebase_account.disabled:
        raise OwnerNotEligible(owner, OwnerNotEligible.FIREBASE_DISABLED)
