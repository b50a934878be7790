"""The ``--reason`` option disableapikey and revokeapikey share: one line, short, and never a secret."""

from django.core.management.base import CommandError

from apikeys import crypto, lifecycle

MAX_REASON_LENGTH = 200


def add_reason_argument(parser) -> None:
    """Add ``--reason TEXT`` (default empty) to a command's parser."""
    parser.add_argument(
        "--reason",
        metavar="TEXT",
        default="",
        help="Why: shown to the key's owner in the email notice and kept in the audit record (one line, "
        f"at most {MAX_REASON_LENGTH} characters, never the key itself).",
    )


def clean_reason(reason: str) -> str:
    """``reason`` trimmed; a ``CommandError`` before any key changes if it is too long, not one line of
    printable text, or looks like it holds a key or token (``lifecycle.validate_reason``'s rule)."""
    reason = reason.strip()
    if len(reason) > MAX_REASON_LENGTH:
        raise CommandError(f"--reason must be at most {MAX_REASON_LENGTH} characters.")
    if not reason.isprintable():
        raise CommandError("--reason must be one line of printable text.")
    if crypto.contains_raw_key(reason):
        raise CommandError(f"--reason: {lifecycle.SECRET_IN_REASON}")
    return reason
