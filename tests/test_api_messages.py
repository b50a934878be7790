"""Every 401 and 403 the API answers, word for word: what a client is told is part of the contract.

Each case names the credential sent and the ``detail`` it gets, on the key door
(``GET /v1/dev/key`` and the scoped views of ``tests/scoped_urls.py``) and on the
Firebase door (``/v1/dev/keys``). The length cap on Firebase ID tokens is tested at
its edge with tokens the Auth Emulator accepts.
"""

import base64
import datetime
import json

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apikeys.api.authentication import SEND_A_KEY
from apikeys.firebase import MAX_TOKEN_LENGTH
from apikeys.models import User

from . import firebase_emulator
from .helpers import expire, issue, key_client

pytestmark = [pytest.mark.django_db, pytest.mark.owner("messages-owner", "messages@example.com")]

KEY_URL = "/v1/dev/key"
KEYS_URL = "/v1/dev/keys"
SECRET = "0123456789abcdef0123456789abcdef"

KEY_DOOR = {
    "no header": (None, "Authentication required. Send 'Authorization: Bearer <API key>'."),
    "bearer alone": ("Bearer", "Malformed Authorization header. Use 'Authorization: Bearer <API key>'."),
    "three words": (
        f"Bearer omi_dev_{SECRET} extra",
        "Malformed Authorization header. Use 'Authorization: Bearer <API key>'.",
    ),
    "an MCP key": (
        f"Bearer omi_mcp_{SECRET}",
        "This endpoint needs an API key (omi_dev_...), not an MCP key (omi_mcp_...), which is for Omi's MCP "
        f"server. {SEND_A_KEY}",
    ),
    "an MCP key in capitals": (
        f"Bearer OMI_MCP_{SECRET}",
        "This endpoint needs an API key (omi_dev_...), not an MCP key (omi_mcp_...), which is for Omi's MCP "
        f"server. {SEND_A_KEY}",
    ),
    "a service token": (
        f"Bearer omi_svc_{SECRET}",
        "This endpoint needs an API key (omi_dev_...), not a service token (omi_svc_...), which is for the "
        f"service API under /v1/service/. {SEND_A_KEY}",
    ),
    "a JWT": (
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        f"This endpoint needs an API key (omi_dev_...), not a Firebase ID token. {SEND_A_KEY}",
    ),
    "a Google access token": (
        "Bearer ya29.a0AfB_byC-example",
        f"This endpoint needs an API key (omi_dev_...), not a Google OAuth access token. {SEND_A_KEY}",
    ),
    "a key in quotes": (
        f'Bearer "omi_dev_{SECRET}"',
        "Send the API key without quotes or brackets around it: 'Authorization: Bearer omi_dev_...'.",
    ),
    "a key in angle brackets": (
        f"Bearer <omi_dev_{SECRET}>",
        "Send the API key without quotes or brackets around it: 'Authorization: Bearer omi_dev_...'.",
    ),
    "an unknown key": (f"Bearer omi_dev_{SECRET}", "Invalid API Key"),
    "a malformed key": ("Bearer omi_dev_short", "Invalid API Key"),
    "omi_ with dots, not a JWT": ("Bearer omi_a.b.c", "Invalid API Key"),
    "a key in lower-case bearer": (f"bearer omi_dev_{SECRET}", "Invalid API Key"),
}

FIREBASE_DOOR = {
    "no header": (None, "Authentication required. Send 'Authorization: Bearer <Firebase ID token>'."),
    "bearer alone": ("Bearer", "Malformed Authorization header. Use 'Authorization: Bearer <Firebase ID token>'."),
    "three words": ("Bearer a b", "Malformed Authorization header. Use 'Authorization: Bearer <Firebase ID token>'."),
    "not ASCII": ("Bearer t\u00f6ken", "The bearer token is not a valid Firebase ID token."),
    "an MCP key": (
        f"Bearer omi_mcp_{SECRET}",
        "This endpoint needs a Firebase ID token, not an MCP key (omi_mcp_...), which is for Omi's MCP server. "
        "Sign in with Firebase and send its ID token as 'Authorization: Bearer <ID token>'.",
    ),
    "an API key": (
        f"Bearer omi_dev_{SECRET}",
        "This endpoint needs a Firebase ID token, not an API key. API keys cannot manage keys.",
    ),
    "an API key in capitals": (
        f"Bearer OMI_DEV_{SECRET}",
        "This endpoint needs a Firebase ID token, not an API key. API keys cannot manage keys.",
    ),
    "a service token": (
        f"Bearer omi_svc_{SECRET}",
        "This endpoint needs a Firebase ID token, not a service token (omi_svc_...), which is for the "
        "service API under /v1/service/.",
    ),
    "garbage": ("Bearer not-a-token", "The bearer token is not a valid Firebase ID token."),
}


def get(url: str, header: str | None, **extra):
    client = APIClient(**extra)
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client.get(url)


@pytest.mark.parametrize("case", list(KEY_DOOR))
def test_each_refusal_of_the_key_door_says_what_was_wrong(case):
    header, detail = KEY_DOOR[case]
    response = get(KEY_URL, header)
    assert response.status_code == 401, response.content
    assert response.json() == {"detail": detail}
    assert response["WWW-Authenticate"] == 'Bearer realm="omikeys"'


@pytest.mark.parametrize("case", list(FIREBASE_DOOR))
def test_each_refusal_of_the_firebase_door_says_what_was_wrong(case):
    header, detail = FIREBASE_DOOR[case]
    response = get(KEYS_URL, header)
    assert response.status_code == 401, response.content
    assert response.json() == {"detail": detail}
    assert response["WWW-Authenticate"] == 'Bearer realm="omikeys"'


def test_an_expired_key_is_told_so(owner):
    issued = issue(owner, "expiring", ["memories:read"], expires_at=timezone.now() + datetime.timedelta(days=1))
    expire(issued.api_key)
    response = key_client(issued.plaintext).get(KEY_URL)
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid API Key: this key has expired."})


def test_a_deactivated_account_is_told_so(emulator_user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {emulator_user.id_token}")
    assert client.get(KEYS_URL).status_code == 200
    User.objects.filter(firebase_uid=emulator_user.uid).update(is_active=False)
    response = client.get(KEYS_URL)
    assert response.status_code == 401
    assert response.json() == {
        "detail": "This account has been deactivated. Contact support if you think this is a mistake."
    }


def test_a_throttled_address_is_told_how_long_to_wait(settings, time_machine):
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (1, 60)
    time_machine.move_to(datetime.datetime(2027, 3, 1, 12, 0, 0, 500000, tzinfo=datetime.UTC), tick=False)
    bad = APIClient(REMOTE_ADDR="203.0.113.40")
    bad.credentials(HTTP_AUTHORIZATION=f"Bearer omi_dev_{SECRET}")
    assert bad.get(KEY_URL).status_code == 401
    response = bad.get(KEY_URL)
    assert response.status_code == 429
    assert response.json() == {"detail": "Too many failed API key attempts from this address. Try again in 61 seconds."}
    assert response["Retry-After"] == "61"  # its slot (12:00:00-12:00:01) leaves the minute at 12:01:01


# --- the scoped views: 403 -----------------------------------------------------------------


@pytest.mark.urls("tests.scoped_urls")
def test_each_refusal_of_a_scoped_view_says_what_was_wrong(owner):
    reader = key_client(issue(owner, scopes=["goals:read"]).plaintext)
    session = APIClient()
    session.force_login(owner)
    cases = {
        "a key without the scope": (reader.post("/v1/goals"), "Insufficient permissions. Required scope: goals:write"),
        "a method no scope names": (reader.options("/v1/goals"), "No scope allows OPTIONS here."),
        "a session, not a key": (
            session.get("/v1/either"),
            "This endpoint needs an API key: send 'Authorization: Bearer <API key>'.",
        ),
    }
    got = {name: (response.status_code, response.json()) for name, (response, _) in cases.items()}
    assert got == {name: (403, {"detail": detail}) for name, (_, detail) in cases.items()}


# --- the length cap on Firebase ID tokens ------------------------------------------------


def _part(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token_of_length(claims: dict, length: int) -> str:
    """An emulator-style (``alg: none``) token carrying ``claims`` that is exactly ``length`` characters long.

    Padding goes into an extra header field and an extra claim, both ignored by Firebase;
    two paddings are needed because base64 cannot make every length from one part.
    """
    for header_pad in range(4):
        header = _part(json.dumps({"alg": "none", "typ": "JWT", "pad": "h" * header_pad}).encode())
        for claim_pad in range(length):
            payload = _part(json.dumps({**claims, "pad": "p" * claim_pad}).encode())
            token = f"{header}.{payload}."
            if len(token) == length:
                return token
            if len(token) > length:
                break
    raise AssertionError(f"no token of {length} characters")


@pytest.mark.parametrize("length", [MAX_TOKEN_LENGTH - 1, MAX_TOKEN_LENGTH])
def test_a_firebase_id_token_up_to_the_cap_is_accepted(emulator_user, length):
    token = token_of_length(firebase_emulator.decode_claims(emulator_user.id_token), length)
    assert len(token) == length
    response = get(KEYS_URL, f"Bearer {token}")
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("length", [MAX_TOKEN_LENGTH + 1, MAX_TOKEN_LENGTH + 2])
def test_a_firebase_id_token_over_the_cap_is_refused_unread(emulator_user, length):
    token = token_of_length(firebase_emulator.decode_claims(emulator_user.id_token), length)
    response = get(KEYS_URL, f"Bearer {token}")
    assert response.status_code == 401
    assert response.json() == {"detail": "The bearer token is not a valid Firebase ID token."}


def test_the_cap_is_eight_kibibytes():
    assert MAX_TOKEN_LENGTH == 8192
