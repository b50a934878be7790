"""rotateserviceclient: give a service client a new token and print it, once; the old one stops at once."""

from django.core.management.base import BaseCommand, CommandError

from apikeys import lifecycle
from apikeys.management.operator import write_summary
from apikeys.models import ServiceClient


def find_client(name: str) -> ServiceClient:
    """The service client with this name (exact), or a CommandError listing the names there are."""
    try:
        return ServiceClient.objects.get(name=name)
    except ServiceClient.DoesNotExist:
        names = ", ".join(ServiceClient.objects.values_list("name", flat=True)) or "none yet"
        raise CommandError(f"No service client is named {name!r}. Service clients: {names}.") from None


class Command(BaseCommand):
    """``rotateserviceclient NAME``: through lifecycle.rotate_service_client."""

    help = (
        "Give a service client a new token and print it on stdout, this once; the old token stops working at "
        "once. A revoked client cannot be rotated."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", metavar="NAME", help="The service client's name.")

    def handle(self, *args, name, **options):
        client = find_client(name)
        try:
            issued = lifecycle.rotate_service_client(client)
        except lifecycle.ServiceClientRevoked as exc:
            raise CommandError(f"{exc} Add a new client with createserviceclient.") from exc
        self.stdout.write(issued.plaintext)
        write_summary(
            self.stderr,
            f"Rotated the token of service client {client.pk}",
            {"name": client.name, "prefix": client.token_prefix},
            "The new token was printed on stdout, this once; the old one has stopped working.",
        )
