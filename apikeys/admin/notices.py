"""Staff door: the email notices sent to keys' owners, read-only: what was sent to whom, and what was not."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from ..models import Notice


@admin.register(Notice)
class NoticeAdmin(admin.ModelAdmin):
    """Notices, read-only: kind, recipient, key, status, attempts, when sent, the mail server's last answer.

    Staff cannot add, change or delete them: they are the record of what omikeys told owners.
    """

    list_display = ("created_at", "kind", "recipient", "key_link", "status", "attempts", "sent_at", "last_error")
    list_filter = ("kind", "status")
    list_select_related = ("api_key",)
    search_fields = ("recipient", "api_key__key_prefix", "user__firebase_uid")
    date_hierarchy = "created_at"
    fields = (
        "kind",
        "status",
        "recipient",
        "subject",
        "user_link",
        "key_link",
        "key_event",
        "attempts",
        "next_attempt_at",
        "locked_until",
        "last_error",
        "created_at",
        "sent_at",
        "dedup_key",
    )
    readonly_fields = fields

    @admin.display(description="key", ordering="api_key__key_prefix")
    def key_link(self, notice):
        url = reverse("admin:apikeys_apikey_change", args=[notice.api_key_id])
        return format_html('<a href="{}">{}</a>', url, notice.api_key.key_prefix)

    @admin.display(description="user")
    def user_link(self, notice):
        url = reverse("admin:apikeys_user_change", args=[notice.user_id])
        return format_html('<a href="{}">{}</a>', url, notice.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
