"""Helpers for the management commands' tests: running a command in this process or as a real ``manage.py``."""

import io
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.management import call_command

from apikeys.models import KeyEvent

MANAGE_PY = Path(settings.BASE_DIR) / "manage.py"
DEFAULT_SCOPES = ["action_items:read", "conversations:read", "goals:read", "memories:read"]


def assert_made_by_command(event: KeyEvent, command: str) -> None:
    assert (event.actor_kind, event.via, event.actor) == ("command", "command", None)
    assert event.actor_label.startswith(f"{command} (run by ")
    assert (event.ip_address, event.user_agent) == (None, "")


def run(command: str, *args: str) -> tuple[str, str]:
    """``call_command`` with captured output: (stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command(command, *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """A real ``manage.py`` process with the test run's environment (plus ``env``)."""
    return subprocess.run(
        [sys.executable, str(MANAGE_PY), *args],
        env={**os.environ, **env},
        cwd=MANAGE_PY.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
