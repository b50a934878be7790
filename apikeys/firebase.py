"""The single place firebase-admin is called: lazy app initialisation, ID-token checks, user lookups.

Everything else asks :func:`verify_id_token` and gets back either the token's
claims or one of two exceptions whose messages are safe to show a client:
:class:`TokenRejected` (the caller's fault: 401) or :class:`AuthUnavailable`
(Firebase or Google's certificates could not be reached: 503).

Staff tools look accounts up with :func:`get_user` and :func:`get_user_by_email`,
which raise :class:`UserNotFound` or :class:`AuthUnavailable`; importers look many up
at once with :func:`get_users`.
"""

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import firebase_admin
import google.auth.exceptions
import google.auth.jwt
from django.conf import settings
from firebase_admin import auth
from firebase_admin import exceptions as firebase_exceptions
from requests.adapters import HTTPAdapter
from urllib3.util import retry

from . import dependencies

logger = logging.getLogger(__name__)

APP_NAME = "omikeys"

_app: firebase_admin.App | None = None
_app_lock = threading.Lock()


class TokenRejected(Exception):
    """The token is not acceptable; the message says why without echoing it.

    ``reason`` is one of "invalid", "expired", "early" (issued ahead of our clock by
    more than the allowed skew), "revoked", "disabled", "deleted",
    for doors that word their own messages.
    """

    def __init__(self, message: str, reason: str = "invalid"):
        super().__init__(message)
        self.reason = reason


class AuthUnavailable(Exception):
    """Firebase could not be asked; the request may succeed if retried."""


def get_app() -> firebase_admin.App:
    """The Firebase app, initialised on first use rather than at import time.

    Every HTTP call it makes (token revocation checks, user lookups, Google's
    certificates) waits at most ``OMIKEYS_FIREBASE_TIMEOUT`` seconds for an answer
    (firebase-admin's ``httpTimeout``; a failed connect or read is retried once, an error
    status never: see :data:`RETRY`).

    Credentials come from GOOGLE_APPLICATION_CREDENTIALS (or the platform's
    default credentials); with FIREBASE_AUTH_EMULATOR_HOST set, firebase-admin
    talks to the local Auth Emulator and needs none.
    """
    global _app
    if _app is None:
        with _app_lock:
            if _app is None:
                options = {"projectId": settings.FIREBASE_PROJECT_ID, "httpTimeout": settings.OMIKEYS_FIREBASE_TIMEOUT}
                app = firebase_admin.initialize_app(options=options, name=APP_NAME)
                _bound_retries(app)
                _app = app
    return _app


# firebase-admin's own retries (_http_client.DEFAULT_RETRY_CONFIG) repeat a 500 or 503
# answer up to 4 times with backoff and wait out any Retry-After header: one call could
# take 20 s and more whatever OMIKEYS_FIREBASE_TIMEOUT says. Here a connect or read
# failure is retried once (as firebase-admin does), an error status never, and no
# Retry-After is waited on: a 500/503 reaches the caller at once, counts against the
# firebase breaker and answers 503 with our own Retry-After. A call then lasts at most
# about twice OMIKEYS_FIREBASE_TIMEOUT.
RETRY = retry.Retry(
    total=1, connect=1, read=1, status=0, other=0, redirect=0,
    allowed_methods=None, raise_on_status=False, respect_retry_after_header=False,
)  # fmt: skip


def _bound_retries(app: firebase_admin.App) -> None:
    """Mount :data:`RETRY` on the HTTP session of ``app``'s Auth client (user lookups,
    revocation checks). firebase-admin takes no retry option for it, so this reaches its
    client through ``auth._get_client``; tests/test_dependencies.py checks the bound
    against a server that answers 503 with Retry-After, so an upgrade that moves it fails there."""
    session = auth._get_client(app)._user_manager.http_client.session
    for prefix in ("http://", "https://"):
        session.mount(prefix, HTTPAdapter(max_retries=RETRY))


def reset_app() -> None:
    """Forget the Firebase app so the next call re-reads the environment (used by tests)."""
    global _app
    with _app_lock:
        if _app is not None:
            firebase_admin.delete_app(_app)
            _app = None


# What firebase-admin raises when Firebase did not answer: refused, reset, timed out, or
# an HTTP 5xx that survived its retries. Anything else is an answer (a user not found...).
TRANSPORT_FAILURES = (
    firebase_exceptions.UnavailableError,
    firebase_exceptions.DeadlineExceededError,
    firebase_exceptions.UnknownError,
    firebase_exceptions.InternalError,
    auth.CertificateFetchError,
    AuthUnavailable,  # what verify_id_token makes of a certificate fetch that failed
)


@contextmanager
def _unavailable_as_error():
    """Turn "Firebase could not be asked" into :class:`AuthUnavailable`.

    Callers turn the specific errors (expired token, unknown user, ...) into
    their own exceptions inside this block; any Firebase error left means no answer.
    Transport failures count against the ``firebase`` circuit breaker
    (:mod:`apikeys.dependencies`): once it opens, calls answer :class:`AuthUnavailable`
    at once, without waiting on Firebase, and the outage is logged once.
    """
    try:
        with dependencies.guarding(dependencies.FIREBASE, TRANSPORT_FAILURES):
            yield
    except dependencies.DependencyUnavailable as exc:
        raise AuthUnavailable("Firebase Auth is unavailable. Try again shortly.") from exc
    except firebase_exceptions.FirebaseError as exc:
        logger.warning("Firebase Auth could not be reached: %s", exc.__class__.__name__)
        raise AuthUnavailable("Firebase Auth is unavailable. Try again shortly.") from exc
    except google.auth.exceptions.GoogleAuthError as exc:
        # Missing or unusable service-account credentials: an operator problem.
        logger.error("Firebase Admin credentials are not usable: %s", exc.__class__.__name__)
        raise AuthUnavailable("Firebase Auth is unavailable. Try again shortly.") from exc


def verify_id_token(token: str) -> dict:
    """Verify a Firebase ID token, including revocation and disabled accounts.

    Returns the decoded claims (``uid``, ``email``, ``auth_time``, ...), each of the
    type :func:`check_claim_types` promises. A token issued up to
    ``FIREBASE_CLOCK_SKEW_SECONDS`` ahead of this server's clock (or expired that
    little ago) is accepted: firebase-admin's ``clock_skew_seconds``, 0 to 60.
    """
    # The claims are checked before firebase-admin sees them: it does arithmetic on
    # "iat" and "exp", which a string or null turns into a TypeError. Refusing a
    # token here, before its signature is checked, accepts nothing it would refuse.
    check_claim_types(_unverified_claims(token))
    with _unavailable_as_error():
        try:
            claims = auth.verify_id_token(
                token, app=get_app(), check_revoked=True, clock_skew_seconds=settings.FIREBASE_CLOCK_SKEW_SECONDS
            )
        except auth.ExpiredIdTokenError as exc:
            raise TokenRejected(
                "The Firebase ID token has expired. Get a fresh one from the Firebase client SDK.", "expired"
            ) from exc
        except auth.RevokedIdTokenError as exc:
            raise TokenRejected(
                "The Firebase session for this token has been revoked. Sign in again.", "revoked"
            ) from exc
        except auth.UserDisabledError as exc:
            raise TokenRejected("This Firebase account has been disabled.", "disabled") from exc
        except auth.UserNotFoundError as exc:
            raise TokenRejected("The Firebase account for this token no longer exists.", "deleted") from exc
        except auth.CertificateFetchError as exc:
            logger.warning("could not fetch Google's token certificates: %s", exc)
            raise AuthUnavailable("Firebase token verification is unavailable. Try again shortly.") from exc
        except auth.InvalidIdTokenError as exc:
            # google-auth's words for an "iat" ahead of the clock beyond the skew: "Token used too early".
            if "too early" in str(exc):
                raise TokenRejected(
                    "The Firebase ID token was issued in the future: check this device's clock.", "early"
                ) from exc
            raise TokenRejected("The bearer token is not a valid Firebase ID token for this project.") from exc
        except ValueError as exc:
            raise TokenRejected("The bearer token is not a valid Firebase ID token.") from exc
    return check_claim_types(claims)


# Firebase ID tokens are about 1 KB; custom claims add at most 1000 bytes
# (https://firebase.google.com/docs/auth/admin/custom-claims). Anything far larger is not one.
MAX_TOKEN_LENGTH = 8192


def _unverified_claims(token: str) -> dict:
    """The token's payload, read without checking its signature; a token that does not decode is refused.

    The token is untrusted input: one longer than :data:`MAX_TOKEN_LENGTH` characters is
    refused unread, and any failure to decode its segments (bad base64, bad UTF-8, bad
    JSON, JSON nested deeper than the parser's recursion limit, ...) is a
    :class:`TokenRejected`, never an unhandled error.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise TokenRejected("The bearer token is not a valid Firebase ID token.")
    try:
        payload = google.auth.jwt.decode(token, verify=False)
    except Exception as exc:  # untrusted bytes: every way decoding fails (RecursionError too) is a refusal
        raise TokenRejected("The bearer token is not a valid Firebase ID token.") from exc
    if not isinstance(payload, dict):
        raise TokenRejected("The bearer token is not a valid Firebase ID token.")
    return payload


# The last second of year 9999: any later time is no real token's, and would overflow datetime.
LATEST_SECONDS = 253402300799


def _is_seconds(value) -> bool:
    # JSON booleans arrive as bool, a subclass of int: true is not a time.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    # A comparison, not math.isfinite: that overflows on integers past a float's range.
    return 0 <= value <= LATEST_SECONDS  # NaN compares False, infinities are out of range


# The claims omikeys or firebase-admin read, and the type each must have. Firebase
# ID tokens always carry the required ones (https://firebase.google.com/docs/auth/admin/verify-id-tokens).
REQUIRED_CLAIMS = {"sub": "string", "iat": "time", "exp": "time", "auth_time": "time"}
OPTIONAL_CLAIMS = {"email": "string", "email_verified": "boolean", "firebase": "object", "user_id": "string"}
_TYPE_CHECKS = {
    "string": lambda value: isinstance(value, str),
    "time": _is_seconds,
    "boolean": lambda value: isinstance(value, bool),
    "object": lambda value: isinstance(value, dict),
}


def check_claim_types(claims: dict) -> dict:
    """Return ``claims`` if every claim omikeys reads has the right type, else raise :class:`TokenRejected`.

    Required: ``sub`` (a string of 1 to 128 characters, as firebase-admin requires),
    ``iat``, ``exp`` and ``auth_time`` (Unix times: numbers of seconds from 0 to the end of
    year 9999; not booleans, not strings, not infinite).
    Optional, but typed when present: ``email`` (string), ``email_verified`` (boolean),
    ``firebase`` (object), ``user_id`` (string). The message names the claim, never its value.
    """
    for name, kind in (*REQUIRED_CLAIMS.items(), *OPTIONAL_CLAIMS.items()):
        if name not in claims:
            if name in REQUIRED_CLAIMS:
                raise TokenRejected(f'The Firebase ID token has no "{name}" claim.')
            continue
        if not _TYPE_CHECKS[kind](claims[name]):
            article = "an" if kind[0] in "aeiou" else "a"
            described = "a time in seconds" if kind == "time" else f"{article} {kind}"
            raise TokenRejected(f'The Firebase ID token\'s "{name}" claim is not {described}.')
    if not 1 <= len(claims["sub"]) <= 128:
        raise TokenRejected('The Firebase ID token\'s "sub" claim must be 1 to 128 characters long.')
    return claims


class UserNotFound(Exception):
    """No Firebase account matches; the message names what was looked up."""


@dataclass(frozen=True)
class FirebaseUser:
    """The few facts about a Firebase account that omikeys needs to give it a key."""

    uid: str
    email: str | None
    disabled: bool
    # Whether Firebase has seen the holder prove they receive mail at ``email``.
    email_verified: bool = False
    # Sessions signed in before this moment (Unix seconds) were revoked; None if never.
    tokens_valid_after: float | None = None


def get_user(uid: str) -> FirebaseUser:
    """The Firebase account with this uid (for staff tools, and re-checking web sessions)."""
    return _lookup_user(auth.get_user, uid, f"uid {uid!r}")


def get_user_by_email(email: str) -> FirebaseUser:
    """The Firebase account with this email address; Firebase compares it case-insensitively."""
    return _lookup_user(auth.get_user_by_email, email, f"email {email!r}")


def _lookup_user(fetch, value: str, described: str) -> FirebaseUser:
    with _unavailable_as_error():
        try:
            record = fetch(value, app=get_app())
        except auth.UserNotFoundError as exc:
            raise UserNotFound(f"Firebase has no user with {described}.") from exc
        except ValueError as exc:
            # firebase-admin refuses malformed uids and emails before asking: no account can match.
            raise UserNotFound(f"Firebase has no user with {described}: {str(exc).rstrip('.')}.") from exc
    valid_after_ms = record.tokens_valid_after_timestamp
    return FirebaseUser(
        uid=record.uid,
        email=record.email,
        disabled=record.disabled,
        email_verified=bool(record.email_verified),
        tokens_valid_after=valid_after_ms / 1000 if valid_after_ms else None,
    )


# A uid no account has: asking for it shows that Firebase Auth answers, and with what credentials.
READINESS_PROBE_UID = "omikeys-readiness-probe"


def check_reachable() -> None:
    """Ask Firebase Auth for an account that does not exist; raises :class:`AuthUnavailable` if it cannot answer.

    The call is authenticated and bounded like every other (``OMIKEYS_FIREBASE_TIMEOUT``,
    the ``firebase`` breaker), so it checks the credentials and the network path that
    signing in and managing keys use.
    """
    try:
        get_user(READINESS_PROBE_UID)
    except UserNotFound:
        pass


# firebase-admin's auth.get_users takes at most 100 identifiers per call.
GET_USERS_BATCH = 100


def get_users(uids: list[str]) -> tuple[dict[str, FirebaseUser], set[str]]:
    """The Firebase accounts of up to :data:`GET_USERS_BATCH` uids, in one call: ``(found by uid, uids not found)``.

    Each uid must be a non-empty string of at most 128 characters (Firebase's rule;
    firebase-admin raises ``ValueError`` otherwise, as for more than 100 uids).
    Raises :class:`AuthUnavailable` when Firebase cannot be asked.
    """
    with _unavailable_as_error():
        result = auth.get_users([auth.UidIdentifier(uid) for uid in uids], app=get_app())
    found = {
        record.uid: FirebaseUser(
            uid=record.uid,
            email=record.email,
            disabled=record.disabled,
            tokens_valid_after=record.tokens_valid_after_timestamp / 1000
            if record.tokens_valid_after_timestamp
            else None,
        )
        for record in result.users
    }
    return found, {uid for uid in uids if uid not in found}
