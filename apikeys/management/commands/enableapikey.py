"""enableapikey: resume disabled keys by id, whoever owns them; their secrets verify again."""

from ._pause import PauseCommand


class Command(PauseCommand):
    """``enableapikey KEY_ID [KEY_ID ...]``: resume keys through lifecycle.enable_key."""

    disable = False
    help = (
        "Enable API keys that disableapikey (or their owner) paused: their secrets verify again at once, "
        "unless the key has expired meanwhile. Prints one line per key; a key that is not disabled is "
        "reported, not an error. Exits non-zero if any id is malformed, unknown or revoked, after enabling "
        "all the others."
    )
