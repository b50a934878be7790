"""disableapikey: pause keys by id, whoever owns them; they keep their secrets until enabled again."""

from django.core.management.base import CommandError

from apikeys import crypto, lifecycle

from ._pause import PauseCommand

MAX_REASON_LENGTH = 200


class Command(PauseCommand):
    """``disableapikey KEY_ID [KEY_ID ...] [--reason TEXT]``: pause keys through lifecycle.disable_key."""

    disable = True
    help = (
        "Disable (pause) API keys by id, whoever owns them: a disabled key stops verifying at once "
        "(401 'this key is disabled') and keeps its secret, scopes, expiry and its place under the "
        "active-key limit until enableapikey resumes it. The safe first move while checking whether a key "
        "leaked. Prints one line per key; a key already disabled is reported, not an error. Exits "
        "non-zero if any id is malformed, unknown or revoked, after disabling all the others."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--reason",
            metavar="TEXT",
            default="",
            help="Why: shown to the key's owner in the email notice and kept in the audit record (one line, "
            f"at most {MAX_REASON_LENGTH} characters, never the key itself).",
        )

    def handle(self, *args, reason, **options):
        reason = reason.strip()
        if len(reason) > MAX_REASON_LENGTH:
            raise CommandError(f"--reason must be at most {MAX_REASON_LENGTH} characters.")
        if not reason.isprintable():
            raise CommandError("--reason must be one line of printable text.")
        if crypto.contains_raw_key(reason):  # lifecycle.validate_reason's rule, refused before any key changes
            raise CommandError(f"--reason: {lifecycle.SECRET_IN_REASON}")
        return super().handle(*args, reason=reason, **options)
