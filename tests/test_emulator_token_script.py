"""scripts/emulator_token.py: the README's way to get a token for local curl calls."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

from . import firebase_emulator

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "emulator_token.py"


def run(*args, **env):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=30
    )


def test_it_creates_the_account_then_signs_in_to_it():
    email = f"script-{uuid.uuid4().hex[:8]}@example.com"
    first = run(email, "correct-horse-battery")
    again = run(email, "correct-horse-battery")
    assert first.returncode == again.returncode == 0
    uids = {firebase_emulator.decode_claims(result.stdout.strip())["user_id"] for result in (first, again)}
    assert len(uids) == 1


def test_a_wrong_password_is_reported_as_such():
    email = f"script-{uuid.uuid4().hex[:8]}@example.com"
    run(email, "correct-horse-battery")
    result = run(email, "not-the-password")
    assert result.returncode == 1 and result.stdout == ""
    assert "INVALID_PASSWORD" in result.stderr


def test_an_unreachable_emulator_is_reported():
    result = run("a@example.com", "pw", FIREBASE_AUTH_EMULATOR_HOST="127.0.0.1:9")
    assert result.returncode == 1
    assert "did not answer" in result.stderr


def test_an_account_it_creates_has_a_verified_address_so_createapikey_accepts_it():
    email = f"script-{uuid.uuid4().hex[:8]}@example.com"
    token = run(email, "correct-horse-battery").stdout.strip()
    uid = firebase_emulator.decode_claims(token)["user_id"]
    assert firebase_emulator.lookup(uid)["emailVerified"] is True


def test_it_finds_the_emulator_scripts_dev_started_on_other_ports(tmp_path):
    """When 9099 serves another project, scripts/dev starts its own emulator elsewhere and writes where."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "emulator_token.py").write_text(SCRIPT.read_text())
    (tmp_path / ".run").mkdir()
    (tmp_path / ".run" / "auth-emulator-host").write_text("127.0.0.1:9\n")
    env = {key: value for key, value in os.environ.items() if key != "FIREBASE_AUTH_EMULATOR_HOST"}
    result = subprocess.run(
        [sys.executable, str(tmp_path / "scripts" / "emulator_token.py"), "a@example.com", "pw-123456"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "The Auth Emulator at 127.0.0.1:9 did not answer" in result.stderr
