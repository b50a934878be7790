"""What disableapikey and enableapikey share: pause or resume keys by id, one line of outcome per key."""

import contextlib
import uuid

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apikeys import lifecycle
from apikeys.audit import Actor
from apikeys.models import ApiKey

from .revokeapikey import describe, parse_key_id


class PauseCommand(BaseCommand):
    """``<command> KEY_ID [KEY_ID ...]``: each key through :func:`lifecycle.disable_key` or
    :func:`lifecycle.enable_key` (``disable`` says which), with revokeapikey's output and exit codes.

    A key already in the state asked for is reported, not an error; a revoked key, a malformed
    or an unknown id is an error on stderr, and the command exits non-zero after handling
    every valid id.
    """

    disable: bool = True

    @property
    def verb(self) -> str:
        return "disabled" if self.disable else "enabled"

    def add_arguments(self, parser):
        parser.add_argument(
            "key_ids",
            nargs="+",
            metavar="KEY_ID",
            help=f"Id of a key to {self.verb[:-1]} (a UUID, as shown by listapikeys). Give several for several.",
        )

    def handle(self, *args, key_ids, reason="", **options):
        requested = {}  # raw id -> UUID, or None when malformed; in the order given
        for raw in key_ids:
            key_id = parse_key_id(raw)
            if key_id is None or key_id not in requested.values():
                requested.setdefault(raw, key_id)
        found = ApiKey.objects.select_related("owner").in_bulk([key_id for key_id in requested.values() if key_id])

        actor = Actor.command(self.__module__.rpartition(".")[2])  # the command's name, as typed
        failed = changed = unchanged = 0
        # One transaction: its commit queues one notice mail per owner (apikeys.notices), not one per key.
        # No valid id: no transaction either, so a run of typos never opens the database.
        with transaction.atomic() if any(requested.values()) else contextlib.nullcontext():
            for raw, key_id in requested.items():
                api_key = found.get(key_id)
                if key_id is None:
                    failed += 1
                    self.stderr.write(f"{raw!r}: not a key id. Key ids are UUIDs such as {uuid.UUID(int=0)}.")
                    continue
                if api_key is None:
                    failed += 1
                    self.stderr.write(f"{key_id}: no API key has this id.")
                    continue
                try:
                    if self.disable:
                        done = lifecycle.disable_key(api_key, actor=actor, reason=reason)
                    else:
                        done = lifecycle.enable_key(api_key, actor=actor)
                except lifecycle.KeyRevoked:
                    failed += 1
                    revoked_at = api_key.revoked_at.isoformat(timespec="seconds")
                    self.stderr.write(
                        f"{key_id}: revoked at {revoked_at}; a revoked key cannot change ({describe(api_key)})."
                    )
                    continue
                if done:
                    changed += 1
                    self.stdout.write(f"{key_id}: {self.verb} ({describe(api_key)}).{self.afterword(api_key)}")
                else:
                    unchanged += 1
                    self.stdout.write(f"{key_id}: already {self.verb} ({describe(api_key)}).")

        if failed == len(requested):
            which = "the id" if failed == 1 else f"all {failed} ids"
            raise CommandError(f"No key was {self.verb}: {which} failed.")
        if failed:
            raise CommandError(
                f"{failed} of {len(requested)} key ids failed. "
                f"The valid ones were still handled: {changed} {self.verb}, {unchanged} already {self.verb}."
            )

    def afterword(self, api_key: ApiKey) -> str:
        """What to add after a key enabled that still does not verify (it expired meanwhile)."""
        if not self.disable and not api_key.verifies:
            return f" It is {api_key.status}, so it still does not verify."
        return ""
