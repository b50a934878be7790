"""End-user pages: sign in with Firebase, list, create (shown once), view and revoke keys.

Each view parses input, calls ``lifecycle`` or ``firebase``, and renders a template.
"""

import logging
import secrets
import time
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .. import firebase, lifecycle
from ..models import ApiKey, User
from . import firebase_sdk
from .forms import KeyCreateForm, SignInForm

logger = logging.getLogger(__name__)

# A token older than this since its sign-in cannot open a session: it must come
# from the sign-in that just happened on our page, not from somewhere else.
MAX_SIGN_IN_AGE_SECONDS = 5 * 60
# How many unused create-form tokens a session keeps (one per open form tab).
MAX_FORM_TOKENS = 20
FORM_TOKENS_KEY = "web:key-form-tokens"
USED_FORM_TOKENS_KEY = "web:key-form-used"


def signed_in_required(view):
    """Like ``login_required``, for people signed in through Firebase (not staff-only accounts)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.user.is_authenticated and request.user.firebase_uid:
            return view(request, *args, **kwargs)
        return redirect_to_login(request.get_full_path())

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
        if request.user.is_authenticated and request.user.firebase_uid:
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
        return refuse(str(exc), 403)
    except firebase.AuthUnavailable as exc:
        return refuse(str(exc), 503)
    if time.time() - claims.get("auth_time", 0) > MAX_SIGN_IN_AGE_SECONDS:
        return refuse("That sign-in is too old to open a session. Please sign in again.", 403)
    user = User.objects.for_firebase(claims["uid"], claims.get("email"))
    if not user.is_active:
        return refuse("This account has been deactivated. Contact support if you think this is a mistake.", 403)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
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
    keys = ApiKey.objects.for_owner(request.user).active().with_scopes()
    return render(request, "apikeys/key_list.html", {"keys": keys})


def _new_form_token(request) -> str:
    token = secrets.token_urlsafe(24)
    tokens = request.session.get(FORM_TOKENS_KEY, [])[-(MAX_FORM_TOKENS - 1) :]
    request.session[FORM_TOKENS_KEY] = [*tokens, token]
    return token


def _render_form(request, form, status=200):
    return render(request, "apikeys/key_form.html", {"form": form}, status=status)


@require_http_methods(["GET", "POST"])
@signed_in_required
def key_create(request):
    """GET: the form. POST: issue the key and show it, once, in this very response.

    The plaintext goes straight from ``issue_key`` into the page: never into a
    redirect URL, the session or a message. The form's one-time token turns a
    re-sent POST (reload, back button) into a pointer to the key instead.
    """
    if request.method == "GET":
        return _render_form(request, KeyCreateForm(initial={"form_token": _new_form_token(request)}))

    token = request.POST.get("form_token", "")
    used = request.session.get(USED_FORM_TOKENS_KEY, {})
    if token in used:
        messages.info(request, "This key was already created. Its secret was shown once and cannot be shown again.")
        return redirect("web:key-detail", key_id=used[token])

    form = KeyCreateForm(request.POST)
    pending = request.session.get(FORM_TOKENS_KEY, [])
    if token not in pending:
        # Unknown token: the session changed (sign-out, expiry) since the form was shown.
        form = KeyCreateForm(request.POST.copy())
        form.data["form_token"] = _new_form_token(request)
        form.is_valid()
        form.add_error(None, "This form had expired. Check the details and create the key again.")
        return _render_form(request, form, status=400)
    if not form.is_valid():
        return _render_form(request, form, status=422)
    try:
        issued = lifecycle.issue_key(
            owner=request.user, name=form.cleaned_data["name"], scopes=list(form.cleaned_data["scopes"])
        )
    except ValidationError as exc:
        form.add_error("name", exc)
        return _render_form(request, form, status=422)

    request.session[FORM_TOKENS_KEY] = [t for t in pending if t != token]
    # Remember which key each used token made, so a re-sent form can point to it.
    recent = dict(list(used.items())[-(MAX_FORM_TOKENS - 1) :])
    request.session[USED_FORM_TOKENS_KEY] = {**recent, token: str(issued.api_key.pk)}
    return render(request, "apikeys/key_created.html", {"key": issued.api_key, "plaintext": issued.plaintext})


@require_GET
@signed_in_required
def key_detail(request, key_id):
    return render(request, "apikeys/key_detail.html", {"key": _own_key(request, key_id)})


@require_http_methods(["GET", "POST"])
@signed_in_required
def key_revoke(request, key_id):
    """GET: ask for confirmation. POST: revoke; the key stops working at once."""
    api_key = _own_key(request, key_id)
    if request.method == "GET":
        if not api_key.is_active:
            return redirect("web:key-detail", key_id=api_key.pk)
        return render(request, "apikeys/key_revoke.html", {"key": api_key})
    lifecycle.revoke_key(owner=request.user, key_id=api_key.pk)
    messages.success(request, f"Revoked “{api_key.name}” ({api_key.key_prefix}). It no longer works.")
    return redirect("web:key-list")


def csrf_failure(request, reason=""):
    """``CSRF_FAILURE_VIEW``: a page that says what happened and what to do, not Django's bare 403."""
    request.wants_csp = True
    return render(request, "apikeys/csrf_failure.html", status=403)
