"""importomikeys as a real process: standard input, gzip, exit statuses, and progress on a terminal or not."""

import json
import os
import pathlib
import pty
import signal
import subprocess
import sys
import time

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


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_damaged_gzip_file_exits_1_with_a_message_after_importing_what_came_before(
    tmp_path,
    scratch_database,  # noqa: F811
    damage,
):
    lines = [document(omi_key(), "gzip-owner") for _ in range(2000)]
    data = bytearray(write_export(tmp_path / "e.ndjson.gz", lines, gz=True).read_bytes())
    if damage == "truncated":
        data = data[: len(data) * 3 // 4]
    else:
        data[len(data) * 3 // 4 : len(data) * 3 // 4 + 64] = bytes(64)
    (tmp_path / "damaged.ndjson.gz").write_bytes(bytes(data))

    result = manage_with(None, str(tmp_path / "damaged.ndjson.gz"), "--no-firebase", DATABASE_URL=scratch_database)

    assert result.returncode == 1
    assert b"Reading " in result.stderr and b"failed:" in result.stderr and b"run again" in result.stderr
    assert b"Traceback" not in result.stderr
    again = manage_with(None, str(tmp_path / "e.ndjson.gz"), "--no-firebase", "--json", DATABASE_URL=scratch_database)
    report = json.loads(again.stdout)
    assert report["unchanged"] > 0 and report["created"] + report["unchanged"] == 2000


def test_a_batch_size_out_of_range_is_a_usage_error(scratch_database):  # noqa: F811
    for size in ("0", "10001"):
        result = manage_with(b"", "-", "--no-firebase", "--batch-size", size, DATABASE_URL=scratch_database)
        assert result.returncode == 2, result.stderr
        assert b"--batch-size must be between 1 and 10000." in result.stderr and b"Traceback" not in result.stderr


def test_an_interrupt_stops_the_import_with_a_message_and_running_again_continues(tmp_path, scratch_database):  # noqa: F811
    # Ctrl-C on a terminal: SIGINT to the whole process group (the reading process ignores it).
    lines = [document(omi_key(), "interrupted-owner") for _ in range(10_000)]  # far more than 2 s of batches of 1
    path = write_export(tmp_path / "e.ndjson", lines)
    import_process = subprocess.Popen(
        [sys.executable, str(MANAGE_PY), "importomikeys", str(path), "--no-firebase", "--batch-size", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "DATABASE_URL": scratch_database},
        cwd=MANAGE_PY.parent,
        start_new_session=True,
        # As in a terminal's foreground: a test run started in the background inherits SIGINT ignored,
        # and Python then leaves it ignored instead of raising KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        children = pathlib.Path(f"/proc/{import_process.pid}/task/{import_process.pid}/children")
        deadline = time.monotonic() + 30
        while not children.read_text().split() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2)  # some batches written
        os.killpg(import_process.pid, signal.SIGINT)
        _, stderr = import_process.communicate(timeout=60)
    finally:
        if import_process.poll() is None:
            import_process.kill()
            import_process.wait()

    assert import_process.returncode == 130, stderr
    assert b"Stopped by an interrupt. Batches already written stay; run the same command again" in stderr
    assert b"Traceback" not in stderr and b"KeyboardInterrupt" not in stderr
    again = manage_with(None, str(path), "--no-firebase", "--json", DATABASE_URL=scratch_database)
    report = json.loads(again.stdout)
    assert report["created"] + report["unchanged"] == 10_000 and report["unchanged"] > 0


def test_a_reading_process_that_dies_stops_the_import_with_a_message(tmp_path, scratch_database):  # noqa: F811
    import_process = subprocess.Popen(
        [sys.executable, str(MANAGE_PY), "importomikeys", "-", "--no-firebase"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "DATABASE_URL": scratch_database},
        cwd=MANAGE_PY.parent,
    )
    try:
        import_process.stdin.write(
            b"".join(json.dumps(document(omi_key(), "dying-owner")).encode() + b"\n" for _ in range(3))
        )
        import_process.stdin.flush()
        children = pathlib.Path(f"/proc/{import_process.pid}/task/{import_process.pid}/children")
        deadline = time.monotonic() + 30
        while not children.read_text().split() and time.monotonic() < deadline:
            time.sleep(0.05)
        (reader,) = children.read_text().split()
        os.kill(int(reader), signal.SIGKILL)
        _, stderr = import_process.communicate(timeout=60)
    finally:
        import_process.kill()
    assert import_process.returncode == 1
    assert b"The process reading the file stopped (exit code -9) before the end of the file." in stderr
    assert b"Traceback" not in stderr
