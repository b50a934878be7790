"""The admin of key events: the audit log, read-only for everyone, superusers included."""

from django.contrib import admin
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html

from .filters import EventDateFilter, touches_a_hash


class KeyEventAdmin(admin.ModelAdmin):
    """The audit log: every change to every key, read-only for everyone, superusers included."""

    list_display = ("when", "action", "key_column", "owner_column", "actor_kind", "actor_label", "via", "ip_address")
    list_filter = ("action", "actor_kind", "via", ("at", EventDateFilter))
    search_fields = (
        "api_key__key_prefix",
        "api_key__owner__email",
        "api_key__owner__firebase_uid",
        "actor_label",
        "ip_address",
    )
    list_select_related = ("api_key__owner",)
    fields = (
        "when",
        "action",
        "key_column",
        "owner_column",
        "actor_kind",
        "actor",
        "service_client",
        "actor_label",
        "via",
        "ip_address",
        "user_agent",
        "details",
    )
    readonly_fields = fields

    def lookup_allowed(self, lookup, value, request=None):
        if touches_a_hash(lookup):
            return False
        return super().lookup_allowed(lookup, value, request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # an audit record is never edited

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(ordering="at")
    def when(self, obj):
        # To the second, in the server's time zone: an audit log orders events closer than a minute apart.
        return formats.date_format(timezone.localtime(obj.at), "Y-m-d H:i:s T")

    @admin.display(description="key", ordering="api_key__key_prefix")
    def key_column(self, obj):
        api_key = obj.api_key
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:apikeys_apikey_change", args=[api_key.pk]), api_key.key_prefix
        )

    @admin.display(description="owner", ordering="api_key__owner__email")
    def owner_column(self, obj):
        return obj.api_key.owner.label
