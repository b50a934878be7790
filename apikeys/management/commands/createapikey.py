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

from ..operator import describe_user, utc, write_summary

# The option that gave each field the core may refuse.
OPTIONS = {"name": "--name", "expires_at": "--expires-in-days", "scopes": "--scope"}


class Command(BaseCommand):
    """``createapikey --uid UID | --email EMAIL --name NAME [--scope CODE ...] [--expires-in-days N]``."""

    help = (
        "Issue an Omi Developer API key for a user named by Firebase uid or email. The user is "
        "looked up in the local database first, then in Firebase (and then created locally). "
        "stdout gets only the new key, so KEY=$(manage.py createapikey ...) captures it; a "
        "summary goes to stderr. The key is shown this once and can never be shown again."
    )

    def add_arguments(self, parser):
        owner = parser.add_mutually_exclusive_group(required=True)
        owner.add_argument("--uid", metavar="UID", help="Firebase uid of the key's owner.")
        owner.add_argument("--email", metavar="EMAIL", help="Email address of the key's owner (case-insensitive).")
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

    def handle(self, *args, uid, email, name, scope_codes, expires_in_days, **options):
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

        owner = find_local_owner(uid=uid, email=email)
        # Firebase is asked outside the transaction so no database lock waits on the network.
        account = None if owner else find_firebase_account(uid=uid, email=email, described=described)
        try:
            # One transaction, so a refusal does not leave a newly created user behind.
            with transaction.atomic():
                if account is not None:
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


def find_local_owner(*, uid: str | None, email: str | None) -> User | None:
    """The local Firebase user with this uid or email (case-insensitive), or None; several by email stop the command."""
    if uid is not None:
        return User.objects.filter(firebase_uid=uid).first()
    # Keys belong to Firebase users; a staff-only account sharing the address is not a candidate.
    matches = list(User.objects.filter(firebase_uid__isnull=False, email__iexact=email).order_by("firebase_uid"))
    if len(matches) > 1:
        uids = ", ".join(user.firebase_uid for user in matches)
        raise CommandError(f"Several users have the email {email!r} (uids: {uids}). Choose one with --uid.")
    return matches[0] if matches else None


def find_firebase_account(*, uid: str | None, email: str | None, described: str) -> firebase.FirebaseUser:
    """The Firebase account with this uid or email; not found or Firebase unreachable stop the command."""
    try:
        account = firebase.get_user(uid) if uid is not None else firebase.get_user_by_email(email)
    except firebase.UserNotFound as exc:
        raise CommandError(f"No local user has {described}, and {exc}") from exc
    except firebase.AuthUnavailable as exc:
        raise CommandError(
            f"No local user has {described}, and Firebase could not be asked: {exc} "
            "Check GOOGLE_APPLICATION_CREDENTIALS (or FIREBASE_AUTH_EMULATOR_HOST) and the network."
        ) from exc
    return account  # a disabled account is refused by lifecycle.issue_key
