"""The two credentials: Firebase ID tokens (managing keys) and API keys (using them)."""

import re

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from .. import crypto, firebase, lifecycle, limits
from ..audit import client_ip
from ..models import User
from .exceptions import ServiceUnavailable, TooManyRequests

MAX_TOKEN_LENGTH = 8192  # Firebase ID tokens are about 1 KB; anything far larger is not one.
# A JSON Web Token: three base64url parts separated by dots (Firebase ID tokens are JWTs).
JWT_RE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


class FirebaseAuthentication(BaseAuthentication):
    """``Authorization: Bearer <Firebase ID token>``.

    Returns ``None`` for a missing header or another scheme, so DRF answers
    401 "not authenticated" (or lets another class try); an unacceptable
    Bearer token fails at once. The token itself never appears in a message.
    """

    keyword = "Bearer"
    missing_credentials_message = "Authentication required. Send 'Authorization: Bearer <Firebase ID token>'."

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header. Use 'Authorization: Bearer <Firebase ID token>'."
            )
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The bearer token is not a valid Firebase ID token.") from None
        if token.startswith("omi_"):
            raise exceptions.AuthenticationFailed(
                "This endpoint needs a Firebase ID token, not an API key. API keys cannot create, list or revoke keys."
            )
        if len(token) > MAX_TOKEN_LENGTH:
            raise exceptions.AuthenticationFailed("The bearer token is not a valid Firebase ID token.")
        try:
            claims = firebase.verify_id_token(token)
        except firebase.TokenRejected as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        except firebase.AuthUnavailable as exc:
            raise ServiceUnavailable(str(exc)) from exc
        user = User.objects.for_firebase(claims["uid"], claims.get("email"))
        if not user.is_active:
            raise exceptions.AuthenticationFailed("This account has been deactivated by an administrator.")
        return user, claims

    def authenticate_header(self, request):
        return f'{self.keyword} realm="omikeys"'


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer omi_dev_...``: the key of a Developer API client.

    On success ``request.user`` is the key's owner and ``request.auth`` the
    :class:`~apikeys.models.ApiKey`, with its scope codes in ``request.auth.scope_codes``.
    Verification is one indexed read (:func:`lifecycle.check_key`); its only write
    is ``last_used_at``, at most once a minute per key (:func:`lifecycle.mark_used`).

    Returns ``None`` for a missing header or another scheme, so DRF answers 401.
    A client address with too many failed verifications gets 429 with
    ``Retry-After`` for every key it sends, valid or not, until its window ends.
    """

    keyword = "Bearer"
    missing_credentials_message = "Authentication required. Send 'Authorization: Bearer <API key>'."

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        address = limits.address_subject(client_ip(request))
        throttle = limits.failed_verification()
        wait = throttle.retry_after(address)
        if wait:
            raise self._throttled(wait)
        if len(parts) != 2:
            self._refuse(throttle, address, "Malformed Authorization header. Use 'Authorization: Bearer <API key>'.")
        token = parts[1].decode("latin-1")
        if not token.startswith(crypto.KEY_PREFIX) and JWT_RE.match(token):
            self._refuse(
                throttle,
                address,
                "This endpoint needs an API key (omi_dev_...), not a Firebase ID token. "
                "Create a key with POST /v1/dev/keys and send it as 'Authorization: Bearer <API key>'.",
            )
        verification = lifecycle.check_key(token)
        if verification.api_key is None:
            self._refuse(throttle, address, verification.rejection)
        lifecycle.mark_used(verification.api_key)
        return verification.api_key.owner, verification.api_key

    def authenticate_header(self, request):
        return f'{self.keyword} realm="omikeys"'

    def _refuse(self, throttle: limits.Throttle, address: str, message: str):
        wait = throttle.hit(address)
        if wait:
            raise self._throttled(wait)
        raise exceptions.AuthenticationFailed(message)

    @staticmethod
    def _throttled(wait: int) -> TooManyRequests:
        return TooManyRequests(
            wait, f"Too many failed API key attempts from this address. Try again in {limits.wait_message(wait)}."
        )
