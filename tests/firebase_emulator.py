"""A small client for the Firebase Auth Emulator's REST API, used to make real users and tokens."""

import base64
import json
import os
import uuid
from dataclasses import dataclass

import requests

HOST = os.environ["FIREBASE_AUTH_EMULATOR_HOST"]
BASE = f"http://{HOST}"
PASSWORD = "correct-horse-battery"


@dataclass
class EmulatorUser:
    uid: str
    email: str
    id_token: str


def is_running() -> bool:
    try:
        return requests.get(f"{BASE}/", timeout=2).ok
    except requests.RequestException:
        return False


def _accounts(action: str, body: dict) -> dict:
    response = requests.post(
        f"{BASE}/identitytoolkit.googleapis.com/v1/accounts:{action}?key=test-api-key", json=body, timeout=10
    )
    response.raise_for_status()
    return response.json()


def sign_up(email: str | None = None) -> EmulatorUser:
    email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
    result = _accounts("signUp", {"email": email, "password": PASSWORD, "returnSecureToken": True})
    return EmulatorUser(uid=result["localId"], email=email, id_token=result["idToken"])


def sign_in(email: str) -> str:
    return _accounts("signInWithPassword", {"email": email, "password": PASSWORD, "returnSecureToken": True})["idToken"]


def unsigned_token(claims: dict) -> str:
    """A token shaped like the emulator's own (``alg: none``) carrying arbitrary claims."""

    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def decode_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def batch_create(users: list[dict]) -> None:
    """Create accounts as they are (``localId``, ``email``, ``disabled``...) with the emulator's admin REST API."""
    project = os.environ.get("FIREBASE_PROJECT_ID", "demo-omikeys")
    response = requests.post(
        f"{BASE}/identitytoolkit.googleapis.com/v1/projects/{project}/accounts:batchCreate",
        json={"users": users},
        headers={"Authorization": "Bearer owner"},
        timeout=30,
    )
    response.raise_for_status()
    assert not response.json().get("error"), response.json()
