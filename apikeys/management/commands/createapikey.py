"""createapikey: issue a key for a user from a script; stdout carries the plaintext and nothing else."""

import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from apikeys import firebase, lifecycle
from apikeys.audit import Actor
from apikeys.models import Scope, User

from ..operator import describe_user, utc, write_note, write_summary

# The option that gave each field the core may refuse.
OPTIONS = {"name": "--name", "expires_at": "--expires-in-days", "scopes": "--scope"}


class Command(BaseCommand):
    """``createapikey --uid UID | --email EMAIL --name NAME [--scope CODE ...] [--expires-in-days N]``."""

    help = (
        "Issue an Omi Developer API key for a user named by Firebase uid or email. Firebase is "
        "asked every time who holds the uid or address and whether the account is enabled; the "
        "local copy of the user is created or brought up to date from its answer. An address "
        "Firebase has not verified is refused unless --allow-unverified-email is given. "
        "stdout gets only the new key, so KEY=$(manage.py createapikey ...) captures it; a "
        "summary goes to stderr. The key is shown this once and can never be shown again."
    )

    def add_arguments(self, parser):
        owner = parser.add_mutually_exclusive_group(required=True)
        owner.add_argument("--uid", metavar="UID", help="Firebase uid of the key's owner.")
        owner.add_argument(
            "--email",
            metavar="EMAIL",
            help="Email address of the key's owner (case-insensitive): the Firebase account that holds it now.",
        )
        parser.add_argument(
            "--allow-unverified-email",
            action="store_true",
            help=(
                "With --email: issue the key even if Firebase has not verified that the account's holder "
                "receives mail at the address (anyone can sign up with an address they do not own)."
            ),
        )
        parser.add_argument(
            "--name",
            required=True,
            metavar="NAME",
            help="Descriptive name for the key: 1 to 100 characters after trimming; must not contain a key.",
        )
        parser.add_argument(
            "--scope",
            action="append",
            dest="scope_codes",
            metavar="CODE",
            help="Scope to grant, such as memories:read. Repeat for several. Omitted: the read-only default scopes.",
        )
        parser.add_argument(
            "--expires-in-days",
            type=int,
            metavar="DAYS",
            help=(
                f"Make the key stop working DAYS days from now (at most {settings.OMIKEYS_MAX_KEY_LIFETIME_DAYS}, "
                "the setting OMIKEYS_MAX_KEY_LIFETIME_DAYS). Omitted: the key never expires."
            ),
        )

    def handle(self, *args, uid, email, name, scope_codes, expires_in_days, allow_unverified_email, **options):
        expires_at = expiry_in(expires_in_days)
        scopes = None if scope_codes is None else resolve_scopes(scope_codes)
        if uid is not None:
            if not uid:
                raise CommandError("--uid must not be empty.")
            described = f"uid {uid!r}"
        else:
            email = email.strip()
            if not email:
                raise CommandError("--email must not be empty.")
            described = f"email {email!r}"

        # Firebase is asked outside the transaction so no database lock waits on the network.
        account = find_firebase_account(uid=uid, email=email, described=described)
        # A disabled account is refused by the core below, with that reason first.
        if email is not None and not (account.email_verified or account.disabled or allow_unverified_email):
            raise CommandError(
                f"Firebase has not verified the address {account.email!r} of the account {account.uid}: "
                "anyone can sign up with an address they do not own, so no key was issued. Give the key "
                "by --uid if you know the account, or pass --allow-unverified-email if you are sure."
            )
        try:
            # One transaction, so a refusal does not leave a newly created user behind.
            with transaction.atomic():
                owner = User.objects.for_firebase(account.uid, account.email)
                issued = lifecycle.issue_key(
                    owner=owner,
                    name=name,
                    scopes=scopes,
                    expires_at=expires_at,
                    actor=Actor.command("createapikey"),
                    firebase_account=account,
                )
        except lifecycle.OwnerNotEligible as exc:
            raise CommandError(not_eligible_message(exc, account)) from exc
        except lifecycle.TooManyKeys as exc:
            raise CommandError(
                f"The user {describe_user(owner)} already has {exc.limit} active API "
                f"key{'' if exc.limit == 1 else 's'}, the most allowed; no key was issued. "
                "Revoke one with revokeapikey first."
            ) from exc
        except ValidationError as exc:
            field, errors = next(iter(exc.error_dict.items()))
            messages = " ".join(message for error in errors for message in error.messages)
            raise CommandError(f"Invalid {OPTIONS[field]}: {messages}") from exc

        api_key = issued.api_key
        self.stdout.write(issued.plaintext)
        for note in refresh_stale_copies(account):
            write_note(self.stderr, note)
        scope_codes = ", ".join(api_key.scopes.order_by("code").values_list("code", flat=True)) or "(none)"
        write_summary(
            self.stderr,
            f"Issued API key {api_key.pk}",
            {
                "name": api_key.name,
                "owner": describe_user(owner),
                "prefix": api_key.key_prefix,
                "scopes": scope_codes,
                "expires": utc(api_key.expires_at) if api_key.expires_at else "never",
            },
            "The key was printed on stdout. It is shown only this once and cannot be recovered: store it now.",
        )


def expiry_in(days: int | None) -> datetime.datetime | None:
    """The moment ``days`` days from now, checked by the core's rules before anything else happens."""
    if days is None:
        return None
    # Past the longest lifetime the core refuses anyway; capping first keeps an absurd
    # number from overflowing datetime, so the core's message is the one shown.
    days = max(-1, min(days, settings.OMIKEYS_MAX_KEY_LIFETIME_DAYS + 1))
    expires_at = timezone.now() + datetime.timedelta(days=days)
    try:
        lifecycle.validate_expiry(expires_at)
    except ValidationError as exc:
        raise CommandError(f"Invalid --expires-in-days: {' '.join(exc.messages)}") from exc
    return expires_at


def resolve_scopes(codes: list[str]) -> list[Scope]:
    """The scopes named by --scope; unknown codes stop the command, naming the valid ones."""
    try:
        return Scope.objects.resolve(codes)
    except ValidationError as exc:
        raise CommandError(" ".join(exc.messages)) from exc


def not_eligible_message(exc: lifecycle.OwnerNotEligible, account: firebase.FirebaseUser | None) -> str:
    """Why the owner may hold no key, in the command's words."""
    if exc.reason == exc.FIREBASE_DISABLED and account is not None:
        return f"The Firebase account {account.uid} ({account.email or 'no email'}) is disabled; no key was issued."
    if exc.reason == exc.INACTIVE:
        return f"The user {describe_user(exc.owner)} is inactive; no key was issued."
    return f"The user {describe_user(exc.owner)} cannot hold API keys ({exc}); no key was issued."


def find_firebase_account(*, uid: str | None, email: str | None, described: str) -> firebase.FirebaseUser:
    """The Firebase account that holds this uid or address now; not found or Firebase unreachable stop the command.

    Never the local copy: an account may have been disabled since omikeys last saw
    it, or its address may now belong to someone else.
    """
    try:
        account = firebase.get_user(uid) if uid is not None else firebase.get_user_by_email(email)
    except firebase.UserNotFound as exc:
        raise CommandError(f"{exc} No key was issued.{stale_copy_note(uid=uid, email=email)}") from exc
    except firebase.AuthUnavailable as exc:
        raise CommandError(
            f"Firebase could not be asked who holds {described}, and whether the account is enabled: {exc} "
            "No key was issued. Check GOOGLE_APPLICATION_CREDENTIALS (or FIREBASE_AUTH_EMULATOR_HOST) and the network."
        ) from exc
    return account  # a disabled account is refused by lifecycle.issue_key


def owner_in_good_standing(owner: User, action: str) -> firebase.FirebaseUser:
    """Ask Firebase now whether the owner of an existing key may get a new secret; CommandError if not.

    ``action`` completes the refusal ("no new secret was issued"). The local copy's
    address is brought up to date from the answer.
    """
    try:
        account = firebase.get_user(owner.firebase_uid or "")
    except firebase.UserNotFound as exc:
        raise CommandError(
            f"The owner {describe_user(owner)} no longer has a Firebase account; {action}. "
            "Stop the key with revokeapikey if it must not be used."
        ) from exc
    except firebase.AuthUnavailable as exc:
        raise CommandError(
            f"Firebase could not be asked whether the account of {describe_user(owner)} is enabled: {exc} {action}."
        ) from exc
    if account.disabled:
        raise CommandError(
            f"The Firebase account {account.uid} ({account.email or 'no email'}) is disabled; {action}. "
            "Stop the key with revokeapikey if it must not be used."
        )
    User.objects.for_firebase(account.uid, account.email)
    return account


def refresh_stale_copies(account: firebase.FirebaseUser) -> list[str]:
    """Bring up to date the other local users still listed with ``account``'s address; a note for each.

    When A changed address and B then signed up with A's old one, the local copy of A
    still shows it. Each is asked about by uid; one Firebase cannot answer for is left.
    """
    if not account.email:
        return []
    notes = []
    stale = User.objects.filter(firebase_uid__isnull=False, email__iexact=account.email).exclude(
        firebase_uid=account.uid
    )
    for user in stale:
        try:
            current = firebase.get_user(user.firebase_uid)
        except (firebase.UserNotFound, firebase.AuthUnavailable) as exc:
            notes.append(f"Note: the local user {describe_user(user)} still shows this address ({exc}).")
            continue
        User.objects.for_firebase(current.uid, current.email)
        notes.append(
            f"Note: the local user uid {user.firebase_uid} showed this address; Firebase says "
            f"it is now {current.email or 'no address'}, and the local copy was updated."
        )
    return notes


def stale_copy_note(*, uid: str | None, email: str | None) -> str:
    """What the local database still says about a uid or address Firebase does not know, for the operator."""
    if uid is not None:
        known = User.objects.filter(firebase_uid=uid)
    else:
        known = User.objects.filter(firebase_uid__isnull=False, email__iexact=email)
    described = ", ".join(describe_user(user) for user in known.order_by("firebase_uid"))
    if not described:
        return ""
    return f" The local copy ({described}) is out of date: the account was deleted or its address changed."
