"""Staff door: the Django admin for users, scopes, API keys and their audit events."""

import secrets
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import widgets
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.db.models.constants import LOOKUP_SEP
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html
from django.utils.translation import ngettext

from . import lifecycle
from .audit import Actor
from .models import ApiKey, KeyEvent, Scope, User

admin.site.site_header = "omikeys administration"
admin.site.site_title = "omikeys admin"
admin.site.index_title = "Keys, scopes and users"
# The key list is wide (owner, prefix, scopes, dates, status): give it the whole page.
admin.site.enable_nav_sidebar = False

# Secrets are stored as hashes only; no URL filter may touch them, on any model.
HASH_FIELDS = frozenset({"key_hash", "previous_key_hash"})
# A key's page lists this many of its newest events; the event log has them all.
KEY_EVENTS_SHOWN = 20


def staff_actor(request) -> Actor:
    return Actor.from_request(request, via=KeyEvent.Via.ADMIN)


def touches_a_hash(lookup: str) -> bool:
    return not HASH_FIELDS.isdisjoint(lookup.split(LOOKUP_SEP))


def scope_codes(api_key: ApiKey) -> str:
    # .all() rather than a new query, so the prefetch done by the callers is used.
    return ", ".join(scope.code for scope in api_key.scopes.all())


def key_status(api_key: ApiKey) -> str:
    return api_key.status.capitalize()


def moment_text(moment, empty: str = "never") -> str:
    """A moment as the admin shows dates: read-only display methods get no formatting, nor empty value, of their own."""
    return empty if moment is None else formats.localize(timezone.template_localtime(moment))


def details_summary(details: dict) -> str:
    """An event's details on one line: "grace seconds: 3600; previous key expires at: ..."."""
    parts = []
    for name, value in details.items():
        if isinstance(value, list):
            value = ", ".join(map(str, value)) or "none"
        parts.append(f"{name.replace('_', ' ')}: {'none' if value is None else value}")
    return "; ".join(parts)


def events_url(api_key: ApiKey) -> str:
    """The event list filtered to one key."""
    return f"{reverse('admin:apikeys_keyevent_changelist')}?{urlencode({'api_key__id__exact': api_key.pk})}"


class KeyStatusFilter(admin.SimpleListFilter):
    """Active, expired or revoked: the three values of ApiKey.status, decided in SQL."""

    title = "status"
    parameter_name = "status"
    # Each state narrows a queryset; "now" is read when the filter runs, not at import.
    STATES = {
        "active": ("Active", lambda keys: keys.active()),
        "expired": ("Expired", lambda keys: keys.unrevoked().filter(expires_at__lte=timezone.now())),
        "revoked": ("Revoked", lambda keys: keys.filter(revoked_at__isnull=False)),
    }

    def lookups(self, request, model_admin):
        return [(value, label) for value, (label, _) in self.STATES.items()]

    def queryset(self, request, queryset):
        state = self.STATES.get(self.value())
        return queryset if state is None else state[1](queryset)


class ExpiryField(forms.SplitDateTimeField):
    """When a key stops verifying; empty means never. The admin's date and time pickers."""

    def __init__(self, **kwargs):
        super().__init__(required=False, widget=widgets.AdminSplitDateTime, label="Expires", **kwargs)

    def describe_limits(self) -> None:
        # Read at form time, so the help follows the setting (and tests that change it).
        self.help_text = (
            f"Leave empty for a key that never expires. At most {settings.OMIKEYS_MAX_KEY_LIFETIME_DAYS} "
            f"days ahead; times are {timezone.get_current_timezone_name()}."
        )


class IssueRefused(Exception):
    """lifecycle.issue_key rejected a submission the form had accepted."""

    def __init__(self, field: str, error: ValidationError):
        super().__init__(error)
        self.field = field
        self.error = error


class ApiKeyAddForm(forms.ModelForm):
    """Owner, name, scopes and expiry of a key about to be issued by lifecycle.issue_key."""

    scopes = forms.ModelMultipleChoiceField(
        queryset=Scope.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    expires_at = ExpiryField()
    # Passed to issue_key as the request token: submitting this form twice (double
    # click, reload of the page that shows the key) never issues a second key.
    form_token = forms.RegexField(regex=r"^[A-Za-z0-9_-]{16,64}$", widget=forms.HiddenInput, required=False)
    # Set by ApiKeyAdmin.add_view when issue_key refused an earlier pass of this submission.
    refusal: IssueRefused | None = None

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
        self.fields["expires_at"].describe_limits()

    def clean_expires_at(self):
        expires_at = self.cleaned_data["expires_at"]
        lifecycle.validate_expiry(expires_at)  # the core's rules, shown beside the field
        return expires_at

    def clean(self):
        cleaned_data = super().clean()
        if self.refusal is not None:
            self.add_error(self.refusal.field, self.refusal.error)
        if not cleaned_data.get("scopes") and not lifecycle.default_scopes():
            self.add_error("scopes", "There is no read-only default at present: choose at least one scope.")
        return cleaned_data


class ApiKeyChangeForm(forms.ModelForm):
    """Name, scopes and expiry of an unrevoked key. The expiry is saved by lifecycle.set_expiry."""

    # A form field of its own: the model field is not editable, so form.save() never writes it.
    expires_at = ExpiryField()

    class Meta:
        model = ApiKey
        fields = ("name", "scopes")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expires_at"].describe_limits()
        current = self.instance.expires_at
        # The time widget shows whole seconds; an unchanged expiry must compare equal.
        self.initial["expires_at"] = current.replace(microsecond=0) if current else None

    def clean_expires_at(self):
        expires_at = self.cleaned_data["expires_at"]
        current = self.instance.expires_at
        if current is not None and expires_at == current.replace(microsecond=0):
            return current  # unchanged: keep the stored value, a past one included
        if expires_at != current:
            lifecycle.validate_expiry(expires_at)
        return expires_at


class ChangeRefused(Exception):
    """lifecycle refused a change the form had accepted (say, the key was revoked meanwhile)."""


class RotateKeyForm(forms.Form):
    """The confirmation before a key gets a new secret."""

    GRACE_CHOICES = [
        (0, "Immediately: the current secret stops working now"),
        (60 * 60, "In 1 hour"),
        (24 * 60 * 60, "In 24 hours"),
        (lifecycle.MAX_GRACE_SECONDS, "In 7 days"),
    ]

    grace_seconds = forms.TypedChoiceField(
        label="The current secret stops working",
        choices=GRACE_CHOICES,
        coerce=int,
        initial=0,
        widget=forms.RadioSelect,
        help_text="A grace period lets clients move to the new secret while the current one still works.",
    )
    # The display prefix the page showed: a form sent twice rotates once (lifecycle.AlreadyRotated).
    expected_prefix = forms.CharField(max_length=32, widget=forms.HiddenInput)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are issued and rotated through lifecycle, renamed, rescoped or given an expiry here,
    revoked but never deleted.

    The hashes (current and replaced secret) are in no field list, no search field
    and no allowed lookup, so no admin page can show them or be used to probe them.
    """

    list_display = (
        "name",
        "owner_column",
        "key_prefix",
        "scope_list",
        "created_at",
        "last_used",
        "expires",
        "status",
    )
    list_filter = (KeyStatusFilter, "scopes", ("created_at", admin.DateFieldListFilter))
    search_fields = ("name", "key_prefix", "owner__email", "owner__firebase_uid")
    autocomplete_fields = ("owner",)
    actions = ("revoke_selected",)
    add_fields = ("owner", "name", "scopes", "expires_at", "form_token")
    change_fields = (
        "name",
        "scopes",
        "expires_at",
        "owner",
        "owner_email",
        "owner_uid",
        "key_prefix",
        "created_at",
        "last_used_at",
        "rotated",
        "status",
        "revoked_at",
    )
    editable_change_fields = frozenset({"name", "scopes", "expires_at"})
    # Fields the form declares itself: the model's are not editable, so the model form must not list them.
    form_only_fields = frozenset({"expires_at"})

    def get_urls(self):
        opts = self.opts
        rotate = path(
            "<path:object_id>/rotate/",
            self.admin_site.admin_view(self.rotate_view),
            name=f"{opts.app_label}_{opts.model_name}_rotate",
        )
        # Before the defaults, whose "<path:object_id>/" would swallow it.
        return [rotate, *super().get_urls()]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner").with_scopes()

    def get_fields(self, request, obj=None):
        if obj is None:
            return self.add_fields
        fields = list(self.change_fields)
        if obj.is_revoked:
            fields[fields.index("expires_at")] = "expires"  # shown, not editable
        if obj.previous_secret_works():
            fields.insert(fields.index("rotated") + 1, "previous_secret_until")
        return fields

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return [field for field in self.get_fields(request, obj) if field not in self.editable_change_fields]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            attrs = {"refusal": getattr(request, "_apikeys_issue_refusal", None)}
            kwargs["form"] = type("ApiKeyAddForm", (ApiKeyAddForm,), attrs)
        else:
            kwargs["form"] = ApiKeyChangeForm
        fields = kwargs.pop("fields", None) or flatten_fieldsets(self.get_fieldsets(request, obj))
        kwargs["fields"] = [field for field in fields if field not in self.form_only_fields]
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
        if touches_a_hash(lookup):
            return False
        return super().lookup_allowed(lookup, value, request)

    def has_change_permission(self, request, obj=None):
        # An expired key can still be renamed, or given a later expiry; a revoked one is final.
        if obj is not None and obj.is_revoked:
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
        return format_html(
            '{}<br><small class="quiet">{}</small>', owner.email or "(no email)", owner.firebase_uid or ""
        )

    @admin.display(description="owner Firebase uid", ordering="owner__firebase_uid")
    def owner_uid(self, obj):
        return obj.owner.firebase_uid

    @admin.display(description="scopes")
    def scope_list(self, obj):
        return scope_codes(obj)

    @admin.display(description="last used", ordering="last_used_at", empty_value="never")
    def last_used(self, obj):
        return obj.last_used_at

    @admin.display(description="expires", ordering="expires_at")
    def expires(self, obj):
        # nowrap, like the list's other date columns, which Django marks itself.
        return format_html('<span class="nowrap">{}</span>', moment_text(obj.expires_at))

    @admin.display(description="last rotated")
    def rotated(self, obj):
        return moment_text(obj.rotated_at)

    @admin.display(description="replaced secret works until")
    def previous_secret_until(self, obj):
        return moment_text(obj.previous_key_expires_at)

    @admin.display(ordering="revoked_at")
    def status(self, obj):
        return key_status(obj)

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_selected(self, request, queryset):
        selected = list(queryset.prefetch_related(None))
        actor = staff_actor(request)
        revoked = 0
        for api_key in selected:
            if lifecycle.revoke_api_key(api_key, actor=actor):
                revoked += 1
                self.log_change(request, api_key, "Revoked the key.")
        already = len(selected) - revoked
        if revoked:
            message = ngettext("Revoked %(count)d key.", "Revoked %(count)d keys.", revoked)
            self.message_user(request, message % {"count": revoked}, messages.SUCCESS)
        if already:
            message = ngettext("%(count)d key was already revoked.", "%(count)d keys were already revoked.", already)
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
            request._apikeys_issue_refusal = refused
            return super().add_view(request, form_url, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        try:
            return super().change_view(request, object_id, form_url, extra_context)
        except ChangeRefused as refused:
            # The whole save has rolled back, the name and scopes included.
            self.message_user(request, f"Nothing was saved: {refused}", messages.ERROR)
            return redirect(request.path)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            can_see_events = self.admin_site.get_model_admin(KeyEvent).has_view_permission(request)
            # One query, however many events the key has; the full list is one link away.
            # Events carry addresses and user agents: only staff who may view the log see them.
            events = list(obj.events.order_by("-at", "-id")[: KEY_EVENTS_SHOWN + 1]) if can_see_events else []
            for event in events:
                event.details_summary = details_summary(event.details)
            can_rotate = obj.is_active and self.has_change_permission(request, obj)
            context.update(
                show_key_events=can_see_events,
                key_events=events[:KEY_EVENTS_SHOWN],
                key_events_shown=KEY_EVENTS_SHOWN,
                more_key_events=len(events) > KEY_EVENTS_SHOWN,
                key_events_url=events_url(obj) if can_see_events else None,
                rotate_url=reverse("admin:apikeys_apikey_rotate", args=[obj.pk]) if can_rotate else None,
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_form(self, request, form, change):
        if change:
            return super().save_form(request, form, change)
        owner = form.cleaned_data["owner"]
        try:
            issued = lifecycle.issue_key(
                owner=owner,
                name=form.cleaned_data["name"],
                scopes=list(form.cleaned_data["scopes"]) or None,
                expires_at=form.cleaned_data["expires_at"],
                request_token=form.cleaned_data["form_token"] or None,
                actor=staff_actor(request),
            )
        except lifecycle.TooManyKeys as too_many:
            message = (
                f"{owner.label} already has {too_many.limit} active API key{'' if too_many.limit == 1 else 's'}, "
                "the most allowed. "
                "Revoke one of them first."
            )
            raise IssueRefused("owner", ValidationError(message, code="too_many_keys")) from too_many
        except ValidationError as error:
            field = "expires_at" if getattr(error, "code", None) in lifecycle.EXPIRY_ERROR_CODES else "name"
            raise IssueRefused(field, error) from error
        # The plaintext lives on this request only, until response_add shows it.
        request._apikeys_issued_key = issued
        return issued.api_key

    def save_model(self, request, obj, form, change):
        if not change:
            return  # issue_key saved the added key
        # Through lifecycle, never a model save: each change is audited, and a full save
        # would write back every column as loaded, undoing a revocation or rotation since.
        actor = staff_actor(request)
        try:
            lifecycle.update_key(obj, name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"], actor=actor)
            lifecycle.set_expiry(obj, form.cleaned_data["expires_at"], actor=actor)
        except (ValidationError, lifecycle.NotChangeable, lifecycle.TooManyKeys) as refused:
            message = " ".join(refused.messages) if isinstance(refused, ValidationError) else str(refused)
            raise ChangeRefused(message) from refused

    def save_related(self, request, form, formsets, change):
        pass  # issue_key gave an added key its scopes; update_key changes them

    def response_add(self, request, obj, post_url_continue=None):
        """Show the new key once, in this response: no redirect, so it never waits in the session or a cookie."""
        return self.show_secret_once(request, request._apikeys_issued_key, title="API key issued")

    def show_secret_once(self, request, issued: lifecycle.IssuedKey, *, title: str, rotated: bool = False):
        api_key = issued.api_key
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "api_key": api_key,
            "plaintext": issued.plaintext,
            "rotated": rotated,
            "previous_secret_until": api_key.previous_key_expires_at if rotated else None,
            "change_url": reverse("admin:apikeys_apikey_change", args=[api_key.pk]),
            "add_url": reverse("admin:apikeys_apikey_add"),
            "changelist_url": reverse("admin:apikeys_apikey_changelist"),
        }
        response = TemplateResponse(request, "admin/apikeys/apikey/issued.html", context)
        add_never_cache_headers(response)
        return response

    def rotate_view(self, request, object_id):
        """Confirm, then give the key a new secret and show it once, in the response to the POST."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        api_key = self.get_object(request, unquote(object_id))
        if api_key is None:
            raise Http404("No API key with this id.")
        change_url = reverse("admin:apikeys_apikey_change", args=[api_key.pk])
        if request.method == "POST":
            form = RotateKeyForm(request.POST)
            if form.is_valid():
                grace_seconds = form.cleaned_data["grace_seconds"]
                try:
                    with transaction.atomic():
                        issued = lifecycle.rotate_key(
                            api_key,
                            grace_seconds=grace_seconds,
                            expected_prefix=form.cleaned_data["expected_prefix"],
                            actor=staff_actor(request),
                        )
                        self.log_change(request, api_key, rotation_message(grace_seconds))
                except lifecycle.AlreadyRotated:
                    message = "This key was already rotated; its new secret was shown once and cannot be shown again."
                    self.message_user(request, message, messages.WARNING)
                    return redirect(change_url)
                except lifecycle.NotChangeable as refused:
                    self.message_user(request, str(refused), messages.ERROR)
                    return redirect(change_url)
                return self.show_secret_once(request, issued, title="API key rotated", rotated=True)
        else:
            if not api_key.is_active:
                message = f"This key is {api_key.status}; only an active key can be rotated."
                self.message_user(request, message, messages.ERROR)
                return redirect(change_url)
            form = RotateKeyForm(initial={"expected_prefix": api_key.key_prefix})
        context = {
            **self.admin_site.each_context(request),
            "title": "Rotate API key",
            "opts": self.opts,
            "original": api_key,
            "form": form,
            "change_url": change_url,
            "changelist_url": reverse("admin:apikeys_apikey_changelist"),
        }
        return TemplateResponse(request, "admin/apikeys/apikey/rotate.html", context)


def rotation_message(grace_seconds: int) -> str:
    if not grace_seconds:
        return "Rotated the key; the replaced secret stopped working at once."
    label = dict(RotateKeyForm.GRACE_CHOICES)[grace_seconds].lower()
    return f"Rotated the key; the replaced secret stops working {label}."


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


class EventDateFilter(admin.DateFieldListFilter):
    """Filter by the event's time, titled "date" rather than the field's terse name."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = "date"


@admin.register(KeyEvent)
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
