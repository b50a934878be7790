"""The admin of scopes, the API's vocabulary: a used code is fixed and a used scope cannot be deleted."""

from django.contrib import admin
from django.db.models import Count, Q

from .forms import ScopeAdminForm


class ScopeAdmin(admin.ModelAdmin):
    """Scopes are the API's vocabulary: a used code is fixed, and a used scope cannot be deleted."""

    form = ScopeAdminForm
    list_display = ("code", "description", "is_default", "active_key_count")
    list_filter = ("is_default",)
    search_fields = ("code", "description")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(active_key_count=Count("api_keys", filter=Q(api_keys__revoked_at__isnull=True)))
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.api_keys.exists():
            return ("code",)
        return ()

    def get_actions(self, request):
        # The bulk delete would drop used scopes from keys, revoked ones included.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.api_keys.exists():
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="active keys", ordering="active_key_count")
    def active_key_count(self, obj):
        return obj.active_key_count
