"""revokeapikey: revoke keys by id, whoever owns them, one line of outcome per key."""

import contextlib
import uuid

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apikeys import lifecycle
from apikeys.audit import Actor
from apikeys.models import ApiKey

from ._reason import add_reason_argument, clean_reason


class Command(BaseCommand):
    """``revokeapikey KEY_ID [KEY_ID ...] [--reason TEXT]``: revoke keys by id through lifecycle.revoke_key."""

    help = (
        "Revoke API keys by id, whoever owns them; a revoked key stops working at once. "
        "Prints one line per key. A key that is already revoked is reported, not an error. "
        "Exits non-zero if any id is malformed or unknown, after revoking all the valid ones. "
        "--reason tells the owner why, in the email notice they get."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "key_ids",
            nargs="+",
            metavar="KEY_ID",
            help="Id of a key to revoke (a UUID, as shown by listapikeys). Give several to revoke several.",
        )
        add_reason_argument(parser)

    def handle(self, *args, key_ids, reason="", **options):
        reason = clean_reason(reason)
        requested = {}  # raw id -> UUID, or None when malformed; in the order given
        for raw in key_ids:
            key_id = parse_key_id(raw)
            # A repeated id would otherwise report "already revoked" on its second mention.
            if key_id is None or key_id not in requested.values():
                requested.setdefault(raw, key_id)
        valid = [key_id for key_id in requested.values() if key_id is not None]
        # All the keys in one query (and none at all when every id is malformed).
        found = ApiKey.objects.select_related("owner").in_bulk(valid)

        actor = Actor.command("revokeapikey")
        failed = revoked = already = 0
        # One transaction: its commit queues one notice mail per owner (apikeys.notices), not one per key.
        # None when no id names a key: nothing to write, and no query at all for malformed ids.
        with transaction.atomic() if found else contextlib.nullcontext():
            for raw, key_id in requested.items():
                api_key = found.get(key_id)
                if key_id is None:
                    failed += 1
                    self.stderr.write(f"{raw!r}: not a key id. Key ids are UUIDs such as {uuid.UUID(int=0)}.")
                elif api_key is None:
                    failed += 1
                    self.stderr.write(f"{key_id}: no API key has this id.")
                elif lifecycle.revoke_key(api_key, actor=actor, reason=reason):
                    revoked += 1
                    self.stdout.write(f"{key_id}: revoked ({describe(api_key)}).")
                else:
                    already += 1
                    revoked_at = api_key.revoked_at.isoformat(timespec="seconds")
                    self.stdout.write(f"{key_id}: already revoked at {revoked_at} ({describe(api_key)}).")

        if failed == len(requested):
            raise CommandError(f"No key was revoked: {'the id' if failed == 1 else f'all {failed} ids'} failed.")
        if failed:
            raise CommandError(
                f"{failed} of {len(requested)} key ids failed. "
                f"The valid ones were still handled: {revoked} revoked, {already} already revoked."
            )


def parse_key_id(raw: str) -> uuid.UUID | None:
    """The key id, or None when ``raw`` is not a UUID."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


def describe(api_key: ApiKey) -> str:
    """How each output line names a key: "prefix, 'name', owner email"."""
    return f"{api_key.key_prefix}, {api_key.name!r}, owner {api_key.owner.label}"
