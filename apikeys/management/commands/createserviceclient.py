"""createserviceclient: add a service client and print its token, once."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apikeys import lifecycle
from apikeys.management.operator import utc, write_summary
from apikeys.models import ServiceClient

# --allow values: the permission flags without "can_".
PERMISSION_CHOICES = [flag.removeprefix("can_") for flag in ServiceClient.PERMISSIONS]


class Command(BaseCommand):
    """``createserviceclient NAME --allow PERMISSION ...``: through lifecycle.issue_service_client."""

    help = (
        "Add a service client, another service that calls the service API (/v1/service/), and print its token "
        "(omi_svc_...) on stdout, this once: only its hash is kept. A summary goes to stderr. "
        "Rotate the token with rotateserviceclient, revoke the client with revokeserviceclient."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", metavar="NAME", help="Which service this is, such as omi-developer-api. Unique.")
        parser.add_argument(
            "--allow",
            action="append",
            dest="permissions",
            choices=PERMISSION_CHOICES,
            default=[],
            metavar="PERMISSION",
            help=f"What the client may do; repeat for several: {', '.join(PERMISSION_CHOICES)}. Default: nothing.",
        )

    def handle(self, *args, name, permissions, **options):
        try:
            issued = lifecycle.issue_service_client(name, permissions=[f"can_{p}" for p in permissions])
        except ValidationError as exc:
            messages = " ".join(message for errors in exc.error_dict.values() for e in errors for message in e.messages)
            raise CommandError(f"No service client was added: {messages}") from exc
        client = issued.client
        self.stdout.write(issued.plaintext)
        write_summary(
            self.stderr,
            f"Added service client {client.pk}",
            {
                "name": client.name,
                "prefix": client.token_prefix,
                "may": ", ".join(client.permission_names) or "nothing",
                "created": utc(client.created_at),
            },
            "The token was printed on stdout. It is shown only this once and cannot be recovered: store it now.",
        )
