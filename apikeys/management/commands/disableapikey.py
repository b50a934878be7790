"""disableapikey: pause keys by id, whoever owns them; they keep their secrets until enabled again."""

from ._pause import PauseCommand
from ._reason import add_reason_argument, clean_reason


class Command(PauseCommand):
    """``disableapikey KEY_ID [KEY_ID ...] [--reason TEXT]``: pause keys through lifecycle.disable_key."""

    disable = True
    help = (
        "Disable (pause) API keys by id, whoever owns them: a disabled key stops verifying at once "
        "(401 'this key is disabled') and keeps its secret, scopes, expiry and its place under the "
        "active-key limit until enableapikey resumes it; its owner cannot enable it (a staff hold). "
        "The safe first move while checking whether a key "
        "leaked. Prints one line per key; a key already disabled is reported, not an error. Exits "
        "non-zero if any id is malformed, unknown or revoked, after disabling all the others."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        add_reason_argument(parser)

    def handle(self, *args, reason, **options):
        return super().handle(*args, reason=clean_reason(reason), **options)
