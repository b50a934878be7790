"""syncfirebaseusers: deactivate users whose Firebase accounts are disabled or deleted, reactivate re-enabled ones."""

import time

from django.core.management.base import BaseCommand, CommandError

from apikeys import firebase, lifecycle
from apikeys.management.operator import describe_user, write_note, write_summary

# Firebase uids are 1 to 128 characters; firebase-admin refuses anything else before asking.
MAX_UID_LENGTH = 128
# At the default verbosity, a progress line every this many users.
PROGRESS_EVERY = 5000

REASONS = {"firebase_disabled": "disabled in Firebase", "firebase_deleted": "deleted in Firebase"}


class Command(BaseCommand):
    """``syncfirebaseusers [--dry-run]``: one pass over the local users, 100 uids per Firebase call."""

    help = (
        "Ask Firebase about every local user with a Firebase uid (100 per call) and follow it: deactivate users "
        "whose accounts are disabled or deleted (their keys stop at once, without being revoked), and reactivate "
        "users this command deactivated whose accounts are enabled again (never users staff deactivated or that "
        "were erased). One line per change on stdout, a summary on stderr. Safe to run from cron or a timer every "
        "few minutes: a pass that changes nothing writes nothing, and overlapping passes do not conflict. Exits "
        "non-zero if Firebase cannot be asked (the changes of the batches done before stay)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Report what would change; change nothing.")

    def handle(self, *args, dry_run, verbosity, **options):
        started = time.monotonic()
        queryset = lifecycle.users_to_sync()
        total = queryset.count()
        checked = deactivated = reactivated = skipped = 0
        last_pk = 0
        while True:
            # Keyset pagination: memory stays bounded, and users added meanwhile are seen or not, never twice.
            batch = list(queryset.filter(pk__gt=last_pk).order_by("pk")[: firebase.GET_USERS_BATCH])
            if not batch:
                break
            last_pk = batch[-1].pk
            askable = [user for user in batch if 0 < len(user.firebase_uid) <= MAX_UID_LENGTH]
            for user in batch:
                if user not in askable:
                    skipped += 1
                    write_note(self.stderr, f"Skipped {describe_user(user)}: not a valid Firebase uid.")
            try:
                found, not_found = (
                    firebase.get_users([user.firebase_uid for user in askable]) if askable else ({}, set())
                )
            except firebase.AuthUnavailable as exc:
                done = (
                    f"{deactivated} deactivated and {reactivated} reactivated before it stopped" if not dry_run else ""
                )
                raise CommandError(
                    f"Firebase could not be asked about the accounts ({exc}) after {checked} of {total} users"
                    f"{'; ' + done if done else ''}. Check GOOGLE_APPLICATION_CREDENTIALS (or "
                    "FIREBASE_AUTH_EMULATOR_HOST) and the network; the next run continues from the start."
                ) from exc
            for change in lifecycle.apply_firebase_states(askable, found, not_found, dry_run=dry_run):
                if change.change == "deactivated":
                    deactivated += 1
                    why = REASONS[change.reason]
                else:
                    reactivated += 1
                    why = "enabled in Firebase again"
                verb = f"would be {change.change}" if dry_run else change.change
                self.stdout.write(f"{describe_user(change.user)}: {verb} ({why}).")
            checked += len(batch)
            if verbosity >= 2 or (checked % PROGRESS_EVERY < firebase.GET_USERS_BATCH and checked < total):
                write_note(self.stderr, f"Checked {checked} of {total} users.")
        fields = {
            "checked": str(checked),
            "deactivated": str(deactivated),
            "reactivated": str(reactivated),
            "took": f"{time.monotonic() - started:.1f} s",
        }
        if skipped:
            fields["skipped"] = str(skipped)
        heading = "Dry run of syncfirebaseusers: nothing was changed" if dry_run else "syncfirebaseusers done"
        closing = "Deactivated users' keys stop at once; they are not revoked, and work again on reactivation."
        write_summary(self.stderr, heading, fields, closing)
