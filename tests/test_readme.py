"""The README's curl session runs as written, with bash, against a live server and a real emulator user."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from apikeys.models import ApiKey

ROOT = Path(__file__).resolve().parent.parent


def readme_session() -> str:
    """The README's shell block that sets BASE and TOKEN: the curl session."""
    blocks = re.findall(r"^```sh\n(.*?)^```$", (ROOT / "README.md").read_text(), flags=re.DOTALL | re.MULTILINE)
    sessions = [block for block in blocks if block.startswith("BASE=${BASE:-")]
    assert len(sessions) == 1, "the README should have one ```sh block starting with BASE=${BASE:-...}"
    return sessions[0]


def readme_output() -> list[str]:
    """The lines the README says the session prints: the plain block right after the session."""
    text = (ROOT / "README.md").read_text()
    after = text.split(readme_session(), 1)[1].split("```", 1)[1]  # past the session's closing fence
    match = re.search(r"^```\n(.*?)^```$", after, flags=re.DOTALL | re.MULTILINE)
    assert match, "the README should show what the session prints, in a ``` block after it"
    return match.group(1).splitlines()


def test_the_session_takes_base_and_token_from_the_environment():
    session = readme_session()
    assert "BASE=${BASE:-http://127.0.0.1:8000}\n" in session
    assert "TOKEN=${TOKEN:-$(.venv/bin/python scripts/emulator_token.py " in session


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's session needs curl")
def test_the_readme_curl_session_runs_as_written(live_server, emulator_user, contract_scopes):
    result = subprocess.run(
        ["bash", "-c", readme_session()],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "BASE": live_server.url, "TOKEN": emulator_user.id_token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    used, listed, used_new, old_during_grace, revoked, refused = result.stdout.splitlines()

    # The README shows the same lines: every JSON answer with the same fields, in the same order.
    shown = readme_output()
    assert len(shown) == len(result.stdout.splitlines())
    for real, sample in zip(result.stdout.splitlines(), shown, strict=True):
        if real.startswith(("{", "[")) and not real.startswith('{"detail"'):
            real_value, sample_value = json.loads(real), json.loads(sample)
            real_fields = [list(item) for item in real_value] if isinstance(real_value, list) else list(real_value)
            shown_fields = (
                [list(item) for item in sample_value] if isinstance(sample_value, list) else list(sample_value)
            )
            assert shown_fields == real_fields, sample
        else:
            assert sample == real

    # Create, then use the key: GET /v1/dev/key describes it and names its owner.
    key = json.loads(used)
    assert key["name"] == "My integration"
    assert key["scopes"] == ["memories:read"]
    assert key["status"] == "active"
    assert key["uid"] == emulator_user.uid
    assert key["last_used_at"] is not None

    # List: that key, without its secret.
    (entry,) = json.loads(listed)
    assert entry["id"] == key["id"]
    assert "key" not in entry

    # Rotate with a grace period: the new key works, and so does the old one for now.
    rotated = json.loads(used_new)
    assert rotated["id"] == key["id"]
    assert rotated["key_prefix"] != key["key_prefix"]
    assert old_during_grace == "old key: 200"

    # Revoke: 204, then the new key is refused.
    assert revoked == "204"
    assert refused == '{"detail":"Invalid API Key"} 401'
    api_key = ApiKey.objects.get(pk=key["id"])
    assert api_key.revoked_at is not None
    assert api_key.previous_key_expires_at is not None
