"""The admin of webhooks: endpoints (secret shown once, rotate, enable, disable), deliveries (redeliver), events."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html

from .. import events, webhooks
from ..models import EVENT_TYPES, WEBHOOK_URL_MAX_LENGTH, WebhookEndpoint


class WebhookEndpointForm(forms.ModelForm):
    """URL, description and event types; the URL is checked as deliveries check it (no private addresses)."""

    url = forms.URLField(label="URL", max_length=WEBHOOK_URL_MAX_LENGTH, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        choices=EVENT_TYPES, widget=forms.CheckboxSelectMultiple, help_text="The events sent to this URL."
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "description", "event_types")

    def clean_url(self):
        return webhooks.check_url(self.cleaned_data["url"])

    def clean_event_types(self):
        return webhooks.check_event_types(self.cleaned_data["event_types"])


@admin.display(description="status")
def endpoint_status(endpoint: WebhookEndpoint) -> str:
    if endpoint.enabled:
        return "Enabled"
    return f"Disabled: {endpoint.disabled_reason}" if endpoint.disabled_reason else "Disabled"


class WebhookEndpointAdmin(admin.ModelAdmin):
    """Endpoints: the add page shows the new signing secret once; actions rotate it, enable and disable."""

    form = WebhookEndpointForm
    list_display = ("url", "description", "types_column", endpoint_status, "failing_since", "created_at")
    list_filter = ("enabled",)
    search_fields = ("url", "description")
    readonly_fields = (endpoint_status, "disabled_at", "failing_since", "secret_rotated_at", "created_at")
    actions = ("rotate_secret", "disable_selected", "enable_selected")

    @admin.display(description="event types")
    def types_column(self, endpoint):
        return ", ".join(endpoint.event_types or [])

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def add_view(self, request, form_url="", extra_context=None):
        """A valid POST registers the endpoint through webhooks.register_endpoint and shows its secret once."""
        if request.method == "POST" and self.has_add_permission(request):
            form = WebhookEndpointForm(request.POST)
            if form.is_valid():
                try:
                    endpoint, secret = webhooks.register_endpoint(
                        form.cleaned_data["url"], form.cleaned_data["event_types"], form.cleaned_data["description"]
                    )
                except ValidationError as error:
                    form.add_error(None, error)
                else:
                    self.log_addition(request, endpoint, [{"added": {}}])
                    return self.show_secret_once(request, endpoint, secret, rotated=False)
        return super().add_view(request, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        # New endpoints are made only by add_view, through webhooks.register_endpoint (which
        # makes the secret); this saves the changes of an existing one.
        if not change:
            raise PermissionDenied("Webhook endpoints are registered through the add form.")
        super().save_model(request, obj, form, change)
        events.forget_subscriptions()

    def has_delete_permission(self, request, obj=None):
        # Disabled, never deleted: their deliveries stay for the record, and a key change in
        # another process may still name a just-deleted endpoint for a few seconds.
        return False

    def show_secret_once(self, request, endpoint, secret: str, *, rotated: bool):
        """The page with the signing secret, in the response itself and never cached."""
        context = {
            **self.admin_site.each_context(request),
            "title": "Signing secret",
            "opts": self.opts,
            "endpoint": endpoint,
            "secret": secret,
            "rotated": rotated,
            "change_url": reverse("admin:apikeys_webhookendpoint_change", args=[endpoint.pk]),
            "changelist_url": reverse("admin:apikeys_webhookendpoint_changelist"),
        }
        response = TemplateResponse(request, "admin/apikeys/webhookendpoint/secret.html", context)
        add_never_cache_headers(response)
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        endpoint = self.get_object(request, object_id)
        if endpoint is not None and not endpoint.enabled and request.method == "GET":
            self.message_user(request, disabled_notice(endpoint), messages.WARNING)
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET":
            disabled = list(WebhookEndpoint.objects.filter(enabled=False).values_list("url", flat=True)[:5])
            if disabled:
                self.message_user(
                    request,
                    f"Disabled, nothing is sent to: {', '.join(disabled)}. Once the receiver is fixed, "
                    "enable the endpoint again (its waiting deliveries are then sent; changes made while it is "
                    "disabled are not).",
                    messages.WARNING,
                )
        return super().changelist_view(request, extra_context)

    @admin.action(description="Rotate the signing secret of the selected endpoint (shown once)")
    def rotate_secret(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one endpoint to rotate its secret.", messages.ERROR)
            return None
        endpoint = queryset.get()
        secret = webhooks.rotate_secret(endpoint)
        self.log_change(request, endpoint, "Rotated the signing secret.")
        return self.show_secret_once(request, endpoint, secret, rotated=True)

    @admin.action(description="Disable the selected endpoints")
    def disable_selected(self, request, queryset):
        changed = [e for e in queryset if webhooks.disable_endpoint(e, f"Disabled by {request.user.get_username()}")]
        for endpoint in changed:
            self.log_change(request, endpoint, "Disabled.")
        self.message_user(request, f"Disabled {len(changed)} endpoint{'s' if len(changed) != 1 else ''}.")

    @admin.action(description="Enable the selected endpoints")
    def enable_selected(self, request, queryset):
        changed = [endpoint for endpoint in queryset if webhooks.enable_endpoint(endpoint)]
        for endpoint in changed:
            self.log_change(request, endpoint, "Enabled.")
        self.message_user(request, f"Enabled {len(changed)} endpoint{'s' if len(changed) != 1 else ''}.")


def disabled_notice(endpoint: WebhookEndpoint) -> str:
    """The admin's warning on a disabled endpoint's page."""
    when = endpoint.disabled_at.strftime("%Y-%m-%d %H:%M UTC") if endpoint.disabled_at else "earlier"
    reason = endpoint.disabled_reason or "no reason recorded"
    return (
        f"This endpoint was disabled at {when}: {reason}. Nothing is sent to it until it is enabled again, "
        "and changes made meanwhile are not sent to it then."
    )


class DeliveryAdmin(admin.ModelAdmin):
    """Deliveries, read-only: status, response code, attempts, next attempt; the "redeliver" action."""

    list_display = (
        "created_at",
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "last_response_code",
        "next_attempt_at",
        "delivered_at",
        "last_error",
    )
    list_filter = ("status", "event__type", "endpoint")
    list_select_related = ("event", "endpoint")
    search_fields = ("event__id", "endpoint__url")
    actions = ("redeliver_selected",)
    fields = (
        "event_link",
        "endpoint",
        "status",
        "attempts",
        "last_attempt_at",
        "last_response_code",
        "last_error",
        "next_attempt_at",
        "locked_until",
        "delivered_at",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="event type", ordering="event__type")
    def event_type(self, delivery):
        return delivery.event.type

    @admin.display(description="event")
    def event_link(self, delivery):
        url = reverse("admin:apikeys_event_change", args=[delivery.event_id])
        return format_html('<a href="{}">{} {}</a>', url, delivery.event.type, delivery.event_id)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Redeliver the selected deliveries (from the first attempt)", permissions=["change"])
    def redeliver_selected(self, request, queryset):
        count = webhooks.redeliver(list(queryset))
        self.message_user(request, f"Queued {count} deliver{'ies' if count != 1 else 'y'} to be sent again.")


class EventAdmin(admin.ModelAdmin):
    """The outbox, read-only: each outgoing event with its JSON payload."""

    list_display = ("created_at", "type", "id")
    list_filter = ("type",)
    search_fields = ("id",)
    fields = ("id", "type", "created_at", "payload")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
