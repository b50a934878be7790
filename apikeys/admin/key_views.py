"""The admin's own key pages: issuing a key and rotating one, each showing the new secret once."""

from django.contrib import messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext

from .. import lifecycle
from ..audit import Actor
from ..models import KeyEvent
from .forms import ApiKeyAddForm, DisableKeyForm, RotateKeyForm


def staff_actor(request) -> Actor:
    """The staff member making this request, for the audit record."""
    return Actor.from_request(request, via=KeyEvent.Via.ADMIN)


def rotation_message(grace_seconds: int) -> str:
    """The admin history's line for a rotation with this grace period (in seconds)."""
    if not grace_seconds:
        return "Rotated the key; the replaced secret stopped working at once."
    label = dict(RotateKeyForm.base_fields["grace_seconds"].choices)[grace_seconds].lower()
    return f"Rotated the key; the replaced secret stops working {label}."


def pause_message(disabled: bool, reason: str = "") -> str:
    """The admin history's line for a key disabled (with its ``reason``, if any) or enabled."""
    if not disabled:
        return "Enabled the key."
    return f"Disabled the key: {reason}" if reason else "Disabled the key."


class KeyViews:
    """The issue, rotate, disable and enable views of ApiKeyAdmin, in the shape of UserAdmin.user_change_password.

    Each is a plain view behind ``admin_site.admin_view``: a form, one call into
    lifecycle, and the plaintext rendered straight into the response to the POST
    (no redirect, so it never waits in the session or a cookie).
    """

    def key_view_urls(self) -> list:
        """The add URL (``admin:apikeys_apikey_add``, in place of Django's), and the rotate, disable and
        enable URLs (``admin:apikeys_apikey_rotate`` and so on)."""
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path("add/", view(self.issue_view), name=f"{prefix}_add"),
            path("<path:object_id>/rotate/", view(self.rotate_view), name=f"{prefix}_rotate"),
            path("<path:object_id>/disable/", view(self.disable_view), name=f"{prefix}_disable"),
            path("<path:object_id>/enable/", view(self.enable_view), name=f"{prefix}_enable"),
        ]

    def issue_view(self, request, form_url=""):
        """The add form; a valid POST issues the key through lifecycle.issue_key and shows it once."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            # Values in the query string fill the form, as on Django's own add pages (?owner=<pk>&name=...).
            initial = self.get_changeform_initial_data(request)
            return self.render_issue_form(request, ApiKeyAddForm(initial=initial, admin_site=self.admin_site), form_url)
        form = ApiKeyAddForm(request.POST, admin_site=self.admin_site)
        if not form.is_valid():
            return self.render_issue_form(request, form, form_url)
        data = form.cleaned_data
        try:
            with transaction.atomic():
                issued = lifecycle.issue_key(
                    owner=data["owner"],
                    name=data["name"],
                    scopes=list(data["scopes"]) or None,
                    expires_at=data["expires_at"],
                    request_token=data["form_token"] or None,
                    actor=staff_actor(request),
                )
                self.log_addition(request, issued.api_key, [{"added": {}}])
        except lifecycle.AlreadyIssued as already:
            message = "This key was already issued; its secret was shown once and cannot be shown again."
            self.message_user(request, message, messages.WARNING)
            return redirect("admin:apikeys_apikey_change", already.api_key.pk)
        except lifecycle.TooManyKeys as too_many:
            owner, limit = data["owner"], too_many.limit
            message = (
                f"{owner.label} already has {limit} active API key{'' if limit == 1 else 's'}, the most allowed. "
                "Revoke one of them first."
            )
            form.add_error("owner", ValidationError(message, code="too_many_keys"))
            return self.render_issue_form(request, form, form_url)
        except lifecycle.OwnerNotEligible as refused:  # deactivated since the form was checked
            form.add_error("owner", ValidationError(str(refused), code=refused.reason))
            return self.render_issue_form(request, form, form_url)
        except ValidationError as error:  # keyed by field: name, scopes or expires_at
            form.add_error(None, error)
            return self.render_issue_form(request, form, form_url)
        return self.show_secret_once(request, issued, title="API key issued")

    def render_issue_form(self, request, form: ApiKeyAddForm, form_url: str = ""):
        """The add form on the admin's change_form template, with its one "Save" button."""
        admin_form = helpers.AdminForm(form, list(self.get_fieldsets(request)), {}, model_admin=self)
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Add %s") % self.opts.verbose_name,
            "subtitle": None,
            "adminform": admin_form,
            "object_id": None,
            "original": None,
            "is_popup": False,
            "to_field": None,
            "media": self.media + admin_form.media,
            "inline_admin_formsets": [],
            "errors": helpers.AdminErrorList(form, []),
            "preserved_filters": self.get_preserved_filters(request),
            # The page that shows the key links to another add form and to the list.
            "show_save_and_add_another": False,
            "show_save_and_continue": False,
        }
        return self.render_change_form(request, context, add=True, form_url=form_url)

    def show_secret_once(self, request, issued: lifecycle.IssuedKey, *, title: str, rotated: bool = False):
        """The one page with the plaintext: never cached, linking to the key, a new add form and the list."""
        api_key = issued.api_key
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "api_key": api_key,
            "plaintext": issued.plaintext,
            "rotated": rotated,
            "previous_secret_until": api_key.replaced_secret_works_until() if rotated else None,
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

    def disable_view(self, request, object_id):
        """Confirm (with an optional reason), then pause the key through lifecycle.disable_key."""
        return self.pause_view(request, object_id, disable=True)

    def enable_view(self, request, object_id):
        """Confirm, then resume the key through lifecycle.enable_key."""
        return self.pause_view(request, object_id, disable=False)

    def pause_view(self, request, object_id, *, disable: bool):
        """The confirmation page of a disable or an enable, and its POST; back to the key's page after.

        Both are idempotent: a key already in the state asked for is left as it is, with a
        warning. A revoked key cannot change (an error message, nothing done).
        """
        if not self.has_change_permission(request):
            raise PermissionDenied
        api_key = self.get_object(request, unquote(object_id))
        if api_key is None:
            raise Http404("No API key with this id.")
        change_url = reverse("admin:apikeys_apikey_change", args=[api_key.pk])
        if api_key.is_revoked:
            self.message_user(request, "This key has been revoked; it cannot change.", messages.ERROR)
            return redirect(change_url)
        form = None
        if disable:
            form = DisableKeyForm(request.POST) if request.method == "POST" else DisableKeyForm()
        if request.method == "POST" and (form is None or form.is_valid()):
            reason = form.cleaned_data["reason"] if form is not None else ""
            try:
                with transaction.atomic():
                    if disable:
                        changed = lifecycle.disable_key(api_key, actor=staff_actor(request), reason=reason)
                    else:
                        changed = lifecycle.enable_key(api_key, actor=staff_actor(request))
                    if changed:
                        self.log_change(request, api_key, pause_message(disable, reason))
            except lifecycle.KeyRevoked as refused:  # revoked while the page was open
                self.message_user(request, str(refused), messages.ERROR)
                return redirect(change_url)
            if changed and disable:
                message = "The key is disabled: it does not verify until it is enabled again. Its secret is kept."
            elif changed:
                message = "The key is enabled: its secret verifies again." + (
                    "" if api_key.verifies else f" (It is {api_key.status}, so it still does not.)"
                )
            else:
                message = f"The key was already {'disabled' if disable else 'enabled'}; nothing changed."
            self.message_user(request, message, messages.SUCCESS if changed else messages.WARNING)
            return redirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": "Disable API key" if disable else "Enable API key",
            "opts": self.opts,
            "original": api_key,
            "form": form,
            "disable": disable,
            "change_url": change_url,
            "changelist_url": reverse("admin:apikeys_apikey_changelist"),
        }
        return TemplateResponse(request, "admin/apikeys/apikey/pause.html", context)
