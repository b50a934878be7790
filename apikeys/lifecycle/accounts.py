"""What happens to a user's keys and personal data when their account ends: revoking all keys, erasing the user,
and following Firebase when it disables, deletes or re-enables an account."""

import logging
import re
from dataclasses import dataclass, field

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .. import events, notices
from ..audit import Actor
from ..models import ApiKey, KeyEvent, User
from . import usage
from .changes import revoke_key
from .errors import LifecycleError
from .rules import validate_reason

logger = logging.getLogger("apikeys.lifecycle")

# What an erased user's own events say instead of their email.
ERASED_LABEL = "(erased user)"
# What an erased email address becomes inside other text (a key's name, an event's details, the admin's history).
ERASED_TEXT = "(erased)"


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
    are not counted twice. When it revoked any, a ``user.keys_revoked`` event (with their ids) is
    written in the same transaction, besides each key's ``key.revoked``. A reason that holds a
    secret raises a ``ValidationError`` keyed "reason" (``validate_reason``) and nothing is revoked.
    """
    validate_reason(reason)
    revoked = []
    with transaction.atomic():
        for api_key in ApiKey.objects.for_owner(user).unrevoked().select_for_update().order_by("created_at", "id"):
            if revoke_key(api_key, actor=actor, reason=reason):
                revoked.append(api_key)
        if revoked:
            events.emit_user_event("user.keys_revoked", user, actor=actor, key_ids=[key.pk for key in revoked])
    if revoked:
        logger.info("user keys revoked owner=%s count=%d", user.pk, len(revoked))
    return revoked


@dataclass(frozen=True)
class ErasureReport:
    """What :func:`erase_user` did.

    ``revoked_key_ids``: the keys this call revoked; ``deactivated``: whether this call deactivated
    the user; ``email_erased``/``names_erased``: whether an address / a first or last name or a
    username other than ``firebase:<uid>`` was there to erase; ``events_scrubbed``: key events
    whose IP address, user agent, actor label or details (the email inside a name) were erased;
    ``ip_addresses_erased``/``user_agents_erased``: how many of each; ``key_names_scrubbed``: keys
    whose name held the email; ``admin_records_scrubbed``: the admin's history entries about the
    user or their keys that held the email, and admin sign-in attempts made with it (deleted);
    ``usage_records_erased``: addresses their keys were used from (deleted) and last uses whose address and
    user agent were emptied (``usage.erase_for_owner``; the counts stay).
    What stays: the user row (uid, username ``firebase:<uid>``, dates) and each key and event
    without personal data, the anonymous skeleton of the history.
    """

    uid: str | None
    revoked_key_ids: list[str] = field(default_factory=list)
    deactivated: bool = False
    email_erased: bool = False
    names_erased: bool = False
    events_scrubbed: int = 0
    ip_addresses_erased: int = 0
    user_agents_erased: int = 0
    key_names_scrubbed: int = 0
    admin_records_scrubbed: int = 0
    usage_records_erased: int = 0


# Characters that may stand right before an address's local part, or right after its domain, and belong
# to it (RFC 5322 atext, and the domain's letters, digits and hyphens): an occurrence of the address next
# to one of them is part of another address (jimbob@example.com, bob@example.com.au) and stays.
_LOCAL_PART_CHARACTERS = r"\w.!#$%&'*+/=?^`{|}~-"
_BEFORE_ADDRESS = rf"(?<![{_LOCAL_PART_CHARACTERS}])"
_AFTER_ADDRESS = r"(?![\w-]|\.[\w-])"  # a full stop ending a sentence is not part of the domain


def _without_email(value, email: str):
    """``value`` (text, or JSON made of dicts, lists and text) with every occurrence of ``email`` as a whole
    address, in any case, replaced by :data:`ERASED_TEXT`; other values as they are. Another address that
    contains it (``jimbob@example.com`` for ``bob@example.com``) is left alone."""
    if isinstance(value, str):
        if not email:
            return value
        pattern = _BEFORE_ADDRESS + re.escape(email) + _AFTER_ADDRESS
        return re.sub(pattern, ERASED_TEXT, value, flags=re.IGNORECASE)
    if isinstance(value, list):
        return [_without_email(item, email) for item in value]
    if isinstance(value, dict):
        return {key: _without_email(item, email) for key, item in value.items()}
    return value


def _username_without_personal_data(user: User) -> str:
    """The username an erased user keeps: ``firebase:<uid>``, or ``erased:<pk>`` when another row holds that."""
    wanted = User.username_for_uid(user.firebase_uid)
    if User.objects.filter(username=wanted).exclude(pk=user.pk).exists():
        return f"erased:{user.pk}"
    return wanted


def erase_user(user: User, *, actor: Actor | None) -> ErasureReport:
    """Revoke all of ``user``'s keys, deactivate them and erase the personal data kept about them.

    In one transaction: :func:`revoke_user_keys` (reason "user erased"); the user's email and
    first and last names emptied, ``is_active`` off with ``deactivation_reason`` "erased" (so
    ``syncfirebaseusers`` never reactivates them and a later sign-in copies no email back:
    ``User.objects.for_firebase``); and in every key event of their keys, and every event they
    made themselves (on any key), the IP address and user agent erased, and the actor label of
    their own events (their email) replaced by "(erased user)". The email wherever else it was
    written down, as a whole address (never inside another one), is replaced by "(erased)": in the
    names of their keys, in those events' labels and details (a key's previous name), and in the
    admin's history of the user and their keys; a
    username that is not ``firebase:<uid>`` (one staff typed, perhaps the email) becomes it; the
    admin's records of sign-in attempts made with the email or username are deleted (they hold the
    address and user agent of whoever tried); their email notices not sent yet are deleted, and the
    others lose their address, subject and last error (``notices.erase_for_user``); the addresses and user
    agents their keys' usage recorded are erased (``usage.erase_for_owner``). Idempotent: erasing again
    reports nothing more to erase. A ``user.erased`` event is written in the same transaction
    when this call erased, revoked or deactivated anything (a repeated erasure sends none).

    A staff or superuser account raises :class:`StaffNotErasable` and nothing is changed.
    """
    now = timezone.now()
    with transaction.atomic():
        # The user's row first, as issue_key locks it: a key being issued now is committed before its
        # revocation here, and one issued after finds the user inactive under the lock and is refused.
        current = User.objects.select_for_update().get(pk=user.pk)
        if current.is_staff or current.is_superuser:
            raise StaffNotErasable(current)
        revoked = revoke_user_keys(current, reason="user erased", actor=actor)
        deactivated = current.is_active
        email, username = current.email, current.username
        email_erased = bool(email)
        names_erased = bool(current.first_name or current.last_name)
        if username != User.username_for_uid(current.firebase_uid):
            current.username = _username_without_personal_data(current)
            names_erased = names_erased or current.username != username
        current.email = current.first_name = current.last_name = ""
        current.is_active = False
        if current.deactivation_reason != User.Deactivation.ERASED:
            current.deactivation_reason = User.Deactivation.ERASED
            current.deactivated_at = now
        current.save(
            update_fields=[
                "username",
                "email",
                "first_name",
                "last_name",
                "is_active",
                "deactivation_reason",
                "deactivated_at",
            ]
        )
        usage_erased = usage.erase_for_owner(current)
        key_events = KeyEvent.objects.filter(Q(api_key__owner=current) | Q(actor=current))
        ip_addresses = key_events.filter(ip_address__isnull=False).count()
        user_agents = key_events.exclude(user_agent="").count()
        own_labels = key_events.filter(actor=current).exclude(actor_label=ERASED_LABEL)
        scrubbed_pks = set(
            key_events.filter(
                Q(ip_address__isnull=False) | ~Q(user_agent="") | Q(pk__in=own_labels.values("pk"))
            ).values_list("pk", flat=True)
        )
        # Update by primary key: an UPDATE cannot follow the join to the key's owner on every database.
        event_pks = list(key_events.values_list("pk", flat=True))
        KeyEvent.objects.filter(pk__in=event_pks).update(ip_address=None, user_agent="")
        own_labels.update(actor_label=ERASED_LABEL)
        if email:
            # The email written inside other text: events' labels and details, key names. Read in Python:
            # JSON details cannot be searched as text the same way on every database.
            changed_events = []
            for event in KeyEvent.objects.filter(pk__in=event_pks).only("pk", "actor_label", "details"):
                label, details = _without_email(event.actor_label, email), _without_email(event.details, email)
                if (label, details) != (event.actor_label, event.details):
                    event.actor_label, event.details = label, details
                    changed_events.append(event)
            KeyEvent.objects.bulk_update(changed_events, ["actor_label", "details"])
            scrubbed_pks.update(event.pk for event in changed_events)
        key_names = 0
        if email:
            named = list(ApiKey.objects.for_owner(current).filter(name__icontains=email).only("pk", "name"))
            max_length = ApiKey._meta.get_field("name").max_length
            for api_key in named:
                api_key.name = _without_email(api_key.name, email)[:max_length]
            key_names = ApiKey.objects.bulk_update(named, ["name"])
        admin_records = _erase_from_admin_records(current, email, username)
        # Notices not sent yet (those of the revocations above among them) are deleted; sent ones lose the address.
        notices_erased = notices.erase_for_user(current)
        anything = revoked or deactivated or email_erased or names_erased or scrubbed_pks or key_names
        if anything or admin_records or notices_erased or usage_erased:
            events.emit_user_event("user.erased", current, actor=actor, key_ids=[key.pk for key in revoked])
    for name in ("username", "email", "first_name", "last_name", "is_active", "deactivation_reason", "deactivated_at"):
        setattr(user, name, getattr(current, name))
    scrubbed = len(scrubbed_pks)
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
        key_names_scrubbed=key_names,
        admin_records_scrubbed=admin_records,
        usage_records_erased=usage_erased,
    )


def _erase_from_admin_records(user: User, email: str, username: str) -> int:
    """Erase ``email`` from the admin's history of ``user`` and their keys (``LogEntry`` entries' text), and delete
    django-axes' records of admin sign-in attempts made with the email or ``username``; how many records."""
    count = 0
    if email:
        key_ids = [str(pk) for pk in ApiKey.objects.for_owner(user).values_list("pk", flat=True)]
        entries = LogEntry.objects.filter(
            Q(content_type=ContentType.objects.get_for_model(User), object_id=str(user.pk))
            | Q(content_type=ContentType.objects.get_for_model(ApiKey), object_id__in=key_ids)
        )
        changed = []
        for entry in entries.only("pk", "object_repr", "change_message"):
            repr_, message = _without_email(entry.object_repr, email), _without_email(entry.change_message, email)
            if (repr_, message) != (entry.object_repr, entry.change_message):
                entry.object_repr, entry.change_message = repr_, message
                changed.append(entry)
        count += LogEntry.objects.bulk_update(changed, ["object_repr", "change_message"])
    names = Q()
    for name in {email, username} - {""}:
        names |= Q(username__iexact=name)
    if names:
        for model in (AccessAttempt, AccessFailureLog, AccessLog):
            count += model.objects.filter(names).delete()[0]
    return count


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
