"""importomikeys as a real process: standard input, gzip, exit statuses, and progress on a terminal or not."""

import json
import os
import pty
import subprocess
import sys

import pytest

from apikeys.management.commands import importomikeys

from ..omi_exports import document, omi_key, write_export
from .running import MANAGE_PY, run
from .test_processes import scratch_database  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db


def manage_with(stdin: bytes | None, *args: str, stderr=subprocess.PIPE, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(MANAGE_PY), "importomikeys", *args],
        input=stdin,
        env={**os.environ, **env},
        cwd=MANAGE_PY.parent,
        stdout=subprocess.PIPE,
        stderr=stderr,
        timeout=60,
    )


def test_standard_input_is_read_with_a_dash_gzip_or_not(tmp_path, scratch_database):  # noqa: F811
    lines = [document(omi_key(), "stdin-owner") for _ in range(3)]
    plain = write_export(tmp_path / "e.ndjson", lines).read_bytes()
    zipped = write_export(tmp_path / "e.ndjson.gz", [document(omi_key(), "stdin-owner")], gz=True).read_bytes()

    first = manage_with(plain, "-", "--no-firebase", "--json", DATABASE_URL=scratch_database)
    second = manage_with(zipped, "-", "--no-firebase", "--json", DATABASE_URL=scratch_database)

    assert first.returncode == 0, first.stderr
    assert (json.loads(first.stdout)["file"], json.loads(first.stdout)["created"]) == ("<stdin>", 3)
    assert second.returncode == 0 and json.loads(second.stdout)["created"] == 1
    assert b"Traceback" not in first.stderr + second.stderr


def test_refusals_exit_1_and_an_unreadable_file_exits_1_with_a_message(tmp_path, scratch_database):  # noqa: F811
    refused = manage_with(b"not json\n", "-", "--no-firebase", DATABASE_URL=scratch_database)
    assert refused.returncode == 1
    assert b"line 1: refused, the line is not JSON [not_json]" in refused.stderr
    assert b"CommandError: 1 document refused (see the report)." in refused.stderr

    missing = manage_with(None, str(tmp_path / "nowhere.ndjson"), DATABASE_URL=scratch_database)
    assert missing.returncode == 1
    assert b"Cannot read" in missing.stderr and b"No such file or directory" in missing.stderr
    assert b"Traceback" not in missing.stderr


def test_a_terminal_gets_a_progress_bar(tmp_path, scratch_database):  # noqa: F811
    path = write_export(tmp_path / "e.ndjson", [document(omi_key(), "tty-owner") for _ in range(5)])
    leader, follower = pty.openpty()
    try:
        result = manage_with(None, str(path), "--no-firebase", stderr=follower, DATABASE_URL=scratch_database)
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert result.returncode == 0
    assert b"importing: 100%" in shown and b"documents=5" in shown


def test_without_a_terminal_progress_is_a_line_every_few_seconds(tmp_path, monkeypatch):
    monkeypatch.setattr(importomikeys, "PROGRESS_LINE_SECONDS", 0)
    path = write_export(tmp_path / "e.ndjson", [document(omi_key(), "lines-owner") for _ in range(3)])

    _, stderr = run("importomikeys", str(path), "--no-firebase", "--batch-size", "1")

    progress = [line for line in stderr.splitlines() if line.startswith("importomikeys: ")]
    assert progress[0].startswith("importomikeys: 1 documents read (")
    assert "of the file): 1 created, 0 updated, 0 unchanged, 0 refused" in progress[0]
    assert len(progress) >= 3
    assert "\r" not in stderr
