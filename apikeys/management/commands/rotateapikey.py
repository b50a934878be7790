"""rotateapikey: give a key a new secret from a script; stdout carries the new key and nothing else."""

import uuid

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apikeys import lifecycle
from apikeys.audit import Actor
from apikeys.models import ApiKey

from ..operator import describe_user, utc, write_summary
from .createapikey import owner_in_good_standing
from .revokeapikey import parse_key_id


class Command(BaseCommand):
    """``rotateapikey KEY_ID [--grace SECONDS]``: a new secret on stdout, through lifecycle.rotate_key."""

    help = (
        "Give an API key a new secret, whoever owns it; its id, name, scopes and expiry stay. "
        "stdout gets only the new key, so KEY=$(manage.py rotateapikey ...) captures it; the "
        "details go to stderr. The new key is shown this once and can never be shown again. "
        "The replaced secret stops working at once, unless --grace gives clients time to switch. "
        "Firebase is asked first: the key of a disabled or deleted account gets no new secret."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "key_id", metavar="KEY_ID", help="Id of the key to rotate (a UUID, as shown by listapikeys)."
        )
        parser.add_argument(
            "--grace",
            type=int,
            default=0,
            metavar="SECONDS",
            help=(
                "Grace period: how long the replaced secret keeps working alongside the new one, "
                f"from 0 (the default: it stops at once) to {lifecycle.MAX_GRACE_SECONDS} (7 days). "
                "Rotating again during a grace period stops the older secret at once."
            ),
        )

    def handle(self, *args, key_id, grace, **options):
        parsed = parse_key_id(key_id)
        if parsed is None:
            raise CommandError(f"{key_id!r} is not a key id. Key ids are UUIDs such as {uuid.UUID(int=0)}.")
        api_key = ApiKey.objects.select_related("owner").filter(pk=parsed).first()
        if api_key is None:
            raise CommandError(f"{parsed}: no API key has this id.")
        # A new secret is a new credential: Firebase, not the local copy, says whether its owner may have one.
        owner_in_good_standing(api_key.owner, "no new secret was issued")
        api_key.owner.refresh_from_db(fields=["email"])
        old_prefix = api_key.key_prefix
        try:
            issued = lifecycle.rotate_key(api_key, grace_seconds=grace, actor=Actor.command("rotateapikey"))
        except ValidationError as exc:
            raise CommandError(f"Invalid --grace: {' '.join(exc.messages)}") from exc
        except lifecycle.NotChangeable as exc:
            raise CommandError(f"{parsed}: {exc} Nothing changed.") from exc

        api_key = issued.api_key
        self.stdout.write(issued.plaintext)
        if api_key.previous_key_expires_at:
            replaced = f"keeps working until {utc(api_key.previous_key_expires_at)} ({describe_grace(grace)})"
        else:
            replaced = "stopped working now"
        write_summary(
            self.stderr,
            f"Rotated API key {api_key.pk}",
            {
                "name": api_key.name,
                "owner": describe_user(api_key.owner),
                "prefix": f"{api_key.key_prefix} (was {old_prefix})",
                "old secret": replaced,
            },
            "The new key was printed on stdout. It is shown only this once and cannot be recovered: store it now.",
        )


def describe_grace(seconds: int) -> str:
    """The grace period in the summary's words: "a grace period of 3600 seconds"."""
    return f"a grace period of {seconds} seconds"
