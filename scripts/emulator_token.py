"""Print a Firebase ID token for EMAIL from the local Auth Emulator, creating the account if needed.

    python scripts/emulator_token.py EMAIL PASSWORD

For local development only: the emulator accepts any API key and any password. The
emulator is the one scripts/dev uses (FIREBASE_AUTH_EMULATOR_HOST overrides it). An
account this creates has its address marked verified (as if the person had followed
the verification link), so `createapikey --email EMAIL` accepts it.
"""

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_HOST = "127.0.0.1:9099"
# scripts/dev writes here where it started its own emulator (other ports, when 9099 serves
# another project), as scripts/manage reads it.
RECORDED_HOST = Path(__file__).resolve().parent.parent / ".run" / "auth-emulator-host"


def emulator_host() -> str:
    """FIREBASE_AUTH_EMULATOR_HOST; else the emulator scripts/dev started; else 127.0.0.1:9099."""
    if os.environ.get("FIREBASE_AUTH_EMULATOR_HOST"):
        return os.environ["FIREBASE_AUTH_EMULATOR_HOST"]
    try:
        return RECORDED_HOST.read_text().strip() or DEFAULT_HOST
    except OSError:
        return DEFAULT_HOST


HOST = emulator_host()
BASE = f"http://{HOST}/identitytoolkit.googleapis.com/v1/accounts"
PROJECT = os.environ.get("FIREBASE_PROJECT_ID", "demo-omikeys")


def call(action: str, email: str, password: str) -> dict:
    body = json.dumps({"email": email, "password": password, "returnSecureToken": True}).encode()
    request = urllib.request.Request(
        f"{BASE}:{action}?key=local-emulator", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def mark_verified(uid: str) -> None:
    """Mark the account's address verified, through the emulator's administrator API ("Bearer owner")."""
    body = json.dumps({"localId": uid, "emailVerified": True}).encode()
    request = urllib.request.Request(
        f"http://{HOST}/identitytoolkit.googleapis.com/v1/projects/{PROJECT}/accounts:update",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": "Bearer owner"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def error_message(exc: urllib.error.HTTPError) -> str:
    try:
        return json.load(exc)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {exc.code}"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    email, password = argv[1], argv[2]
    try:
        try:
            result = call("signInWithPassword", email, password)
        except urllib.error.HTTPError as exc:
            reason = error_message(exc)
            if exc.code != 400 or reason != "EMAIL_NOT_FOUND":
                print(f"The Auth Emulator refused to sign in {email}: {reason}.", file=sys.stderr)
                return 1
            result = call("signUp", email, password)
            mark_verified(result["localId"])
    except urllib.error.HTTPError as exc:
        print(f"The Auth Emulator refused to create {email}: {error_message(exc)}.", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"The Auth Emulator at {HOST} did not answer ({exc}). Is scripts/dev running?", file=sys.stderr)
        return 1
    print(result["idToken"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
