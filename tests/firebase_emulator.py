"""A small client for the Firebase Auth Emulator's REST API, used to make real users and tokens."""

import base64
import json
import os
import uuid
from dataclasses import dataclass

import requests

HOST = os.environ["FIREBASE_AUTH_EMULATOR_HOST"]
BASE = f"http://{HOST}"
PROJECT = os.environ["FIREBASE_PROJECT_ID"]
# The emulator takes this bearer token as the project's owner (what firebase-admin sends).
ADMIN = {"Authorization": "Bearer owner"}
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


def _admin(path: str, body: dict) -> requests.Response:
    """POST to the emulator's administrator API for the project (``path``: "accounts", "accounts:update", ...)."""
    return requests.post(
        f"{BASE}/identitytoolkit.googleapis.com/v1/projects/{PROJECT}/{path}",
        json=body,
        headers=ADMIN,
        timeout=10,
    )


def update_account(uid: str, **fields) -> dict:
    """Change an account as an administrator would: ``disableUser=True``, ``email=...``, ``emailVerified=True``."""
    response = _admin("accounts:update", {"localId": uid, **fields})
    response.raise_for_status()
    return response.json()


def delete_account(uid: str) -> None:
    """Delete an account as an administrator would."""
    _admin("accounts:delete", {"localId": uid}).raise_for_status()


def lookup(uid: str) -> dict:
    """The emulator's record of an account (``email``, ``disabled``, ``emailVerified``...)."""
    response = _admin("accounts:lookup", {"localId": [uid]})
    response.raise_for_status()
    return response.json()["users"][0]


def ensure_account(uid: str, email: str) -> None:
    """An account with this uid and address, enabled and verified, whatever an earlier test left."""
    response = _admin("accounts:update", {"localId": uid, "email": email, "emailVerified": True, "disableUser": False})
    if response.status_code == 400 and "USER_NOT_FOUND" in response.text:
        response = _admin("accounts", {"localId": uid, "email": email, "emailVerified": True})
    response.raise_for_status()


def sign_in(email: str) -> str:
    return _accounts("signInWithPassword", {"email": email, "password": PASSWORD, "returnSecureToken": True})["idToken"]


def change_password(id_token: str, password: str = PASSWORD + "-new") -> str:
    """Change the password as the signed-in person does; returns the fresh ID token Firebase issues.

    Firebase moves the account's ``validSince`` to now, and the new token keeps the
    earlier sign-in's ``auth_time``.
    """
    body = {"idToken": id_token, "password": password, "returnSecureToken": True}
    return _accounts("update", body)["idToken"]


def unsigned_token(claims: dict) -> str:
    """A token shaped like the emulator's own (``alg: none``) carrying arbitrary claims."""
    return unsigned_token_of_payload(json.dumps(claims).encode())


def unsigned_token_of_payload(payload: bytes) -> str:
    """An ``alg: none`` token whose payload is these bytes, JSON object or not."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{part(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{part(payload)}."


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
