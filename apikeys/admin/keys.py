"""The admin of API keys: the list staff search, revoke, disable and enable from, and each key's page."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import ngettext

from .. import lifecycle
from ..models import KeyEvent
from ..templatetags.key_names import key_name
from .display import day_text, details_summary, events_url, key_status, moment_text, scope_codes
from .filters import KeyStatusFilter, ScopeFilter, touches_a_hash
from .forms import ApiKeyChangeForm
from .key_views import KeyViews, pause_message, staff_actor

# A key's page lists this many of its newest events; the event log has them all.
KEY_EVENTS_SHOWN = 20


class ChangeRefused(Exception):
    """lifecycle refused a change the form had accepted (say, the key was revoked meanwhile)."""


class ApiKeyAdmin(KeyViews, admin.ModelAdmin):
    """Keys are issued and rotated through lifecycle, renamed, rescoped or given an expiry here
    (all at once, through lifecycle.change_key), disabled and enabled, revoked but never deleted.

    The hashes (current and replaced secret) are in no field list, no search field
    and no allowed lookup, so no admin page can show them or be used to probe them.
    """

    # Fits a 1280 px screen beside the filters: the status of every key a "revoke
    # selected" is about to touch stays in view (see apikeys/admin/keys.css).
    list_display = ("key_column", "owner_column", "scope_list", "created", "expires", "status")
    list_filter = (KeyStatusFilter, ("scopes", ScopeFilter), ("created_at", admin.DateFieldListFilter))
    # An Omi document id is found whole: a key imported from Omi is looked up by the id Omi showed.
    search_fields = ("name", "key_prefix", "owner__email", "owner__firebase_uid", "=omi_document_id")
    autocomplete_fields = ("owner",)
    actions = ("revoke_selected", "disable_selected", "enable_selected")
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
        "disabled_at",
        "revoked_at",
    )
    editable_change_fields = frozenset({"name", "scopes", "expires_at"})
    # Fields the form declares itself: the model's are not editable, so the model form must not list them.
    form_only_fields = frozenset({"expires_at"})

    class Media:
        css = {"all": ("apikeys/admin/keys.css",)}

    def get_urls(self):
        # Before the defaults: "add/" replaces Django's add view, and "<path:object_id>/" would swallow "rotate/".
        replaced = {f"{self.opts.app_label}_{self.opts.model_name}_add"}
        return [*self.key_view_urls(), *(url for url in super().get_urls() if url.name not in replaced)]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner").with_scopes()

    def get_fields(self, request, obj=None):
        if obj is None:
            return self.add_fields
        fields = list(self.change_fields)
        if obj.is_revoked:
            fields[fields.index("expires_at")] = "expires"  # shown, not editable
        if obj.replaced_secret_works_until():
            fields.insert(fields.index("rotated") + 1, "previous_secret_until")
        if not obj.is_disabled:
            fields.remove("disabled_at")
        if obj.is_imported:
            fields.insert(fields.index("key_prefix") + 1, "omi_document_id")  # the key's id in Omi's records
        return fields

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return [field for field in self.get_fields(request, obj) if field not in self.editable_change_fields]

    def get_form(self, request, obj=None, change=False, **kwargs):
        # The change form only: keys are added by issue_view, with ApiKeyAddForm.
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

    @admin.display(description="key", ordering="name")
    def key_column(self, obj):
        # Name and display prefix in one column, as the owner's email and uid are.
        return format_html('{}<br><small class="quiet nowrap">{}</small>', key_name(obj.name), obj.key_prefix)

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

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        # Days only, the two in one column: the exact moments are on the key's page.
        return format_html(
            '<span class="nowrap">{}</span><br><small class="quiet nowrap">{}</small>',
            day_text(obj.created_at),
            "never used" if obj.last_used_at is None else f"used {day_text(obj.last_used_at)}",
        )

    @admin.display(description="expires", ordering="expires_at")
    def expires(self, obj):
        # nowrap, like the list's other date columns, which Django marks itself.
        return format_html('<span class="nowrap">{}</span>', moment_text(obj.expires_at))

    @admin.display(description="last rotated")
    def rotated(self, obj):
        return moment_text(obj.rotated_at)

    @admin.display(description="replaced secret works until")
    def previous_secret_until(self, obj):
        return moment_text(obj.replaced_secret_works_until())

    @admin.display(ordering="revoked_at")
    def status(self, obj):
        return key_status(obj)

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_selected(self, request, queryset):
        selected = list(queryset.prefetch_related(None))
        actor = staff_actor(request)
        revoked = 0
        # One transaction: its commit queues one notice mail per owner (apikeys.notices), not one per key.
        with transaction.atomic():
            for api_key in selected:
                if lifecycle.revoke_key(api_key, actor=actor):
                    revoked += 1
                    self.log_change(request, api_key, "Revoked the key.")
        already = len(selected) - revoked
        if revoked:
            message = ngettext("Revoked %(count)d key.", "Revoked %(count)d keys.", revoked)
            self.message_user(request, message % {"count": revoked}, messages.SUCCESS)
        if already:
            message = ngettext("%(count)d key was already revoked.", "%(count)d keys were already revoked.", already)
            self.message_user(request, message % {"count": already}, messages.WARNING)

    @admin.action(description="Disable selected keys", permissions=["change"])
    def disable_selected(self, request, queryset):
        self.pause_selected(request, queryset, disable=True)

    @admin.action(description="Enable selected keys", permissions=["change"])
    def enable_selected(self, request, queryset):
        self.pause_selected(request, queryset, disable=False)

    def pause_selected(self, request, queryset, *, disable: bool):
        """Disable or enable each selected key through lifecycle; say how many changed, and which were skipped."""
        pause = lifecycle.disable_key if disable else lifecycle.enable_key
        actor = staff_actor(request)
        changed = unchanged = revoked = 0
        # One transaction: its commit queues one notice mail per owner (apikeys.notices), not one per key.
        with transaction.atomic():
            for api_key in queryset.prefetch_related(None):
                if api_key.is_revoked:
                    revoked += 1
                    continue
                try:
                    done = pause(api_key, actor=actor)
                except lifecycle.KeyRevoked:  # revoked since the list was read
                    revoked += 1
                    continue
                if done:
                    changed += 1
                    self.log_change(request, api_key, pause_message(disable))
                else:
                    unchanged += 1
        if disable:
            done_message = ngettext("Disabled %(count)d key.", "Disabled %(count)d keys.", changed)
            same_message = ngettext(
                "%(count)d key was already disabled.", "%(count)d keys were already disabled.", unchanged
            )
        else:
            done_message = ngettext("Enabled %(count)d key.", "Enabled %(count)d keys.", changed)
            same_message = ngettext("%(count)d key was not disabled.", "%(count)d keys were not disabled.", unchanged)
        revoked_message = ngettext(
            "%(count)d key was skipped: it is revoked, and cannot change.",
            "%(count)d keys were skipped: they are revoked, and cannot change.",
            revoked,
        )
        for count, message, level in (
            (changed, done_message, messages.SUCCESS),
            (unchanged, same_message, messages.WARNING),
            (revoked, revoked_message, messages.WARNING),
        ):
            if count:
                self.message_user(request, message % {"count": count}, level)

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
            can_change = self.has_change_permission(request, obj)  # False for a revoked key
            can_rotate = obj.is_active and can_change
            pause_url = reverse(f"admin:apikeys_apikey_{'enable' if obj.is_disabled else 'disable'}", args=[obj.pk])
            context.update(
                show_key_events=can_see_events,
                key_events=events[:KEY_EVENTS_SHOWN],
                key_events_shown=KEY_EVENTS_SHOWN,
                more_key_events=len(events) > KEY_EVENTS_SHOWN,
                key_events_url=events_url(obj) if can_see_events else None,
                rotate_url=reverse("admin:apikeys_apikey_rotate", args=[obj.pk]) if can_rotate else None,
                # One of the two, for a key that can still change: pausing needs no active key.
                disable_url=pause_url if can_change and not obj.is_disabled else None,
                enable_url=pause_url if can_change and obj.is_disabled else None,
                # Usage holds addresses and user agents too: shown to the staff who may view the events.
                key_usage=lifecycle.key_usage(obj, days=30) if can_see_events else None,
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(self, request, obj, form, change):
        # Through lifecycle, never a model save: each change is audited, and a full save
        # would write back every column as loaded, undoing a revocation or rotation since.
        # One call, all or nothing: every part is checked before any is written.
        data = form.cleaned_data
        try:
            lifecycle.change_key(
                obj, name=data["name"], scopes=data["scopes"], expires_at=data["expires_at"], actor=staff_actor(request)
            )
        except (ValidationError, lifecycle.NotChangeable, lifecycle.TooManyKeys) as refused:
            message = " ".join(refused.messages) if isinstance(refused, ValidationError) else str(refused)
            raise ChangeRefused(message) from refused

    def save_related(self, request, form, formsets, change):
        pass  # change_key changes the scopes
