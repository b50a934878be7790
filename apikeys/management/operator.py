"""What the management commands tell the operator: users, UTC times and summaries, on stderr."""

import datetime

from apikeys.models import User


def utc(moment: datetime.datetime) -> str:
    """The moment in UTC, to the second: "2027-01-31 00:00:00 UTC"."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_user(user: User) -> str:
    """How the commands name a user: "email (uid ...)", "uid ...", or the email or username."""
    if user.firebase_uid and user.email:
        return f"{user.email} (uid {user.firebase_uid})"
    if user.firebase_uid:
        return f"uid {user.firebase_uid}"
    return user.email or user.username


def write_note(stderr, text: str) -> None:
    """Information for the operator on stderr, whose default style would paint it as an error."""
    stderr.write(text, style_func=lambda message: message)


def write_summary(stderr, heading: str, fields: dict[str, str], closing: str) -> None:
    """A heading, then one aligned "  label: value" line per field, then a closing line, on stderr.

    ``{"name": "CI", "prefix": "omi_dev_..."}`` under "Issued API key ..." prints
    ``  name:   CI`` and ``  prefix: omi_dev_...``: values start in one column.
    """
    width = max(map(len, fields)) + 1
    lines = [heading, *(f"  {f'{label}:':<{width}} {value}" for label, value in fields.items()), closing]
    write_note(stderr, "\n".join(lines))
