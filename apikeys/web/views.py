"""End-user pages: sign in with Firebase, list, create (shown once), view, rotate and revoke keys.

Each view parses input, calls ``lifecycle`` or ``firebase``, and renders a template.
"""

import logging
import time
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import csrf as django_csrf
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .. import firebase, lifecycle, limits
from ..audit import Actor
from ..models import ApiKey, KeyEvent, User
from . import firebase_sdk, history
from .forms import KeyCreateForm, KeyRotateForm, SignInForm

logger = logging.getLogger(__name__)

# A token older than this since its sign-in cannot open a session: it must come
# from the sign-in that just happened on our page, not from somewhere else.
MAX_SIGN_IN_AGE_SECONDS = 5 * 60
# How often a session asks Firebase whether its account is still allowed in
# (disabled, deleted, or "sign out everywhere"); creating a key always asks.
RECHECK_SECONDS = 5 * 60
AUTH_TIME_KEY = "web:auth-time"
CHECKED_AT_KEY = "web:checked-at"


# What the pages say for each reason Firebase gives (the API's wording talks about bearer tokens).
REFUSALS = {
    "invalid": "Your sign-in could not be verified. Please sign in again.",
    "expired": "Your sign-in expired before it reached us. Please sign in again.",
    "revoked": "Your sign-in was revoked. Please sign in again.",
    "disabled": "This account has been disabled. Contact support if you think this is a mistake.",
    "deleted": "This account no longer exists.",
}


class AccountUnconfirmed(Exception):
    """Firebase could not be asked whether the account is still allowed in."""


def account_problem(request, *, force: bool = False) -> str | None:
    """Why this session's Firebase account may no longer use the pages, or None.

    Between checks (and when Firebase cannot be reached on a routine check) the
    session stands; ``force`` asks now and raises :class:`AccountUnconfirmed`
    if Firebase does not answer.
    """
    now = time.time()
    if not force and now - request.session.get(CHECKED_AT_KEY, 0) < RECHECK_SECONDS:
        return None
    try:
        account = firebase.get_user(request.user.firebase_uid)
    except firebase.UserNotFound:
        return REFUSALS["deleted"]
    except firebase.AuthUnavailable as exc:
        if force:
            raise AccountUnconfirmed(str(exc)) from exc
        return None
    if account.disabled:
        return REFUSALS["disabled"]
    if account.tokens_valid_after and account.tokens_valid_after > request.session.get(AUTH_TIME_KEY, 0):
        return "Your sessions were ended from another device. Please sign in again."
    request.session[CHECKED_AT_KEY] = now
    return None


def _end_session(request, reason: str):
    logout(request)
    messages.warning(request, reason)
    return redirect_to_login(request.get_full_path())


def is_end_user(user) -> bool:
    """A person who signs in with Firebase. Staff accounts never use these pages, and
    a Firebase sign-in never opens a staff session (which would also open the admin)."""
    return user.is_authenticated and bool(user.firebase_uid) and not (user.is_staff or user.is_superuser)


def signed_in_required(view):
    """Like ``login_required``, for end users signed in through Firebase."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not is_end_user(request.user):
            return redirect_to_login(request.get_full_path())
        reason = account_problem(request)
        if reason:
            return _end_session(request, reason)
        return view(request, *args, **kwargs)

    return never_cache(wrapper)


def _own_key(request, key_id) -> ApiKey:
    try:
        return ApiKey.objects.for_owner(request.user).with_scopes().get(pk=key_id)
    except (ApiKey.DoesNotExist, ValidationError):
        raise Http404("No API key with this id.") from None


def _safe_next(request, candidate: str) -> str:
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse(settings.LOGIN_REDIRECT_URL)


def _sign_in_context(request, *, mode: str, next_url: str, error: str = "") -> dict:
    emulator_url = f"http://{settings.FIREBASE_AUTH_EMULATOR_HOST}" if settings.FIREBASE_AUTH_EMULATOR_HOST else ""
    return {
        "mode": mode,
        "next": next_url,
        "error": error,
        "configured": bool(settings.FIREBASE_WEB_API_KEY),
        "emulator": bool(settings.FIREBASE_AUTH_EMULATOR_HOST),
        "firebase_config": {
            "apiKey": settings.FIREBASE_WEB_API_KEY,
            "authDomain": settings.FIREBASE_AUTH_DOMAIN,
            "projectId": settings.FIREBASE_PROJECT_ID,
            "emulatorUrl": emulator_url,
        },
        "firebase_sdk_dir": firebase_sdk.STATIC_DIR,
        "firebase_cdn_app": f"{firebase_sdk.CDN_BASE}/firebase-app.js",
    }


@never_cache
@require_http_methods(["GET", "POST"])
def sign_in(request, mode="signin"):
    """GET: the sign-in (or create-account) page. POST: exchange a fresh Firebase ID token for a session."""
    if request.method == "GET":
        next_url = request.GET.get("next", "")
        if is_end_user(request.user):
            return redirect(_safe_next(request, next_url))
        return render(request, "apikeys/sign_in.html", _sign_in_context(request, mode=mode, next_url=next_url))

    form = SignInForm(request.POST)
    next_url = request.POST.get("next", "")[:2048]

    def refuse(error: str, status: int):
        context = _sign_in_context(request, mode=mode, next_url=next_url, error=error)
        return render(request, "apikeys/sign_in.html", context, status=status)

    if not form.is_valid():
        return refuse("Sign in with Firebase first.", 400)
    try:
        claims = firebase.verify_id_token(form.cleaned_data["id_token"])
    except firebase.TokenRejected as exc:
        return refuse(REFUSALS.get(exc.reason, REFUSALS["invalid"]), 403)
    except firebase.AuthUnavailable as exc:
        return refuse(str(exc), 503)
    if time.time() - claims.get("auth_time", 0) > MAX_SIGN_IN_AGE_SECONDS:
        return refuse("That sign-in is too old to open a session. Please sign in again.", 403)
    user = User.objects.for_firebase(claims["uid"], claims.get("email"))
    if not user.is_active:
        return refuse("This account has been deactivated. Contact support if you think this is a mistake.", 403)
    if user.is_staff or user.is_superuser:
        logger.warning("web sign-in refused for staff user=%s", user.pk)
        return refuse("Staff accounts cannot sign in here. Use the admin with your staff username and password.", 403)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    request.session[AUTH_TIME_KEY] = claims["auth_time"]
    request.session[CHECKED_AT_KEY] = time.time()
    logger.info("web sign-in user=%s", user.pk)
    return redirect(_safe_next(request, next_url))


@require_POST
def sign_out(request):
    """End the session on the server (the browser keeps no Firebase session of its own)."""
    logout(request)
    messages.info(request, "You have signed out.")
    return redirect("web:signin")


@require_GET
@signed_in_required
def key_list(request):
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
        reason = account_problem(request, force=True)
    except AccountUnconfirmed as exc:
        form.add_error(None, f"Your account could not be confirmed, so no key was created. {exc}")
        return _render_form(request, form, status=503)
    if reason:
        return _end_session(request, reason)
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
        )
    except lifecycle.AlreadyIssued as already:
        return _already_issued(request, already.api_key)
    except lifecycle.TooManyKeys as exc:
        form.add_error(None, str(exc))
        return _render_form(request, form, status=409)
    except ValidationError as exc:
        form.add_error("expires_in" if _is_expiry_error(exc) else "name", exc)
        return _render_form(request, form, status=422)
    return render(request, "apikeys/key_created.html", {"key": issued.api_key, "plaintext": issued.plaintext})


def _actor(request) -> Actor:
    return Actor.from_request(request, via=KeyEvent.Via.WEB)


def _is_expiry_error(exc: ValidationError) -> bool:
    return any(error.code in lifecycle.EXPIRY_ERROR_CODES for error in exc.error_list)


def _throttled(response: HttpResponse, wait: int) -> HttpResponse:
    response["Retry-After"] = str(wait)
    return response


def _already_issued(request, api_key: ApiKey):
    messages.info(request, "This key was already created. Its secret was shown once and cannot be shown again.")
    return redirect("web:key-detail", key_id=api_key.pk)


@require_GET
@signed_in_required
def key_detail(request, key_id):
    """The key's details, what can be done with it, and its history, newest first."""
    api_key = _own_key(request, key_id)
    events = list(api_key.events.order_by("-at", "-id")[: history.HISTORY_LENGTH + 1])
    context = {
        "key": api_key,
        "events": history.event_rows(events[: history.HISTORY_LENGTH], request.user),
        "more_events": len(events) > history.HISTORY_LENGTH,
        "history_length": history.HISTORY_LENGTH,
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
        reason = account_problem(request, force=True)
    except AccountUnconfirmed as exc:
        form.add_error(None, f"Your account could not be confirmed, so the key was not rotated. {exc}")
        return _render_rotate(request, api_key, form, status=503)
    if reason:
        return _end_session(request, reason)
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
    api_key = _own_key(request, key_id)
    if request.method == "GET":
        if api_key.is_revoked:
            return redirect("web:key-detail", key_id=api_key.pk)
        return render(request, "apikeys/key_revoke.html", {"key": api_key})
    lifecycle.revoke_api_key(api_key, actor=_actor(request))  # _own_key has checked the owner
    messages.success(request, f"Revoked “{api_key.name}” ({api_key.key_prefix}). It no longer works.")
    return redirect("web:key-list")


def csrf_failure(request, reason=""):
    """``CSRF_FAILURE_VIEW``: a page that says what happened and what to do, not Django's bare 403."""
    if request.path.startswith("/admin/"):
        return django_csrf.csrf_failure(request, reason)  # staff get Django's own explanation
    request.wants_csp = True
    return render(request, "apikeys/csrf_failure.html", status=403)
