"""webhookendpoint: register, list, disable, enable webhook endpoints and rotate their signing secrets."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apikeys import webhooks
from apikeys.models import EVENT_TYPE_NAMES, WebhookEndpoint


class Command(BaseCommand):
    """``webhookendpoint add URL --events key.created,key.revoked``; ``list``; ``disable``, ``enable``,
    ``rotate-secret`` ``ID``."""

    help = (
        "Manage webhook endpoints. 'add URL --events TYPES' registers one and prints its signing secret "
        "(shown once); 'list' shows them; 'disable ID', 'enable ID' and 'rotate-secret ID' act on one. "
        f"Event types: {', '.join(EVENT_TYPE_NAMES)}."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = actions.add_parser("add", help="Register an endpoint and print its signing secret once.")
        add.add_argument("url", metavar="URL", help="The https:// URL to POST events to.")
        add.add_argument(
            "--events",
            required=True,
            help=f"Comma list of event types, or 'all' ({', '.join(EVENT_TYPE_NAMES)}).",
        )
        add.add_argument("--description", default="", help="What receives the events (for staff).")
        actions.add_parser("list", help="List the endpoints: id, status, event types, URL.")
        for name, text in (
            ("disable", "Stop sending to an endpoint (its pending deliveries wait)."),
            ("enable", "Send to a disabled endpoint again."),
            ("rotate-secret", "Give an endpoint a new signing secret and print it once."),
        ):
            parser = actions.add_parser(name, help=text)
            parser.add_argument("endpoint_id", metavar="ID", type=int)
        parser.add_argument(
            "--grace-hours",
            type=int,
            default=None,
            help="Hours the old secret keeps signing beside the new one, 0 to 168 "
            "(default: OMIKEYS_WEBHOOK_SECRET_GRACE_HOURS, 24).",
        )

    def handle(self, *args, action, **options):
        if action == "add":
            return self.add(options["url"], options["events"], options["description"])
        if action == "list":
            return self.list()
        endpoint = WebhookEndpoint.objects.filter(pk=options["endpoint_id"]).first()
        if endpoint is None:
            raise CommandError(f"No webhook endpoint has id {options['endpoint_id']} (see 'webhookendpoint list').")
        if action == "disable":
            done = webhooks.disable_endpoint(endpoint, "Disabled with manage.py webhookendpoint")
            self.stdout.write(f"{endpoint.pk}: {'disabled' if done else 'already disabled'} ({endpoint.url}).")
        elif action == "enable":
            done = webhooks.enable_endpoint(endpoint)
            self.stdout.write(f"{endpoint.pk}: {'enabled' if done else 'already enabled'} ({endpoint.url}).")
        else:
            try:
                secret = webhooks.rotate_secret(endpoint, options["grace_hours"])
            except ValueError as error:
                raise CommandError(str(error)) from None
            if endpoint.previous_secret_expires_at:
                until = endpoint.previous_secret_expires_at.strftime("%Y-%m-%d %H:%M UTC")
                old = f"the old one also signs until {until}"
            else:
                old = "the old one no longer signs"
            self.stdout.write(f"{endpoint.pk}: new signing secret for {endpoint.url} ({old}; shown once):\n{secret}")

    def add(self, url: str, events: str, description: str) -> None:
        types = [name.strip() for name in events.split(",") if name.strip()]
        if types == ["all"]:
            types = list(EVENT_TYPE_NAMES)
        try:
            endpoint, secret = webhooks.register_endpoint(url, types, description)
        except ValidationError as error:
            problems = [f"{field}: {message}" for field, messages in error.message_dict.items() for message in messages]
            raise CommandError("The endpoint was not registered. " + " ".join(problems)) from None
        self.stdout.write(
            f"Registered webhook endpoint {endpoint.pk} for {', '.join(endpoint.event_types)}: {endpoint.url}\n"
            f"Signing secret (shown once; the receiver verifies webhook-signature with it):\n{secret}"
        )

    def list(self) -> None:
        endpoints = WebhookEndpoint.objects.order_by("pk")
        if not endpoints:
            self.stdout.write("No webhook endpoints. Register one with: manage.py webhookendpoint add URL --events ...")
            return
        for endpoint in endpoints:
            status = "enabled" if endpoint.enabled else f"disabled ({endpoint.disabled_reason})"
            self.stdout.write(f"{endpoint.pk}\t{status}\t{','.join(endpoint.event_types)}\t{endpoint.url}")
