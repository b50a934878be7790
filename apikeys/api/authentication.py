"""The two credentials: Firebase ID tokens (managing keys) and API keys (using them)."""

import re

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from .. import crypto, firebase, lifecycle, limits
from ..audit import client_ip
from ..jsonapi.exceptions import ServiceUnavailable, TooManyRequests
from ..models import User

# A JSON Web Token: three base64url parts separated by dots (Firebase ID tokens are JWTs).
JWT_RE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


class BearerAuthentication(BaseAuthentication):
    """``Authorization: Bearer <token>``, parsed once for both credentials.

    Returns ``None`` for a missing header or another scheme, so DRF answers 401
    "not authenticated" (or lets another class try); otherwise hands the token to
    :meth:`authenticate_token`: the second word of the header as bytes, or ``None``
    when the header has more or fewer words than two. A token never appears in a message.
    """

    keyword = "Bearer"
    credential = "token"  # how the messages name what belongs after "Bearer"

    @property
    def missing_credentials_message(self) -> str:
        return f"Authentication required. Send 'Authorization: Bearer <{self.credential}>'."

    @property
    def malformed_message(self) -> str:
        return f"Malformed Authorization header. Use 'Authorization: Bearer <{self.credential}>'."

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        return self.authenticate_token(request, parts[1] if len(parts) == 2 else None)

    def authenticate_token(self, request, token: bytes | None):
        """``(user, auth)`` for the token, or raise ``AuthenticationFailed``; ``None`` means malformed."""
        raise NotImplementedError

    def authenticate_header(self, request):
        return f'{self.keyword} realm="omikeys"'


class FirebaseAuthentication(BearerAuthentication):
    """``Authorization: Bearer <Firebase ID token>``: the person managing their keys.

    On success ``request.user`` is the token's user (created on first sight) and
    ``request.auth`` the token's claims. An unacceptable token fails at once;
    Firebase unreachable is 503.
    """

    credential = "Firebase ID token"

    def authenticate_token(self, request, token):
        if token is None:
            raise exceptions.AuthenticationFailed(self.malformed_message)
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The bearer token is not a valid Firebase ID token.") from None
        if is_mcp_key(token):
            raise exceptions.AuthenticationFailed(
                "This endpoint needs a Firebase ID token, not an MCP key (omi_mcp_...), which is for Omi's MCP "
                "server. Sign in with Firebase and send its ID token as 'Authorization: Bearer <ID token>'."
            )
        if crypto.is_service_token(token):
            raise exceptions.AuthenticationFailed(
                "This endpoint needs a Firebase ID token, not a service token (omi_svc_...), which is for the "
                "service API under /v1/service/."
            )
        if token[:4].lower() == "omi_":
            raise exceptions.AuthenticationFailed(
                "This endpoint needs a Firebase ID token, not an API key. API keys cannot manage keys."
            )
        try:
            claims = firebase.verify_id_token(token)
        except firebase.TokenRejected as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        except firebase.AuthUnavailable as exc:
            raise ServiceUnavailable(str(exc)) from exc
        user = User.objects.for_firebase(claims["uid"], claims.get("email"))
        if not user.is_active:
            # Staff, syncfirebaseusers or an erasure through the service API may have done it:
            # the same words as the web sign-in's, naming no one.
            raise exceptions.AuthenticationFailed(DEACTIVATED_ACCOUNT)
        return user, claims


DEACTIVATED_ACCOUNT = "This account has been deactivated. Contact support if you think this is a mistake."


def is_mcp_key(token: str) -> bool:
    """True for a token shaped like an Omi MCP key: ``omi_mcp_`` in any case (``OMI_MCP_...`` too)."""
    return token[:8].lower() == "omi_mcp_"


SEND_A_KEY = "Create a key with POST /v1/dev/keys and send it as 'Authorization: Bearer <API key>'."

# Credentials that are not Developer API keys but can be told apart by their shape, and what
# to say when one is sent where a key belongs: (test, what it is). Checked in this order.
OTHER_CREDENTIALS = (
    (is_mcp_key, "an MCP key (omi_mcp_...), which is for Omi's MCP server"),
    (crypto.is_service_token, "a service token (omi_svc_...), which is for the service API under /v1/service/"),
    (lambda token: token[:4].lower() != "omi_" and JWT_RE.match(token), "a Firebase ID token"),
    (lambda token: token.startswith("ya29."), "a Google OAuth access token"),
)
# Pasted with the quotes or angle brackets of an example around it.
WRAPPED_KEY_RE = re.compile(r"""^(["'<`])omi_dev_\S*(["'>`])$""")


def wrong_credential_message(token: str) -> str | None:
    """What to tell a client that sent ``token`` where a Developer API key belongs, or None if it may be one.

    Names the credential sent (an MCP key, a Firebase ID token...) and the one wanted,
    as a 401 message; never quotes the token.
    """
    for matches, what in OTHER_CREDENTIALS:
        if matches(token):
            return f"This endpoint needs an API key (omi_dev_...), not {what}. {SEND_A_KEY}"
    if WRAPPED_KEY_RE.match(token):
        return "Send the API key without quotes or brackets around it: 'Authorization: Bearer omi_dev_...'."
    return None


class ApiKeyAuthentication(BearerAuthentication):
    """``Authorization: Bearer omi_dev_...``: the key of a Developer API client.

    On success ``request.user`` is the key's owner and ``request.auth`` the
    :class:`~apikeys.models.ApiKey`, with its scope codes in ``request.auth.scope_codes``.
    The verdict is :func:`lifecycle.judge_key`'s, as for the service API: one indexed read
    (:func:`lifecycle.verify_key`); its only write is ``last_used_at``, at most once a minute per key
    (:func:`lifecycle.mark_used`); the key's usage is counted in memory and written by the process's
    background writer (``lifecycle.usage``).

    A client address with too many failed verifications gets 429 with
    ``Retry-After`` for every key it sends, valid or not, until its window ends.
    """

    credential = "API key"

    def authenticate_token(self, request, token):
        presented = None if token is None else token.decode("latin-1")
        verdict = lifecycle.judge_key(
            presented, client_address=client_ip(request), user_agent=request.META.get("HTTP_USER_AGENT", "")
        )
        if verdict.retry_after:
            raise TooManyRequests(
                verdict.retry_after,
                "Too many failed API key attempts from this address. "
                f"Try again in {limits.wait_message(verdict.retry_after)}.",
            )
        if verdict.api_key is None:
            if presented is None:
                raise exceptions.AuthenticationFailed(self.malformed_message)
            raise exceptions.AuthenticationFailed(wrong_credential_message(presented) or verdict.verification.rejection)
        return verdict.api_key.owner, verdict.api_key
