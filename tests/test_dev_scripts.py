"""The first-run scripts (scripts/dev, scripts/lib.sh): Node.js, the emulator's project, the demo account, output."""

import fcntl
import json
import os
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from firebase_admin import auth

from apikeys import firebase
from apikeys.models import ApiKey, User

from . import firebase_emulator
from .helpers import database_url, free_port, issue

ROOT = Path(__file__).resolve().parent.parent


def lib(script: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Bash with scripts/lib.sh sourced, then ``script``."""
    return subprocess.run(
        ["bash", "-c", f"source scripts/lib.sh\n{script}"],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- Node.js ---------------------------------------------------------------------------


def test_an_old_node_stops_with_how_to_get_node_20(tmp_path):
    # The machine has Node.js 20; an old one is stood in for by a script answering as Node 18 does.
    fake = tmp_path / "node"
    fake.write_text('#!/bin/sh\ncase "$*" in *--version*) echo v18.19.0 ;; *) echo 18 ;; esac\n')
    fake.chmod(0o755)
    result = lib("ensure_node", {"PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert result.returncode == 1
    assert "Node.js v18.19.0; 20 or newer is needed" in result.stderr
    assert "https://deb.nodesource.com/setup_20.x" in result.stderr
    assert "Debian 12" in result.stderr and "nvm install 20" in result.stderr


def test_node_20_passes():
    assert lib("ensure_node").returncode == 0


def test_npm_ci_leaves_out_the_optional_native_build():
    """re2 (optional, for the Hosting emulator) would be compiled for ~10 minutes; the Auth Emulator needs none."""
    script = (ROOT / "scripts" / "lib.sh").read_text()
    assert "npm ci --omit=optional" in script
    lock = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    optional = {name for name, entry in lock.items() if entry.get("optional")}
    assert "node_modules/re2" in optional
    # Nothing the sign-in page serves or the emulator runs is optional.
    assert not lock["node_modules/firebase"].get("optional")
    assert not lock["node_modules/firebase-tools"].get("optional")


# --- the Auth Emulator's project ---------------------------------------------------------


def test_the_project_of_a_running_emulator_is_found():
    result = lib(f"emulator_project {firebase_emulator.HOST}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == firebase_emulator.PROJECT


def test_something_that_is_not_an_emulator_has_no_project(tmp_path):
    result = lib("emulator_project 127.0.0.1:9")
    assert result.returncode != 0 and result.stdout == ""


@pytest.fixture(scope="module")
def foreign_emulator(other_emulator):
    """The address of a real Auth Emulator of another project (demo-other), on free ports."""
    assert other_emulator.extra["project"] == "demo-other"
    return other_emulator.address


def test_another_projects_emulator_is_told_apart(foreign_emulator):
    assert lib(f"emulator_project {foreign_emulator}").stdout.strip() == "demo-other"


def test_another_projects_emulator_on_the_port_is_not_reused(foreign_emulator):
    """scripts/dev and scripts/test start their own emulator on free ports, and say why."""
    result = lib(
        f"AUTH_EMULATOR_HOST={foreign_emulator}\nstart_auth_emulator\n"
        'echo "host=$FIREBASE_AUTH_EMULATOR_HOST"\necho "project=$(emulator_project "$FIREBASE_AUTH_EMULATOR_HOST")"',
        timeout=200,
    )
    assert result.returncode == 0, result.stderr
    assert f"The Auth Emulator on {foreign_emulator} serves project demo-other, not demo-omikeys" in result.stderr
    values = dict(line.split("=", 1) for line in result.stdout.split())
    assert values["host"] != foreign_emulator
    assert values["project"] == "demo-omikeys"
    # Ours stopped with the script; the other project's is untouched.
    assert lib(f"emulator_ready {values['host']}").returncode != 0
    assert lib(f"emulator_project {foreign_emulator}").stdout.strip() == "demo-other"


def test_an_emulator_of_our_project_is_reused():
    result = lib(
        f'AUTH_EMULATOR_HOST={firebase_emulator.HOST}\nstart_auth_emulator\necho "$FIREBASE_AUTH_EMULATOR_HOST"'
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == firebase_emulator.HOST
    assert "Using the Auth Emulator already running" in result.stderr


# --- accounts the emulator did not save ---------------------------------------------------


def test_a_failed_save_on_exit_is_reported(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "firebase-export-metadata.json").write_text("{}")
    stamp = tmp_path / "started"
    # The start stamp two seconds after, then before, the export's own time (touch -r: relative
    # to it, not to the clock when touch runs, however long the machine takes to get there).
    saved_at = data / "firebase-export-metadata.json"
    result = lib(f"touch -r {saved_at} -d '+2 seconds' {stamp}; _check_export {data} {stamp} /tmp/emulator.log")
    assert "did not save its accounts" in result.stderr
    assert "made again with its earlier uid" in result.stderr
    saved = lib(f"touch -r {saved_at} -d '-2 seconds' {stamp}; _check_export {data} {stamp} /tmp/emulator.log")
    assert saved.stderr == ""


def demo_account(email: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_DEBUG": "true"}
    return subprocess.run(
        [sys.executable, "scripts/demo_account.py", email, firebase_emulator.PASSWORD],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def address() -> str:
    return f"demo-{uuid.uuid4().hex[:12]}@example.com"


@pytest.mark.django_db(transaction=True)
def test_a_demo_account_the_emulator_lost_is_made_again_with_its_earlier_uid():
    email = address()
    earlier = User.objects.for_firebase(f"earlier-{uuid.uuid4().hex[:8]}", email)
    result = demo_account(email)
    assert result.returncode == 0, result.stderr
    assert f"made again with its earlier uid {earlier.firebase_uid}" in result.stderr
    account = auth.get_user_by_email(email, app=firebase.get_app())
    assert account.uid == earlier.firebase_uid and account.email_verified
    assert firebase_emulator.sign_in(email)  # the documented password works
    assert User.objects.filter(email=email).count() == 1
    again = demo_account(email)
    assert again.returncode == 0 and again.stderr == ""


@pytest.mark.django_db(transaction=True)
def test_a_new_demo_account_is_made_quietly_with_a_verified_address():
    email = address()
    result = demo_account(email)
    assert (result.returncode, result.stderr) == (0, "")
    assert auth.get_user_by_email(email, app=firebase.get_app()).email_verified


@pytest.mark.django_db(transaction=True)
def test_a_demo_account_with_another_uid_than_the_database_knows_is_explained():
    person = firebase_emulator.sign_up(address())
    User.objects.for_firebase(f"stale-{uuid.uuid4().hex[:8]}", person.email)
    result = demo_account(person.email)
    assert result.returncode == 0
    assert f"has uid {person.uid}, but the local database knows uid stale-" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_other_users_the_emulator_lost_are_listed():
    lost = User.objects.for_firebase(f"lost-{uuid.uuid4().hex[:8]}", address())
    kept = firebase_emulator.sign_up(address())
    User.objects.for_firebase(kept.uid, kept.email)
    result = demo_account(address())
    assert result.returncode == 0
    assert f"{lost.email} (uid {lost.firebase_uid})" in result.stderr
    assert kept.email not in result.stderr
    assert "no longer has an account on the Auth Emulator" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_imported_owners_and_deactivated_users_are_not_listed_as_lost():
    """Owners of keys imported from an export never had emulator accounts; deactivated users cannot sign in."""
    imported = User.objects.for_firebase(f"imported-{uuid.uuid4().hex[:8]}", address())
    ApiKey.objects.filter(pk=issue(imported).api_key.pk).update(omi_document_id=f"doc-{uuid.uuid4().hex}")
    both = User.objects.for_firebase(f"both-{uuid.uuid4().hex[:8]}", address())
    ApiKey.objects.filter(pk=issue(both).api_key.pk).update(omi_document_id=f"doc-{uuid.uuid4().hex}")
    issue(both)  # a key made here: this person signed in here once
    gone = User.objects.for_firebase(f"gone-{uuid.uuid4().hex[:8]}", address())
    User.objects.filter(pk=gone.pk).update(is_active=False)
    result = demo_account(address())
    assert result.returncode == 0
    assert both.email in result.stderr
    assert imported.email not in result.stderr and imported.firebase_uid not in result.stderr
    assert gone.email not in result.stderr and gone.firebase_uid not in result.stderr


def test_the_demo_account_script_says_when_the_emulator_does_not_answer():
    result = subprocess.run(
        [sys.executable, "scripts/demo_account.py", address(), "pw-123456"],
        cwd=ROOT,
        env={**os.environ, "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9", "DJANGO_DEBUG": "true"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "could not be asked" in result.stderr


# --- the console --------------------------------------------------------------------------


def test_migrations_are_summed_up_in_one_line(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'dev.sqlite3'}", "DJANGO_DEBUG": "true"}
    first = lib("apply_migrations", env, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "Applying" in first.stderr and "database migrations" in first.stderr
    assert "Running migrations:" not in first.stdout + first.stderr
    assert "Operations to perform" not in first.stdout + first.stderr
    again = lib("apply_migrations", env, timeout=120)
    assert "The database is up to date" in again.stderr
    assert "Running migrations:" not in again.stdout + again.stderr


def test_scripts_manage_registers_a_local_receiver_as_scripts_dev_prints(tmp_path):
    # scripts/dev says: register a receiver with scripts/manage webhookendpoint add URL; its
    # worker may call loopback, so scripts/manage must accept a loopback URL too.
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'dev.sqlite3'}", "DJANGO_DEBUG": "true"}
    assert lib("apply_migrations", env, timeout=180).returncode == 0
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OMIKEYS_WEBHOOK_")}
    result = subprocess.run(
        ["scripts/manage", "webhookendpoint", "add", "http://127.0.0.1:9/hooks", "--events", "key.created"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Registered webhook endpoint" in result.stdout


def test_a_warning_is_printed_once_in_debug_mode():
    code = (
        "import django; django.setup(); from django.test import Client; "
        "Client().get('/no-such-page-at-all'); Client().get('/v1/dev/keys')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_DEBUG": "true",
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "DJANGO_SETTINGS_MODULE": "omikeys_project.settings",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("Not Found: /no-such-page-at-all") == 1, result.stderr
    assert result.stderr.count("Unauthorized: /v1/dev/keys") == 1, result.stderr
    # In the project's format: level, logger, the request id in brackets, the message.
    assert re.search(r"WARNING django\.request \[[^\]]+\] Not Found", result.stderr), result.stderr


# --- a second scripts/dev, a taken port ---------------------------------------------------


def scripts_dev(port: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["scripts/dev"], cwd=ROOT, env={**os.environ, "PORT": str(port)}, capture_output=True, text=True, timeout=60
    )


def nothing_was_started(result: subprocess.CompletedProcess) -> bool:
    return not any(step in result.stderr for step in ("Installing", "Starting", "Using the Auth Emulator", "migration"))


def test_a_second_scripts_dev_of_the_same_checkout_stops_at_once():
    """A second one would start a second worker over the first one's .run/worker.log."""
    (ROOT / ".run").mkdir(exist_ok=True)
    with open(ROOT / ".run" / "dev.lock", "w") as running:  # as the first scripts/dev holds it
        fcntl.flock(running, fcntl.LOCK_EX | fcntl.LOCK_NB)
        running.write("4242\n")
        running.flush()
        result = scripts_dev(free_port())
    assert result.returncode == 1
    assert "scripts/dev is already running in this checkout (pid 4242)" in result.stderr
    assert nothing_was_started(result), result.stderr


def test_scripts_dev_on_a_taken_port_stops_at_once_and_names_another():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = scripts_dev(port)
    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stderr
    assert f"PORT={port + 1} scripts/dev" in result.stderr
    assert nothing_was_started(result), result.stderr


# --- scripts/manage -----------------------------------------------------------------------


def test_scripts_manage_registers_a_local_webhook_receiver_as_scripts_dev_suggests(tmp_path):
    """scripts/dev prints `scripts/manage webhookendpoint add URL`: a receiver on this machine must be accepted.

    scripts/dev's worker may call loopback receivers; scripts/manage, run beside it, must allow
    registering them too (both take their settings from lib.sh's dev_settings).
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("OMIKEYS_WEBHOOK_ALLOWED_NETWORKS", "OMIKEYS_WEBHOOK_ALLOW_HTTP", "DJANGO_DEBUG")
    }
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'dev.sqlite3'}"

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["scripts/manage", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    migrated = manage("migrate", "--no-input", "--verbosity", "0")
    assert migrated.returncode == 0, migrated.stderr
    added = manage("webhookendpoint", "add", "http://127.0.0.1:8765/hooks/omikeys", "--events", "all")
    assert added.returncode == 0, added.stderr
    assert "Registered webhook endpoint" in added.stdout
    assert re.search(r"^whsec_\S+$", added.stdout, re.MULTILINE), added.stdout
    # An address elsewhere in a private network stays refused: only this machine is allowed.
    refused = manage("webhookendpoint", "add", "http://10.1.2.3/hooks", "--events", "all")
    assert refused.returncode != 0
    assert "10.1.2.3" in refused.stderr and "Traceback" not in refused.stderr
