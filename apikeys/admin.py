"""Staff door: the Django admin for users, scopes and API keys."""

import secrets

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.shortcuts import redirect
from django.db.models.constants import LOOKUP_SEP
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html
from django.utils.translation import ngettext

from . import lifecycle
from .models import ApiKey, Scope, User


admin.site.site_header = "omikeys administration"
admin.site.site_title = "omikeys admin"
admin.site.index_title = "Keys, scopes and users"
# The key list is wide (owner, prefix, scopes, dates, status): give it the whole page.
admin.site.enable_nav_sidebar = False


def scope_codes(api_key: ApiKey) -> str:
    # .all() rather than a new query, so the prefetch done by the callers is used.
    return ", ".join(scope.code for scope in api_key.scopes.all())


def key_status(api_key: ApiKey) -> str:
    return api_key.status.capitalize()


class KeyStatusFilter(admin.SimpleListFilter):
    """Active or revoked; a new state (such as "expired") is one more entry in STATES."""

    title = "status"
    parameter_name = "status"
    STATES = {
        "active": ("Active", Q(revoked_at__isnull=True)),
        "revoked": ("Revoked", Q(revoked_at__isnull=False)),
    }

    def lookups(self, request, model_admin):
        return [(value, label) for value, (label, _) in self.STATES.items()]

    def queryset(self, request, queryset):
        state = self.STATES.get(self.value())
        return queryset if state is None else queryset.filter(state[1])


class IssueRefused(Exception):
    """lifecycle.issue_key rejected a submission the form had accepted."""

    def __init__(self, error: ValidationError):
        super().__init__(error)
        self.error = error


class ApiKeyAddForm(forms.ModelForm):
    """Owner, name and scopes of a key about to be issued by lifecycle.issue_key."""

    scopes = forms.ModelMultipleChoiceField(
        queryset=Scope.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    # Passed to issue_key as the request token: submitting this form twice (double
    # click, reload of the page that shows the key) never issues a second key.
    form_token = forms.RegexField(regex=r"^[A-Za-z0-9_-]{16,64}$", widget=forms.HiddenInput, required=False)
    # Set by ApiKeyAdmin.add_view when issue_key refused an earlier pass of this submission.
    refusal: ValidationError | None = None

    class Meta:
        model = ApiKey
        fields = ("owner", "name", "scopes")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial.setdefault("form_token", secrets.token_urlsafe(24))
        # Keys belong to active Firebase users, as on every other door.
        self.fields["owner"].queryset = User.objects.filter(firebase_uid__isnull=False, is_active=True)
        self.fields["owner"].help_text = "An active user who signs in with Firebase."
        defaults = ", ".join(scope.code for scope in lifecycle.default_scopes()) or "none at present"
        # Matches the API, where a key created without scopes gets the read-only default.
        self.fields["scopes"].help_text = f"Leave every box unticked to give the key the read-only default: {defaults}."

    def clean(self):
        cleaned_data = super().clean()
        if self.refusal is not None:
            self.add_error("name", self.refusal)
        if not cleaned_data.get("scopes") and not lifecycle.default_scopes():
            self.add_error("scopes", "There is no read-only default at present: choose at least one scope.")
        return cleaned_data


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are issued through lifecycle, renamed or rescoped here, revoked but never deleted.

    The hash is in no field list, no search field and no allowed lookup, so no
    admin page can show it or be used to probe it.
    """

    list_display = (
        "name",
        "owner_column",
        "key_prefix",
        "scope_list",
        "created_at",
        "last_used",
        "status",
    )
    list_filter = (KeyStatusFilter, "scopes", ("created_at", admin.DateFieldListFilter))
    search_fields = ("name", "key_prefix", "owner__email", "owner__firebase_uid")
    autocomplete_fields = ("owner",)
    actions = ("revoke_selected",)
    add_fields = ("owner", "name", "scopes", "form_token")
    change_fields = (
        "name",
        "scopes",
        "owner",
        "owner_email",
        "owner_uid",
        "key_prefix",
        "created_at",
        "last_used_at",
        "status",
        "revoked_at",
    )
    change_readonly_fields = tuple(field for field in change_fields if field not in {"name", "scopes"})

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner").with_scopes()

    def get_fields(self, request, obj=None):
        return self.add_fields if obj is None else self.change_fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.change_readonly_fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            refusal = getattr(request, "_apikeys_issue_refusal", None)
            kwargs["form"] = type("ApiKeyAddForm", (ApiKeyAddForm,), {"refusal": refusal})
        return super().get_form(request, obj, change, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "scopes":
            kwargs["widget"] = forms.CheckboxSelectMultiple
        formfield = super().formfield_for_manytomany(db_field, request, **kwargs)
        if db_field.name == "scopes":
            formfield.help_text = "A key needs at least one scope."
        return formfield

    def lookup_allowed(self, lookup, value, request=None):
        # Any local field is filterable from the URL by default; key_hash__startswith
        # would let anyone with the changelist read a hash out one character at a time.
        if lookup.split(LOOKUP_SEP, 1)[0] == "key_hash":
            return False
        return super().lookup_allowed(lookup, value, request)

    def has_change_permission(self, request, obj=None):
        if obj is not None and not obj.is_active:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False  # keys are revoked, and kept for audit

    @admin.display(description="owner email", ordering="owner__email")
    def owner_email(self, obj):
        return obj.owner.email

    @admin.display(description="owner", ordering="owner__email")
    def owner_column(self, obj):
        # Email and uid in one column keeps the list readable on a laptop screen.
        owner = obj.owner
        return format_html('{}<br><small class="quiet">{}</small>', owner.email or "(no email)", owner.firebase_uid or "")

    @admin.display(description="owner Firebase uid", ordering="owner__firebase_uid")
    def owner_uid(self, obj):
        return obj.owner.firebase_uid

    @admin.display(description="scopes")
    def scope_list(self, obj):
        return scope_codes(obj)

    @admin.display(description="last used", ordering="last_used_at", empty_value="never")
    def last_used(self, obj):
        return obj.last_used_at

    @admin.display(ordering="revoked_at")
    def status(self, obj):
        return key_status(obj)

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_selected(self, request, queryset):
        selected = list(queryset.prefetch_related(None))
        revoked = sum(lifecycle.revoke_api_key(api_key) for api_key in selected)
        already = len(selected) - revoked
        if revoked:
            message = ngettext("Revoked %(count)d key.", "Revoked %(count)d keys.", revoked)
            self.message_user(request, message % {"count": revoked}, messages.SUCCESS)
        if already:
            message = ngettext(
                "%(count)d key was already revoked.", "%(count)d keys were already revoked.", already
            )
            self.message_user(request, message % {"count": already}, messages.WARNING)

    def add_view(self, request, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "show_save_and_add_another": False, "show_save_and_continue": False}
        try:
            return super().add_view(request, form_url, extra_context)
        except lifecycle.AlreadyIssued as already:
            message = "This key was already issued; its secret was shown once and cannot be shown again."
            self.message_user(request, message, messages.WARNING)
            return redirect("admin:apikeys_apikey_change", already.api_key.pk)
        except IssueRefused as refused:
            # The admin's transaction has rolled back; the second pass shows the
            # same form with the core's reason instead of a server error.
            request._apikeys_issue_refusal = refused.error
            return super().add_view(request, form_url, extra_context)

    def save_form(self, request, form, change):
        if change:
            return super().save_form(request, form, change)
        try:
            issued = lifecycle.issue_key(
                owner=form.cleaned_data["owner"],
                name=form.cleaned_data["name"],
                scopes=list(form.cleaned_data["scopes"]) or None,
                request_token=form.cleaned_data["form_token"] or None,
            )
        except ValidationError as error:
            raise IssueRefused(error) from error
        # The plaintext lives on this request only, until response_add shows it.
        request._apikeys_issued_key = issued
        return issued.api_key

    def save_model(self, request, obj, form, change):
        if change:  # an added key was saved by issue_key
            super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        if change:  # issue_key gave an added key its scopes
            super().save_related(request, form, formsets, change)

    def response_add(self, request, obj, post_url_continue=None):
        """Show the new key once, in this response: no redirect, so it never waits in the session or a cookie."""
        issued = request._apikeys_issued_key
        context = {
            **self.admin_site.each_context(request),
            "title": "API key issued",
            "opts": self.opts,
            "api_key": obj,
            "plaintext": issued.plaintext,
            "change_url": reverse("admin:apikeys_apikey_change", args=[obj.pk]),
            "add_url": reverse("admin:apikeys_apikey_add"),
            "changelist_url": reverse("admin:apikeys_apikey_changelist"),
        }
        response = TemplateResponse(request, "admin/apikeys/apikey/issued.html", context)
        add_never_cache_headers(response)
        return response


class ScopeAdminForm(forms.ModelForm):
    class Meta:
        model = Scope
        fields = ("code", "description", "is_default")

    def clean_code(self):
        code = self.cleaned_data["code"]
        # The admin shows a used code read-only; this keeps the rule wherever else the form is used.
        if self.instance.pk and code != self.instance.code and self.instance.api_keys.exists():
            raise ValidationError(
                "Keys use this scope, so its code cannot change; add a new scope instead.", code="scope_in_use"
            )
        return code


@admin.register(Scope)
class ScopeAdmin(admin.ModelAdmin):
    """Scopes are the API's vocabulary: a used code is fixed, and a used scope cannot be deleted."""

    form = ScopeAdminForm
    list_display = ("code", "description", "is_default", "active_key_count")
    list_filter = ("is_default",)
    search_fields = ("code", "description")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            active_key_count=Count("api_keys", filter=Q(api_keys__revoked_at__isnull=True))
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


class ApiKeyInline(admin.TabularInline):
    """The user's keys, read-only: changes happen on each key's own page."""

    model = ApiKey
    fk_name = "owner"
    fields = ("name", "key_prefix", "scope_list", "created_at", "last_used_at", "status")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).with_scopes()

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="scopes")
    def scope_list(self, obj):
        return scope_codes(obj)

    @admin.display
    def status(self, obj):
        return key_status(obj)


@admin.register(User)
class OmikeysUserAdmin(UserAdmin):
    list_display = ("username", "email", "firebase_uid", "is_staff", "is_active")
    search_fields = ("username", "email", "firebase_uid")
    fieldsets = (*UserAdmin.fieldsets, ("Firebase", {"fields": ("firebase_uid",)}))
    inlines = (ApiKeyInline,)

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else ()  # a user being added has no keys

    def get_readonly_fields(self, request, obj=None):
        readonly_fields = super().get_readonly_fields(request, obj)
        if obj is None:
            return readonly_fields
        # A uid set here would let a Firebase sign-in act as this account (a staff
        # account's admin rights included), or hand a user's keys to someone else.
        readonly_fields = (*readonly_fields, "firebase_uid")
        if obj.firebase_uid:
            # Firebase users never get staff rights, and their derived
            # "firebase:<uid>" username fails the form's username characters.
            readonly_fields = (*readonly_fields, "username", "is_staff", "is_superuser")
        return readonly_fields

    def get_deleted_objects(self, objs, request):
        deleted_objects, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        if protected:
            # Keys protect their owner; saying so beats "you lack permission to delete API keys".
            perms_needed = set()
        return deleted_objects, model_count, perms_needed, protected
