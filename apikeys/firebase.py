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
from django.conf import settings
from firebase_admin import auth
from firebase_admin import exceptions as firebase_exceptions

logger = logging.getLogger(__name__)

APP_NAME = "omikeys"

_app: firebase_admin.App | None = None
_app_lock = threading.Lock()


class TokenRejected(Exception):
    """The token is not acceptable; the message says why without echoing it.

    ``reason`` is one of "invalid", "expired", "revoked", "disabled", "deleted",
    for doors that word their own messages.
    """

    def __init__(self, message: str, reason: str = "invalid"):
        super().__init__(message)
        self.reason = reason


class AuthUnavailable(Exception):
    """Firebase could not be asked; the request may succeed if retried."""


def get_app() -> firebase_admin.App:
    """The Firebase app, initialised on first use rather than at import time.

    Credentials come from GOOGLE_APPLICATION_CREDENTIALS (or the platform's
    default credentials); with FIREBASE_AUTH_EMULATOR_HOST set, firebase-admin
    talks to the local Auth Emulator and needs none.
    """
    global _app
    if _app is None:
        with _app_lock:
            if _app is None:
                _app = firebase_admin.initialize_app(options={"projectId": settings.FIREBASE_PROJECT_ID}, name=APP_NAME)
    return _app


def reset_app() -> None:
    """Forget the Firebase app so the next call re-reads the environment (used by tests)."""
    global _app
    with _app_lock:
        if _app is not None:
            firebase_admin.delete_app(_app)
            _app = None


@contextmanager
def _unavailable_as_error():
    """Turn "Firebase could not be asked" into :class:`AuthUnavailable`.

    Callers turn the specific errors (expired token, unknown user, ...) into
    their own exceptions inside this block; any Firebase error left means no answer.
    """
    try:
        yield
    except firebase_exceptions.FirebaseError as exc:
        logger.warning("Firebase Auth could not be reached: %s", exc.__class__.__name__)
        raise AuthUnavailable("Firebase Auth is unavailable. Try again shortly.") from exc
    except google.auth.exceptions.GoogleAuthError as exc:
        # Missing or unusable service-account credentials: an operator problem.
        logger.error("Firebase Admin credentials are not usable: %s", exc.__class__.__name__)
        raise AuthUnavailable("Firebase Auth is unavailable. Try again shortly.") from exc


def verify_id_token(token: str) -> dict:
    """Verify a Firebase ID token, including revocation and disabled accounts.

    Returns the decoded claims (``uid``, ``email``, ...).
    """
    with _unavailable_as_error():
        try:
            return auth.verify_id_token(token, app=get_app(), check_revoked=True)
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
            raise TokenRejected("The bearer token is not a valid Firebase ID token for this project.") from exc
        except ValueError as exc:
            raise TokenRejected("The bearer token is not a valid Firebase ID token.") from exc


class UserNotFound(Exception):
    """No Firebase account matches; the message names what was looked up."""


@dataclass(frozen=True)
class FirebaseUser:
    """The few facts about a Firebase account that omikeys needs to give it a key."""

    uid: str
    email: str | None
    disabled: bool
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
        tokens_valid_after=valid_after_ms / 1000 if valid_after_ms else None,
    )


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
