"""End-user pages for keys: list, create (shown once), view, edit, rotate, disable and enable, revoke;
and the notification settings.

Each view parses input, calls ``lifecycle``, and renders a template; signing in and
the session's account checks are in ``accounts``.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, HttpResponsePermanentRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views import csrf as django_csrf
from django.views.decorators.http import require_GET, require_http_methods

from .. import lifecycle, limits
from ..audit import Actor
from ..models import ApiKey, KeyEvent, NotificationSettings
from . import accounts, history
from .accounts import AccountEnded, AccountUnconfirmed, account_in_good_standing, signed_in_required
from .forms import KeyCreateForm, KeyEditForm, KeyRotateForm, NotificationSettingsForm

# The create form's field for each field the core names in a ValidationError.
FORM_FIELDS = {"expires_at": "expires_in"}


def _own_key(request, key_id) -> ApiKey:
    try:
        return ApiKey.objects.for_owner(request.user).with_scopes().get(pk=key_id)
    except (ApiKey.DoesNotExist, ValidationError):
        raise Http404("No API key with this id.") from None


def _canonical(request, key_id) -> HttpResponse | None:
    """For a GET of a key page whose URL spells the id otherwise (uppercase, no hyphens), a redirect to
    the lowercase URL the pages link to; else None. A POST is served as sent."""
    if request.method != "GET":
        return None
    canonical = reverse(request.resolver_match.view_name, kwargs={"key_id": key_id})
    if request.path == canonical:
        return None
    query = request.META.get("QUERY_STRING")
    return HttpResponsePermanentRedirect(f"{canonical}?{query}" if query else canonical)


@require_GET
@signed_in_required
def key_list(request):
    """The signed-in user's keys that are not revoked, newest first."""
    # Expired keys stay listed (marked so) until revoked, so their owner sees why a client fails.
    keys = ApiKey.objects.for_owner(request.user).unrevoked().with_scopes()
    return render(request, "apikeys/key_list.html", {"keys": keys})


def _render_form(request, form, status=200):
    return render(request, "apikeys/key_form.html", {"form": form}, status=status)


@require_http_methods(["GET", "POST"])
@signed_in_required
def key_create(request):
    """GET: the form. POST: issue the key and show it, once, in this very response.

    The plaintext goes straight from ``issue_key`` into the page: never into a
    redirect URL, the session or a message. The form's one-time token is the
    key's request token, so a form sent again (reload, back button, double
    click) leads to the key it created instead of issuing another.
    """
    if request.method == "GET":
        return _render_form(request, KeyCreateForm())

    form = KeyCreateForm(request.POST)
    if not form.is_valid():
        return _render_form(request, form.with_fresh_token(), status=422)
    try:
        account = account_in_good_standing(request)
    except AccountUnconfirmed as exc:
        form.add_error(None, f"Your account could not be confirmed, so no key was created. {exc}")
        return _render_form(request, form, status=503)
    except AccountEnded as ended:
        return accounts.end_session(request, ended.reason)
    earlier = ApiKey.objects.for_owner(request.user).filter(request_token=form.cleaned_data["form_token"]).first()
    if earlier is not None:
        # Sent again (reload, back button): lead to its key without counting against the rate.
        return _already_issued(request, earlier)
    refusal = limits.count_key_issued(request.user)
    if refusal:
        form.add_error(None, refusal.message)
        return _throttled(_render_form(request, form, status=429), refusal.wait)
    try:
        issued = lifecycle.issue_key(
            owner=request.user,
            name=form.cleaned_data["name"],
            scopes=list(form.cleaned_data["scopes"]),
            expires_at=form.expires_at(),
            request_token=form.cleaned_data["form_token"],
            actor=_actor(request),
            firebase_account=account,
        )
    except lifecycle.AlreadyIssued as already:
        return _already_issued(request, already.api_key)
    except lifecycle.OwnerNotEligible as exc:  # deactivated while this request ran
        return accounts.end_session(request, str(exc))
    except lifecycle.TooManyKeys as exc:
        form.add_error(None, str(exc))
        return _render_form(request, form, status=409)
    except ValidationError as exc:  # keyed by the core's field names
        for field, errors in exc.error_dict.items():
            form.add_error(FORM_FIELDS.get(field, field), errors)
        return _render_form(request, form, status=422)
    return render(request, "apikeys/key_created.html", {"key": issued.api_key, "plaintext": issued.plaintext})


def _actor(request) -> Actor:
    return Actor.from_request(request, via=KeyEvent.Via.WEB)


def _throttled(response: HttpResponse, wait: int) -> HttpResponse:
    response["Retry-After"] = str(wait)
    return response


def _already_issued(request, api_key: ApiKey):
    messages.info(request, "This key was already created. Its secret was shown once and cannot be shown again.")
    return redirect("web:key-detail", key_id=api_key.pk)


@require_GET
@signed_in_required
def key_detail(request, key_id):
    """The key's details, what can be done with it, its usage over 30 days, and its history, newest first.

    A key disabled by Omi staff (``lifecycle.staff_hold``) is shown as such, with their reason, and
    without the Enable button: only staff can enable it; its owner may still edit, rotate or revoke it.
    A key reported found in public (a "leaked" event among the last ``history.HISTORY_LENGTH``) says so at
    the top: where and when, and what was done (revoked, or only reported: then what to do now).
    """
    if redirect_to := _canonical(request, key_id):
        return redirect_to
    api_key = _own_key(request, key_id)
    events = list(api_key.events.order_by("-at", "-id")[: history.HISTORY_LENGTH + 1])
    hold = lifecycle.staff_hold(api_key)  # disabled by staff: the page says so and offers no Enable button
    # The latest report of the key found in public, from the history already read (no query of its own).
    leak = next((event for event in events if event.action == KeyEvent.Action.LEAKED), None)
    context = {
        "key": api_key,
        "hold": hold,
        "leak": leak,
        "hold_reason": hold.details.get("reason", "") if hold is not None else "",
        "events": history.event_rows(events[: history.HISTORY_LENGTH], request.user),
        "more_events": len(events) > history.HISTORY_LENGTH,
        "history_length": history.HISTORY_LENGTH,
        "usage": lifecycle.key_usage(api_key, days=30),
    }
    return render(request, "apikeys/key_detail.html", context)


def _not_rotatable_reason(api_key: ApiKey) -> str:
    if api_key.is_revoked:
        return "This key has been revoked, so it cannot be rotated. Create a new key instead."
    return "This key has expired, so it cannot be rotated. Create a new key instead, then revoke this one."


def _render_rotate(request, api_key, form, status=200):
    return render(request, "apikeys/key_rotate.html", {"key": api_key, "form": form}, status=status)


@require_http_methods(["GET", "POST"])
@signed_in_required
def key_rotate(request, key_id):
    """GET: choose how long the old secret keeps working. POST: rotate, and show the new secret once.

    Like creation, the new secret goes from ``rotate_key`` straight into this
    response. The form carries the display prefix the page showed, so the same
    form sent again (reload, double click) rotates nothing and leads to the key.
    """
    if redirect_to := _canonical(request, key_id):
        return redirect_to
    api_key = _own_key(request, key_id)
    if request.method == "GET":
        if not api_key.is_active:
            messages.error(request, _not_rotatable_reason(api_key))
            return redirect("web:key-detail", key_id=api_key.pk)
        return _render_rotate(request, api_key, KeyRotateForm(initial={"expected_prefix": api_key.key_prefix}))

    form = KeyRotateForm(request.POST)
    sent_prefix = request.POST.get("expected_prefix")
    if sent_prefix and sent_prefix != api_key.key_prefix:
        # Sent again: the rotation this form asked for has happened. Not counted against the rate.
        return _already_rotated(request, api_key)
    if not form.is_valid():
        form.data = form.data.copy()
        form.data["expected_prefix"] = api_key.key_prefix  # what this page shows now
        return _render_rotate(request, api_key, form, status=422)
    if not api_key.is_active:
        messages.error(request, _not_rotatable_reason(api_key))
        return redirect("web:key-detail", key_id=api_key.pk)
    try:
        account_in_good_standing(request)
    except AccountUnconfirmed as exc:
        form.add_error(None, f"Your account could not be confirmed, so the key was not rotated. {exc}")
        return _render_rotate(request, api_key, form, status=503)
    except AccountEnded as ended:
        return accounts.end_session(request, ended.reason)
    refusal = limits.count_key_issued(request.user)
    if refusal:
        form.add_error(None, refusal.message)
        return _throttled(_render_rotate(request, api_key, form, status=429), refusal.wait)
    try:
        issued = lifecycle.rotate_key(
            api_key,
            grace_seconds=form.cleaned_data["grace_seconds"],
            expected_prefix=form.cleaned_data["expected_prefix"],
            actor=_actor(request),
        )
    except lifecycle.AlreadyRotated:
        return _already_rotated(request, api_key)
    except lifecycle.NotChangeable as exc:
        messages.error(request, str(exc))
        return redirect("web:key-detail", key_id=api_key.pk)
    context = {"key": issued.api_key, "plaintext": issued.plaintext, "rotated": True}
    return render(request, "apikeys/key_created.html", context)


def _already_rotated(request, api_key):
    messages.info(
        request,
        "This key was already rotated. The new key was shown when it was rotated and cannot be shown again. "
        "If you did not copy it, rotate the key again.",
    )
    return redirect("web:key-detail", key_id=api_key.pk)


@require_http_methods(["GET", "POST"])
@signed_in_required
def key_revoke(request, key_id):
    """GET: ask for confirmation. POST: revoke; the key stops working at once. Expired keys can be revoked too."""
    if redirect_to := _canonical(request, key_id):
        return redirect_to
    api_key = _own_key(request, key_id)
    if request.method == "GET":
        if api_key.is_revoked:
            return redirect("web:key-detail", key_id=api_key.pk)
        return render(request, "apikeys/key_revoke.html", {"key": api_key})
    lifecycle.revoke_key(api_key, actor=_actor(request))  # _own_key has checked the owner
    messages.success(request, f"Revoked “{api_key.name}” ({api_key.key_prefix}). It no longer works.")
    return redirect("web:key-list")


def _render_edit(request, api_key, form, status=200):
    return render(request, "apikeys/key_edit.html", {"key": api_key, "form": form}, status=status)


# What each audited change of lifecycle.change_key is called in the message after an edit, in this order.
CHANGED_PARTS = {
    KeyEvent.Action.RENAMED: "name",
    KeyEvent.Action.SCOPES_CHANGED: "scopes",
    KeyEvent.Action.EXPIRY_CHANGED: "expiry",
}


def edit_outcome(api_key: ApiKey, recorded: list[str]) -> str:
    """The message after an edit: which parts changed ("Name, scopes changed."), or "Nothing changed."."""
    parts = [part for action, part in CHANGED_PARTS.items() if action in recorded]
    if not parts:
        return "Nothing changed."
    message = ", ".join(parts).capitalize() + " changed."
    if KeyEvent.Action.EXPIRY_CHANGED in recorded:
        if api_key.expires_at is None:
            message += " The key never expires."
        else:
            message += f" The key expires on {timezone.localtime(api_key.expires_at):%-d %b %Y, %H:%M} UTC."
    return message + " Its secret stays the same: nothing to update in your apps."


@require_http_methods(["GET", "POST"])
@signed_in_required
def key_edit(request, key_id):
    """GET: the key's name, scopes and expiry in a form. POST: change them in place, all or nothing.

    The secret stays the same. ``lifecycle.change_key`` checks every part before
    writing any: its refusals appear beside their fields together (422), the active-key
    limit (an expired key given a later expiry) above the form (409). A revoked key
    cannot change: the page says so, with no form (409). Sending the form again is
    harmless: it sets the same values.
    """
    if redirect_to := _canonical(request, key_id):
        return redirect_to
    api_key = _own_key(request, key_id)
    if api_key.is_revoked:
        return _render_edit(request, api_key, None, status=409)
    if request.method == "GET":
        return _render_edit(request, api_key, KeyEditForm(api_key=api_key))

    form = KeyEditForm(request.POST, api_key=api_key)
    if not form.is_valid():
        return _render_edit(request, api_key, form, status=422)
    try:
        recorded = lifecycle.change_key(
            api_key,
            name=form.changed_name(),
            scopes=form.changed_scopes(),
            expires_at=form.expires_at(),
            actor=_actor(request),
        )
    except lifecycle.KeyRevoked:  # revoked while the form was open
        api_key.refresh_from_db(fields=["revoked_at"])
        return _render_edit(request, api_key, None, status=409)
    except lifecycle.TooManyKeys as exc:
        form.add_error(None, str(exc))
        form.add_error(
            None,
            "Nothing was changed: this key has expired, and a later expiry would make it work again, "
            "so it needs a place among your active keys.",
        )
        return _render_edit(request, api_key, form, status=409)
    except ValidationError as exc:  # keyed by the core's field names
        for field, errors in exc.error_dict.items():
            form.add_error(FORM_FIELDS.get(field, field), errors)
        return _render_edit(request, api_key, form, status=422)
    messages.success(request, edit_outcome(api_key, recorded))
    return redirect("web:key-detail", key_id=api_key.pk)


@require_http_methods(["GET", "POST"])
@signed_in_required
def key_disable(request, key_id):
    """POST: pause the key; it stops working at once and keeps its secret. A GET changes nothing and
    leads to the key's page (where the button is)."""
    api_key = _own_key(request, key_id)
    if request.method == "POST":
        try:
            disabled = lifecycle.disable_key(api_key, actor=_actor(request))
        except lifecycle.KeyRevoked:
            messages.error(request, "This key has been revoked, so it cannot be disabled. It no longer works.")
        else:
            if disabled:
                messages.success(
                    request,
                    f"Disabled “{api_key.name}” ({api_key.key_prefix}). It no longer works; enable it again any time.",
                )
            else:
                messages.info(request, "This key was already disabled.")
    return redirect("web:key-detail", key_id=api_key.pk)


@require_http_methods(["GET", "POST"])
@signed_in_required
def key_enable(request, key_id):
    """POST: resume a disabled key; it works again with the same secret, unless it has expired or been
    revoked meanwhile. A key disabled by Omi staff stays disabled (``lifecycle.DisabledByStaff``: an
    error message says only they can enable it). A GET changes nothing and leads to the key's page."""
    api_key = _own_key(request, key_id)
    if request.method == "POST":
        try:
            enabled = lifecycle.enable_key(api_key, actor=_actor(request))
        except lifecycle.KeyRevoked:
            messages.error(request, "This key has been revoked, so it cannot be enabled. Create a new key instead.")
        except lifecycle.DisabledByStaff as held:  # the page offers no button; a form sent anyway lands here
            messages.error(request, str(held))
        else:
            if not enabled:
                messages.info(request, "This key was not disabled.")
            elif api_key.is_expired():
                messages.warning(
                    request,
                    f"Enabled “{api_key.name}” ({api_key.key_prefix}), but it has expired, so it still does not "
                    "work. Edit its expiry to use it again.",
                )
            else:
                messages.success(request, f"Enabled “{api_key.name}” ({api_key.key_prefix}). It works again.")
    return redirect("web:key-detail", key_id=api_key.pk)


@require_http_methods(["GET", "POST"])
@signed_in_required
def notification_settings(request):
    """GET: which email notices the user wants, and where they go. POST: save the choice.

    These are the user's settings, not a key's, so the form saves its row itself. The
    notice that a key was created on the account is always sent: no input turns it off.
    """
    current = NotificationSettings.for_user(request.user)
    if request.method == "POST":
        form = NotificationSettingsForm(request.POST, instance=current)
        if form.is_valid():
            # update_or_create, not form.save(): two first saves racing each other both end with one row.
            NotificationSettings.objects.update_or_create(user=request.user, defaults=form.cleaned_data)
            messages.success(request, "Notification settings saved.")
            return redirect("web:notification-settings")
        status = 422
    else:
        form = NotificationSettingsForm(instance=current)
        status = 200
    context = {"form": form, "email": request.user.email}
    return render(request, "apikeys/notification_settings.html", context, status=status)


def csrf_failure(request, reason=""):
    """``CSRF_FAILURE_VIEW``: a page that says what happened and what to do, not Django's bare 403."""
    if request.path.startswith("/admin/"):
        return django_csrf.csrf_failure(request, reason)  # staff get Django's own explanation
    request.wants_csp = True
    return render(request, "apikeys/csrf_failure.html", status=403)
