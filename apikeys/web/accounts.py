"""Signing in and out of the web pages with Firebase, and keeping each session's account in good standing."""

import logging
import time
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from .. import firebase
from ..models import User
from . import firebase_sdk
from .forms import SignInForm

logger = logging.getLogger(__name__)

# A token older than this since its sign-in cannot open a session: it must come
# from the sign-in that just happened on our page, not from somewhere else.
MAX_SIGN_IN_AGE_SECONDS = 5 * 60
# How often a session asks Firebase whether its account is still allowed in
# (disabled, deleted, or "sign out everywhere"); creating a key always asks.
RECHECK_SECONDS = 5 * 60
# The ``iat`` of the ID token that opened the session. Firebase's own revocation rule
# (firebase-admin's ``verify_id_token(check_revoked=True)``) compares it, not ``auth_time``,
# with the account's ``validSince``: a password change issues a fresh token whose
# ``auth_time`` is still the earlier sign-in's.
TOKEN_ISSUED_AT_KEY = "web:token-iat"
# Sessions opened by earlier versions hold only the sign-in's ``auth_time``; it is still
# written, so that a server of an earlier version sharing the sessions (a rolling deploy,
# a rollback) does not end them. Both can go once no such server runs and no session
# older than the version that added TOKEN_ISSUED_AT_KEY is left (SESSION_COOKIE_AGE).
AUTH_TIME_KEY = "web:auth-time"
CHECKED_AT_KEY = "web:checked-at"


# What the pages say for each reason Firebase gives (the API's wording talks about bearer tokens).
REFUSALS = {
    "invalid": "Your sign-in could not be verified. Please sign in again.",
    "expired": "Your sign-in expired before it reached us. Please sign in again.",
    "early": "Your sign-in could not be verified: this device's clock seems to be ahead. Check it and sign in again.",
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
    if not force and time.time() - request.session.get(CHECKED_AT_KEY, 0) < RECHECK_SECONDS:
        return None
    try:
        account_in_good_standing(request)
    except AccountEnded as ended:
        return ended.reason
    except AccountUnconfirmed:
        if force:
            raise
    return None


class AccountEnded(Exception):
    """The session's Firebase account was deleted, disabled or signed out everywhere; ``reason`` says which."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def account_in_good_standing(request) -> firebase.FirebaseUser:
    """Ask Firebase now about the session's account, and return it if the session may go on.

    Raises :class:`AccountEnded` (deleted, disabled, or its sessions ended from another
    device) or :class:`AccountUnconfirmed` (Firebase did not answer). The account
    returned is what a door passes to ``lifecycle.issue_key`` as ``firebase_account``.
    """
    try:
        account = firebase.get_user(request.user.firebase_uid)
    except firebase.UserNotFound:
        raise AccountEnded(REFUSALS["deleted"]) from None
    except firebase.AuthUnavailable as exc:
        raise AccountUnconfirmed(str(exc)) from exc
    # Whether the person may stay signed in; whether they may get a key is the core's
    # decision, made with this same account when a key is issued.
    if account.disabled:
        raise AccountEnded(REFUSALS["disabled"])
    issued_at = request.session.get(TOKEN_ISSUED_AT_KEY, request.session.get(AUTH_TIME_KEY, 0))
    if account.tokens_valid_after and account.tokens_valid_after > issued_at:
        raise AccountEnded(
            "Your sessions were ended: the password was changed or the account was signed out everywhere. "
            "Please sign in again."
        )
    request.session[CHECKED_AT_KEY] = time.time()
    return account


def end_session(request, reason: str):
    """Sign the visitor out, say why, and send them to the sign-in page."""
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
            return end_session(request, reason)
        return view(request, *args, **kwargs)

    return never_cache(wrapper)


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
    request.session[TOKEN_ISSUED_AT_KEY] = claims["iat"]
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
