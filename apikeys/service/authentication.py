"""Service tokens (``Authorization: Bearer omi_svc_...``): the only credential the service API accepts."""

import re

from django.contrib.auth.models import AnonymousUser
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from .. import crypto, lifecycle, limits, metrics
from ..audit import client_ip
from ..jsonapi.exceptions import TooManyRequests

# A JSON Web Token (a Firebase ID token): three base64url parts separated by dots.
JWT_RE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")

SEND_A_TOKEN = "Send 'Authorization: Bearer <service token>' (omi_svc_...; staff create one with createserviceclient)."


def other_credential(token: str) -> str | None:
    """What ``token`` is, when its shape shows it is a credential other than a service token; else None."""
    lowered = token[:8].lower()
    if lowered == crypto.KEY_PREFIX:
        return "an API key (omi_dev_...); a key to check goes in the body of POST /v1/service/keys/verify"
    if lowered == "omi_mcp_":
        return "an MCP key (omi_mcp_...)"
    if JWT_RE.match(token):
        return "a Firebase ID token"
    return None


class ServiceTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer omi_svc_...``: a :class:`~apikeys.models.ServiceClient`.

    On success ``request.auth`` is the client (``request.user`` an anonymous user: no person
    acts) and the client's ``last_used_at`` is stamped (at most once per
    ``OMIKEYS_LAST_USED_INTERVAL``). Any other credential is a 401 naming what was sent. An
    address with too many failed attempts (``OMIKEYS_FAILED_VERIFICATION_RATE``) gets 429
    with ``Retry-After`` for every token until its window ends. No header: ``None``, so DRF
    answers 401 with :attr:`missing_credentials_message`.
    """

    missing_credentials_message = f"Authentication required. {SEND_A_TOKEN}"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != b"bearer":
            return None
        address = limits.address_subject(client_ip(request))
        throttle = limits.failed_service_authentication()
        wait = throttle.retry_after(address)
        if wait:
            raise self._throttled(throttle, wait)
        if len(parts) != 2:
            self._refuse(throttle, address, f"Malformed Authorization header. {SEND_A_TOKEN}")
        token = parts[1].decode("latin-1")
        other = other_credential(token)
        if other:
            self._refuse(throttle, address, f"The service API needs a service token (omi_svc_...), not {other}.")
        client = lifecycle.find_service_client(token)
        if client is None:
            self._refuse(throttle, address, f"Invalid service token: unknown, revoked or malformed. {SEND_A_TOKEN}")
        lifecycle.mark_service_client_used(client)
        return AnonymousUser(), client

    def authenticate_header(self, request):
        return 'Bearer realm="omikeys-service"'

    def _refuse(self, throttle: limits.Throttle, address: str, message: str):
        wait = throttle.hit(address)
        if wait:
            raise self._throttled(throttle, wait)
        raise exceptions.AuthenticationFailed(message)

    @staticmethod
    def _throttled(throttle: limits.Throttle, wait: int) -> TooManyRequests:
        metrics.record_throttle_refusal(throttle.name)
        return TooManyRequests(
            wait,
            f"Too many failed service token attempts from this address. Try again in {limits.wait_message(wait)}.",
        )
