"""The admin of service clients: issued with a token shown once, permissions changed here, rotated and revoked."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.cache import add_never_cache_headers

from .. import lifecycle
from ..models import ServiceClient, validate_key_name


class ServiceClientAddForm(forms.Form):
    """A new client: its name and what it may do. The token is made by lifecycle.issue_service_client."""

    name = forms.CharField(max_length=100, help_text=ServiceClient._meta.get_field("name").help_text)
    can_verify_keys = forms.BooleanField(required=False, label="May verify keys")
    can_read_user_keys = forms.BooleanField(required=False, label="May read users' keys")
    can_act_on_users = forms.BooleanField(required=False, label="May act on users (revoke all keys, erase)")
    can_receive_events = forms.BooleanField(required=False, label="May receive events")


class ServiceClientChangeForm(forms.ModelForm):
    """A client's page: a new name follows the rules of the add form (lifecycle.clean_service_name): one visible
    line of at most 100 characters, no bidi controls, no secret in it."""

    class Meta:
        model = ServiceClient
        fields = ("name", *ServiceClient.PERMISSIONS)

    def clean_name(self) -> str:
        name = (self.cleaned_data.get("name") or "").strip()
        validate_key_name(name)
        return name


class ServiceClientAdmin(admin.ModelAdmin):
    """Service clients: added through a form that shows the new token once (in the response to the POST, never
    in a message or the session), permissions changed on each client's page, tokens rotated (one client at a
    time, shown once) and clients revoked from the list. Never deleted: the audit points at them."""

    list_display = ("name", "token_prefix", "permissions", "created_at", "last_used_at", "state")
    list_filter = ("can_verify_keys", "can_read_user_keys", "can_act_on_users", "can_receive_events")
    search_fields = ("name", "token_prefix")
    actions = ("rotate_token", "revoke_selected")
    form = ServiceClientChangeForm
    fields = (
        "name",
        *ServiceClient.PERMISSIONS,
        "token_prefix",
        "created_at",
        "rotated_at",
        "last_used_at",
        "revoked_at",
    )
    readonly_fields = ("token_prefix", "created_at", "rotated_at", "last_used_at", "revoked_at")

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [path("add/", self.admin_site.admin_view(self.issue_view), name=f"{prefix}_add"), *super().get_urls()]

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="may")
    def permissions(self, obj):
        return ", ".join(name.replace("_", " ") for name in obj.permission_names) or "nothing"

    @admin.display(description="status")
    def state(self, obj):
        return "revoked" if obj.is_revoked else "active"

    def issue_view(self, request, form_url=""):
        """The add form; a valid POST issues the client through lifecycle.issue_service_client and shows its token."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ServiceClientAddForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                issued = lifecycle.issue_service_client(
                    data["name"], permissions=[flag for flag in ServiceClient.PERMISSIONS if data[flag]]
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                self.log_addition(request, issued.client, [{"added": {}}])
                return self.show_token_once(request, issued, rotated=False)
        context = {
            **self.admin_site.each_context(request),
            "title": "Add service client",
            "opts": self.opts,
            "form": form,
            "changelist_url": reverse("admin:apikeys_serviceclient_changelist"),
        }
        return TemplateResponse(request, "admin/apikeys/serviceclient/add.html", context)

    def show_token_once(self, request, issued: lifecycle.IssuedServiceClient, *, rotated: bool):
        """The one page with the token: never cached."""
        context = {
            **self.admin_site.each_context(request),
            "title": "Service client token rotated" if rotated else "Service client added",
            "opts": self.opts,
            "client": issued.client,
            "plaintext": issued.plaintext,
            "rotated": rotated,
            "change_url": reverse("admin:apikeys_serviceclient_change", args=[issued.client.pk]),
            "changelist_url": reverse("admin:apikeys_serviceclient_changelist"),
        }
        response = TemplateResponse(request, "admin/apikeys/serviceclient/issued.html", context)
        add_never_cache_headers(response)
        return response

    @admin.action(description="Rotate the token of the selected client (the old one stops at once)")
    def rotate_token(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one service client to rotate its token.", messages.ERROR)
            return None
        client = queryset.get()
        try:
            issued = lifecycle.rotate_service_client(client)
        except lifecycle.ServiceClientRevoked as refused:
            self.message_user(request, str(refused), messages.ERROR)
            return None
        self.log_change(request, client, "Rotated the token; the old one stopped working at once.")
        return self.show_token_once(request, issued, rotated=True)

    @admin.action(description="Revoke the selected service clients (their tokens stop at once)")
    def revoke_selected(self, request, queryset):
        revoked = 0
        for client in queryset:
            if lifecycle.revoke_service_client(client):
                revoked += 1
                self.log_change(request, client, "Revoked.")
        self.message_user(request, f"Revoked {revoked} service client{'' if revoked == 1 else 's'}.", messages.SUCCESS)
