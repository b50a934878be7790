"""Make sure the local Auth Emulator has the demo account, with the uid the local database knows for it.

    DJANGO_SETTINGS_MODULE=omikeys_project.settings python scripts/demo_account.py EMAIL PASSWORD

For scripts/dev. The emulator keeps its accounts in .run/auth-emulator-data only if it
saved them when it last stopped; the local database (db.sqlite3) keeps its users either
way. When the emulator lost them, making the demo account afresh would give it a new uid
and leave two users with one address. Instead it is made again with its earlier uid (the
emulator, like Firebase's admin API, accepts a chosen uid), so its keys stay its own.
Other users the database knows but the emulator lost are listed: they must sign up again
(deactivated users, and owners whose every key was imported from Omi, are not).
Exit status 0, or 1 with a message when the emulator cannot be asked.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "omikeys_project.settings")

import django

django.setup()

from django.db.models import Count, F, Q  # noqa: E402
from firebase_admin import auth  # noqa: E402

from apikeys import firebase  # noqa: E402
from apikeys.models import User  # noqa: E402

LISTED = 10  # lost accounts named in the message; the rest are counted


def note(text: str) -> None:
    print(text, file=sys.stderr)


def ensure_demo_account(email: str, password: str) -> str:
    """The demo account's uid, after making it on the emulator if it is not there."""
    app = firebase.get_app()
    known = User.objects.filter(firebase_uid__isnull=False, email__iexact=email).order_by("date_joined").first()
    try:
        account = auth.get_user_by_email(email, app=app)
    except auth.UserNotFoundError:
        account = None
    if account is not None:
        if known is not None and known.firebase_uid != account.uid:
            note(
                f"Note: the Auth Emulator's {email} has uid {account.uid}, but the local database knows "
                f"uid {known.firebase_uid} for it (the emulator lost its accounts once). Keys of the old uid "
                "stay with it; delete db.sqlite3 and .run/auth-emulator-data to start clean."
            )
        return account.uid
    if known is not None:
        auth.create_user(uid=known.firebase_uid, email=email, password=password, email_verified=True, app=app)
        note(
            f"The Auth Emulator no longer had the demo account {email} (it did not save its accounts when it "
            f"last stopped; see .run/auth-emulator.log). It was made again with its earlier uid "
            f"{known.firebase_uid}, so its keys are still its own."
        )
        return known.firebase_uid
    return auth.create_user(email=email, password=password, email_verified=True, app=app).uid


def lost_users(demo_uid: str) -> list[User]:
    """Local Firebase users the emulator no longer has (the demo account aside).

    Only people who could sign in here count: deactivated users (erased ones among them)
    cannot, and the owners of keys imported from Omi's records (importomikeys, say of
    bench/omi_export.py's synthetic export) never had an account on this emulator; a user
    all of whose keys were imported is one of those.
    """
    app = firebase.get_app()
    users = list(
        User.objects.filter(firebase_uid__isnull=False, is_active=True)
        .exclude(firebase_uid=demo_uid)
        .annotate(
            keys=Count("api_keys"),
            imported_keys=Count("api_keys", filter=Q(api_keys__omi_document_id__isnull=False)),
        )
        .exclude(keys__gt=0, keys=F("imported_keys"))
        .order_by("pk")
    )
    lost = []
    for start in range(0, len(users), 100):  # get_users takes at most 100 identifiers
        batch = users[start : start + 100]
        result = auth.get_users([auth.UidIdentifier(user.firebase_uid) for user in batch], app=app)
        missing = {identifier.uid for identifier in result.not_found}
        lost.extend(user for user in batch if user.firebase_uid in missing)
    return lost


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        note(__doc__.strip())
        return 2
    email, password = argv[1], argv[2]
    try:
        demo_uid = ensure_demo_account(email, password)
        lost = lost_users(demo_uid)
    except Exception as exc:  # whatever firebase-admin raises when the emulator does not answer
        note(f"The Auth Emulator at {os.environ.get('FIREBASE_AUTH_EMULATOR_HOST')} could not be asked: {exc}")
        return 1
    if lost:
        named = ", ".join(f"{user.email or '(no email)'} (uid {user.firebase_uid})" for user in lost[:LISTED])
        more = f" and {len(lost) - LISTED} more" if len(lost) > LISTED else ""
        note(
            f"{len(lost)} user{'s' if len(lost) != 1 else ''} in the local database no longer "
            f"{'have accounts' if len(lost) != 1 else 'has an account'} on the Auth Emulator (it did not "
            f"save its accounts when it last stopped): {named}{more}. Signing up again gives a new uid; "
            "their keys stay with the old one."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
