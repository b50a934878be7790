"""listapikeys: list keys (never their secrets or hashes) as a table or as JSON."""

import datetime
import json

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from apikeys.models import ApiKey, User

HEADER = ["ID", "PREFIX", "NAME", "OWNER", "SCOPES", "CREATED (UTC)", "LAST USED (UTC)", "EXPIRES (UTC)", "STATUS"]
STATUSES = ApiKey.Status.values  # "active", "disabled", "expired", "revoked"


class Command(BaseCommand):
    """``listapikeys [--owner UID_OR_EMAIL] [--all] [--json]``."""

    help = (
        "List API keys, newest first: active ones, disabled ones (marked disabled) and expired ones "
        "(marked expired), and revoked ones too with --all. Shows each key's id, display prefix, name, "
        "owner, scopes, creation, last-use and expiry times and status; never the key itself or its hash."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--owner",
            metavar="UID_OR_EMAIL",
            help="Only keys of the user with this Firebase uid or email address (case-insensitive).",
        )
        parser.add_argument("--all", action="store_true", dest="include_revoked", help="Include revoked keys.")
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help=(
                "Print a JSON array instead of a table (ISO 8601 times; last_used_at is null if never used, "
                "expires_at if the key never expires, disabled_at while it is enabled; status is active, disabled, "
                "expired or revoked)."
            ),
        )

    def handle(self, *args, owner, include_revoked, as_json, **options):
        keys = ApiKey.objects.select_related("owner").with_scopes()
        if not include_revoked:
            keys = keys.unrevoked()  # expired keys too: they are listed, marked expired
        if owner is not None:
            if not owner.strip():
                raise CommandError("--owner must not be empty.")
            owners = User.objects.filter(Q(firebase_uid=owner) | Q(email__iexact=owner.strip()))
            if not owners.exists():
                raise CommandError(f"No local user has the uid or email {owner!r}.")
            keys = keys.filter(owner__in=owners)
        rows = [key_row(api_key) for api_key in keys]

        if as_json:
            self.stdout.write(dump_json(rows))
            return
        if not rows:
            which = "API keys" if include_revoked else "active or expired API keys"
            self.stdout.write(f"No {which}{f' for {owner}' if owner else ''}.")
            return
        self.stdout.write(render_table(rows))
        self.stdout.write(summary(rows, include_revoked))


def key_row(api_key: ApiKey) -> dict:
    """One key as a row: id, prefix, name, owner, scopes, moments (datetimes or None) and status."""
    owner = api_key.owner
    return {
        "id": str(api_key.pk),
        "key_prefix": api_key.key_prefix,
        "name": api_key.name,
        "owner": owner.label,
        "owner_uid": owner.firebase_uid,
        "scopes": [scope.code for scope in api_key.scopes.all()],
        "created_at": api_key.created_at,
        "last_used_at": api_key.last_used_at,
        "revoked_at": api_key.revoked_at,
        "expires_at": api_key.expires_at,
        "disabled_at": api_key.disabled_at,
        "status": api_key.status,
    }


def dump_json(rows: list[dict]) -> str:
    """The rows as a JSON array, moments in ISO 8601 UTC."""

    def encode(value):
        return iso(value) if isinstance(value, datetime.datetime) else value

    return json.dumps([{field: encode(value) for field, value in row.items()} for row in rows], indent=2)


def render_table(rows: list[dict]) -> str:
    """The rows as a text table with a header, columns padded to their widest cell."""
    cells = [
        [
            row["id"],
            row["key_prefix"],
            row["name"],
            row["owner"],
            ",".join(row["scopes"]),
            utc(row["created_at"]),
            utc(row["last_used_at"]) if row["last_used_at"] else "never",
            utc(row["expires_at"]) if row["expires_at"] else "never",
            row["status"],
        ]
        for row in rows
    ]
    lines = [HEADER, *cells]
    widths = [max(len(line[column]) for line in lines) for column in range(len(HEADER))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def summary(rows: list[dict], include_revoked: bool) -> str:
    """The count line: "2 active keys." when that is all, else "3 keys (2 active, 1 expired)" and so on."""
    counts = {status: sum(row["status"] == status for row in rows) for status in STATUSES}
    if counts["active"] == len(rows) and not include_revoked:
        return f"{plural(len(rows), 'active key')}."
    shown = [
        "active",
        *(["disabled"] if counts["disabled"] else []),
        *(["expired"] if counts["expired"] else []),
        *(["revoked"] if include_revoked else []),
    ]
    return f"{plural(len(rows), 'key')} ({', '.join(f'{counts[status]} {status}' for status in shown)})."


def iso(moment: datetime.datetime) -> str:
    """The moment in UTC as ISO 8601: "2027-01-31T00:00:00+00:00"."""
    return moment.astimezone(datetime.UTC).isoformat()


def utc(moment: datetime.datetime) -> str:
    """The moment in UTC, to the second: "2027-01-31 00:00:00"."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def plural(count: int, noun: str) -> str:
    """A count and its noun: "1 key", "2 keys"."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
