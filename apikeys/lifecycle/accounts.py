"""What happens to a user's keys and personal data when their account ends: revoking all keys, erasing the user,
and following Firebase when it disables, deletes or re-enables an account."""

import logging
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..audit import Actor
from ..models import ApiKey, KeyEvent, User
from .changes import revoke_key
from .errors import LifecycleError

logger = logging.getLogger("apikeys.lifecycle")

# What an erased user's own events say instead of their email.
ERASED_LABEL = "(erased user)"


class StaffNotErasable(LifecycleError):
    """A staff account is not erased through the service API: its email labels the audit trail of what staff did,
    and deactivating it would lock staff out of the admin. Staff deactivate staff in the admin."""

    def __init__(self, user: User):
        super().__init__(
            "This user is a staff account; a service cannot erase it (its keys can still be revoked). "
            "Staff deactivate staff accounts in the admin."
        )
        self.user = user


def revoke_user_keys(user: User, *, reason: str, actor: Actor | None) -> list[ApiKey]:
    """Revoke every key of ``user`` that is not revoked yet; returns the keys this call revoked.

    Each key goes through :func:`revoke_key`, so each gets its own "revoked" audit event (with
    ``reason`` in its details, such as "account deleted") in one transaction. Idempotent: a
    second call revokes nothing and returns ``[]``. Keys revoked concurrently by another request
    are not counted twice. (Seam: the caller may emit a ``user.keys_revoked`` event here.)
    """
    revoked = []
    with transaction.atomic():
        for api_key in ApiKey.objects.for_owner(user).unrevoked().select_for_update().order_by("created_at", "id"):
            if revoke_key(api_key, actor=actor, reason=reason):
                revoked.append(api_key)
    if revoked:
        logger.info("user keys revoked owner=%s count=%d", user.pk, len(revoked))
    return revoked


@dataclass(frozen=True)
class ErasureReport:
    """What :func:`erase_user` did.

    ``revoked_key_ids``: the keys this call revoked; ``deactivated``: whether this call deactivated
    the user; ``email_erased``/``names_erased``: whether an address / a first or last name was
    there to erase; ``events_scrubbed``: key events whose IP address, user agent or (for events
    the user made) actor label were erased; ``ip_addresses_erased``/``user_agents_erased``: how
    many of each. What stays: the user row (uid, username ``firebase:<uid>``, dates) and each key
    and event without personal data, the anonymous skeleton of the history.
    """

    uid: str | None
    revoked_key_ids: list[str] = field(default_factory=list)
    deactivated: bool = False
    email_erased: bool = False
    names_erased: bool = False
    events_scrubbed: int = 0
    ip_addresses_erased: int = 0
    user_agents_erased: int = 0


def erase_user(user: User, *, actor: Actor | None) -> ErasureReport:
    """Revoke all of ``user``'s keys, deactivate them and erase the personal data kept about them.

    In one transaction: :func:`revoke_user_keys` (reason "user erased"); the user's email and
    first and last names emptied, ``is_active`` off with ``deactivation_reason`` "erased" (so
    ``syncfirebaseusers`` never reactivates them and a later sign-in copies no email back:
    ``User.objects.for_firebase``); and in every key event of their keys, and every event they
    made themselves (on any key), the IP address and user agent erased, and the actor label of
    their own events (their email) replaced by "(erased user)". Idempotent: erasing again
    reports nothing more to erase. (Seam: the caller may emit a ``user.erased`` event here.)

    A staff or superuser account raises :class:`StaffNotErasable` and nothing is changed.
    """
    now = timezone.now()
    with transaction.atomic():
        # The user's row first, as issue_key locks it: a key being issued now is committed before its
        # revocation here, and none is issued to this user while the erasure runs.
        current = User.objects.select_for_update().get(pk=user.pk)
        if current.is_staff or current.is_superuser:
            raise StaffNotErasable(current)
        revoked = revoke_user_keys(current, reason="user erased", actor=actor)
        deactivated = current.is_active
        email_erased = bool(current.email)
        names_erased = bool(current.first_name or current.last_name)
        current.email = current.first_name = current.last_name = ""
        current.is_active = False
        if current.deactivation_reason != User.Deactivation.ERASED:
            current.deactivation_reason = User.Deactivation.ERASED
            current.deactivated_at = now
        current.save(
            update_fields=["email", "first_name", "last_name", "is_active", "deactivation_reason", "deactivated_at"]
        )
        events = KeyEvent.objects.filter(Q(api_key__owner=current) | Q(actor=current))
        ip_addresses = events.filter(ip_address__isnull=False).count()
        user_agents = events.exclude(user_agent="").count()
        own_labels = events.filter(actor=current).exclude(actor_label=ERASED_LABEL)
        scrubbed = events.filter(
            Q(ip_address__isnull=False) | ~Q(user_agent="") | Q(pk__in=own_labels.values("pk"))
        ).count()
        # Update by primary key: an UPDATE cannot follow the join to the key's owner on every database.
        KeyEvent.objects.filter(pk__in=list(events.values_list("pk", flat=True))).update(ip_address=None, user_agent="")
        own_labels.update(actor_label=ERASED_LABEL)
    for name in ("email", "first_name", "last_name", "is_active", "deactivation_reason", "deactivated_at"):
        setattr(user, name, getattr(current, name))
    logger.info("user erased id=%s keys_revoked=%d events_scrubbed=%d", user.pk, len(revoked), scrubbed)
    return ErasureReport(
        uid=current.firebase_uid,
        revoked_key_ids=[str(api_key.pk) for api_key in revoked],
        deactivated=deactivated,
        email_erased=email_erased,
        names_erased=names_erased,
        events_scrubbed=scrubbed,
        ip_addresses_erased=ip_addresses,
        user_agents_erased=user_agents,
    )


# The deactivations syncfirebaseusers makes, and the only ones it undoes.
SYNC_REASONS = (User.Deactivation.FIREBASE_DISABLED, User.Deactivation.FIREBASE_DELETED)


@dataclass(frozen=True)
class AccountChange:
    """One change :func:`apply_firebase_states` made (or, in a dry run, would make) to a user.

    ``change`` is "deactivated" or "reactivated"; ``reason`` the ``User.Deactivation`` value
    behind a deactivation ("firebase_disabled", "firebase_deleted"), "" for a reactivation.
    """

    user: User
    change: str
    reason: str = ""


def users_to_sync():
    """The users whose Firebase accounts ``syncfirebaseusers`` checks: every user with a uid that is active, or
    that the sync itself deactivated (staff's deactivations and erased users are left alone), by primary key."""
    return User.objects.filter(firebase_uid__isnull=False).filter(
        Q(is_active=True) | Q(deactivation_reason__in=SYNC_REASONS)
    )


def apply_firebase_states(
    users: list[User], found: dict, not_found: set[str], *, dry_run: bool = False
) -> list[AccountChange]:
    """Bring ``users`` in line with what Firebase said about their accounts; the changes made, in ``users`` order.

    ``found`` maps uids to ``firebase.FirebaseUser`` (with ``disabled``), ``not_found`` holds the uids
    Firebase has no account for (``firebase.get_users``'s answer); a user in neither is left as it is.
    An active user whose account is disabled or deleted is deactivated, with the reason recorded
    (``firebase_disabled``/``firebase_deleted``): their keys stop verifying at once (``OWNER_INACTIVE``)
    but are not revoked. A user this sync deactivated whose account is enabled again is reactivated.
    A user deactivated by staff or erased is never touched. Each change is one guarded update that
    applies only if the user is still as read, so overlapping runs, and staff changing the user
    meanwhile, are harmless: a change another run made first is not reported twice. ``dry_run``
    reports what would change and writes nothing.
    """
    changes = []
    now = timezone.now()
    for user in users:
        account = found.get(user.firebase_uid)
        if user.firebase_uid in not_found:
            wanted = User.Deactivation.FIREBASE_DELETED
        elif account is not None and account.disabled:
            wanted = User.Deactivation.FIREBASE_DISABLED
        elif account is not None:
            wanted = None
        else:
            continue
        if wanted is not None and user.is_active:
            guard = {"is_active": True}
            values = {"is_active": False, "deactivation_reason": wanted, "deactivated_at": now}
            change = "deactivated"
        elif wanted is None and not user.is_active and user.deactivation_reason in SYNC_REASONS:
            guard = {"is_active": False, "deactivation_reason__in": SYNC_REASONS}
            values = {"is_active": True, "deactivation_reason": User.Deactivation.NONE, "deactivated_at": None}
            change = "reactivated"
        else:
            continue
        if not dry_run and not User.objects.filter(pk=user.pk, **guard).update(**values):
            continue  # changed meanwhile (another run, or staff): theirs stands
        if not dry_run:
            for name, value in values.items():
                setattr(user, name, value)
        changes.append(AccountChange(user, change, wanted or ""))
        if not dry_run:
            logger.info("user %s by syncfirebaseusers id=%s reason=%s", change, user.pk, wanted or "")
    return changes
