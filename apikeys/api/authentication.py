"""Firebase ID-token authentication for the key-management API."""

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from .. import firebase
from ..models import User
from .exceptions import ServiceUnavailable

MAX_TOKEN_LENGTH = 8192  # Firebase ID tokens are about 1 KB; anything far larger is not one.


class FirebaseAuthentication(BaseAuthentication):
    """``Authorization: Bearer <Firebase ID token>``.

    Returns ``None`` for a missing header or another scheme, so DRF answers
    401 "not authenticated" (or lets another class try); an unacceptable
    Bearer token fails at once. The token itself never appears in a message.
    """

    keyword = "Bearer"

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
                "This endpoint needs a Firebase ID token, not an API key. "
                "API keys cannot create, list or revoke keys."
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
