"""revokeserviceclient: revoke a service client; its token stops at once."""

from django.core.management.base import BaseCommand

from apikeys import lifecycle
from apikeys.management.commands.rotateserviceclient import find_client
from apikeys.management.operator import utc


class Command(BaseCommand):
    """``revokeserviceclient NAME``: through lifecycle.revoke_service_client."""

    help = (
        "Revoke a service client: its token stops working at once, for good (the client stays listed for the "
        "audit). A client already revoked is reported, not an error."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", metavar="NAME", help="The service client's name.")

    def handle(self, *args, name, **options):
        client = find_client(name)
        if lifecycle.revoke_service_client(client):
            self.stdout.write(f"{client.name}: revoked ({client.token_prefix}).")
        else:
            self.stdout.write(f"{client.name}: already revoked at {utc(client.revoked_at)} ({client.token_prefix}).")
