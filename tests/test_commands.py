"""The management commands: createapikey, revokeapikey and listapikeys."""

import datetime
import io
import json
import logging
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone
from firebase_admin import auth

from apikeys import crypto, firebase, lifecycle
from apikeys.models import ApiKey, Scope, User

pytestmark = pytest.mark.django_db

MANAGE_PY = Path(settings.BASE_DIR) / "manage.py"
DEFAULT_SCOPES = ["action_items:read", "conversations:read", "goals:read", "memories:read"]


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


@pytest.fixture
def owner():
    return User.objects.for_firebase("local-uid-1", "owner@example.com")


@pytest.fixture
def closed_port():
    """A local port nothing listens on, so connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def firebase_unreachable(monkeypatch, closed_port):
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", f"127.0.0.1:{closed_port}")
    firebase.reset_app()


# createapikey


def test_createapikey_prints_only_the_key_on_stdout_and_a_summary_on_stderr(owner, caplog):
    caplog.set_level(logging.DEBUG)
    stdout, stderr = run("createapikey", "--uid", owner.firebase_uid, "--name", "CI deploy")

    plaintext = stdout.removesuffix("\n")
    assert stdout == plaintext + "\n"
    assert crypto.is_well_formed(plaintext)
    api_key = lifecycle.verify_key(plaintext)
    assert api_key is not None
    assert (api_key.owner, api_key.name) == (owner, "CI deploy")
    assert sorted(api_key.scopes.values_list("code", flat=True)) == DEFAULT_SCOPES
    for fact in [str(api_key.pk), "CI deploy", owner.email, owner.firebase_uid, api_key.key_prefix, *DEFAULT_SCOPES]:
        assert fact in stderr
    assert "only this once" in stderr
    assert plaintext not in stderr
    assert plaintext not in caplog.text
    assert str(api_key.pk) in caplog.text  # the lifecycle's log line was captured, without the secret


def test_createapikey_finds_a_local_user_by_email_case_insensitively_without_asking_firebase(owner, monkeypatch):
    # The owner exists only locally: a Firebase lookup would fail, so success proves it was not made.
    monkeypatch.setattr(firebase, "get_user_by_email", lambda email: pytest.fail("Firebase was asked"))
    stdout, _ = run("createapikey", "--email", "OWNER@Example.com", "--name", "n")
    assert lifecycle.verify_key(stdout.strip()).owner == owner
    assert User.objects.count() == 1


def test_createapikey_grants_the_requested_scopes(owner):
    stdout, stderr = run(
        "createapikey", "--uid", owner.firebase_uid, "--name", "n",
        "--scope", "memories:write", "--scope", "goals:read", "--scope", "memories:write",
    )  # fmt: skip
    api_key = lifecycle.verify_key(stdout.strip())
    assert list(api_key.scopes.values_list("code", flat=True)) == ["goals:read", "memories:write"]
    assert "goals:read, memories:write" in stderr


def test_createapikey_rejects_unknown_scopes_and_lists_the_valid_ones(owner):
    with pytest.raises(CommandError) as error:
        run("createapikey", "--uid", owner.firebase_uid, "--name", "n", "--scope", "memories:read", "--scope", "nope")
    message = str(error.value)
    assert "'nope'" in message
    assert "'memories:read'" not in message
    for code in Scope.objects.values_list("code", flat=True):
        assert code in message
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize(
    ("name", "reason"),
    [("   ", "must not be empty"), ("x" * 101, "at most 100"), ("omi_dev_" + "a" * 32, "looks like it contains")],
)
def test_createapikey_refuses_a_name_that_breaks_the_rules(owner, name, reason):
    with pytest.raises(CommandError, match=f"Invalid --name: .*{reason}"):
        run("createapikey", "--uid", owner.firebase_uid, "--name", name)
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--uid", "a", "--email", "a@example.com"], "not allowed with argument"),
        ([], "one of the arguments --uid --email is required"),
    ],
)
def test_createapikey_needs_exactly_one_of_uid_and_email(args, complaint):
    with pytest.raises(CommandError, match=complaint):
        run("createapikey", *args, "--name", "n")


@pytest.mark.parametrize("args", [["--uid", ""], ["--email", "  "]])
def test_createapikey_refuses_an_empty_owner(args):
    with pytest.raises(CommandError, match="must not be empty"):
        run("createapikey", *args, "--name", "n")


def test_createapikey_asks_for_a_uid_when_several_users_share_the_email():
    User.objects.for_firebase("uid-a", "shared@example.com")
    User.objects.for_firebase("uid-b", "SHARED@example.com")
    with pytest.raises(CommandError, match=r"Several users .*uid-a, uid-b.*--uid"):
        run("createapikey", "--email", "shared@example.com", "--name", "n")
    assert not ApiKey.objects.exists()


def test_createapikey_refuses_an_inactive_local_user(owner):
    owner.is_active = False
    owner.save()
    with pytest.raises(CommandError, match="inactive"):
        run("createapikey", "--uid", owner.firebase_uid, "--name", "n")
    assert not ApiKey.objects.exists()


def test_createapikey_creates_the_local_user_for_an_owner_known_only_to_firebase_by_uid(emulator_user):
    stdout, stderr = run("createapikey", "--uid", emulator_user.uid, "--name", "n")
    created = User.objects.get(firebase_uid=emulator_user.uid)
    assert created.email == emulator_user.email
    assert lifecycle.verify_key(stdout.strip()).owner == created
    assert emulator_user.email in stderr


def test_createapikey_creates_the_local_user_for_an_owner_known_only_to_firebase_by_email(emulator_user):
    stdout, _ = run("createapikey", "--email", emulator_user.email.upper(), "--name", "n")
    created = User.objects.get(firebase_uid=emulator_user.uid)
    assert lifecycle.verify_key(stdout.strip()).owner == created


def test_createapikey_ignores_a_staff_account_that_only_shares_the_email(emulator_user):
    staff = User.objects.create_user(username="staff", email=emulator_user.email, is_staff=True)
    stdout, _ = run("createapikey", "--email", emulator_user.email, "--name", "n")
    api_key = lifecycle.verify_key(stdout.strip())
    assert api_key.owner != staff
    assert api_key.owner.firebase_uid == emulator_user.uid


def test_createapikey_updates_a_stale_local_email_found_through_firebase(emulator_user):
    local = User.objects.for_firebase(emulator_user.uid, "old-address@example.com")
    stdout, _ = run("createapikey", "--email", emulator_user.email, "--name", "n")
    assert lifecycle.verify_key(stdout.strip()).owner == local
    local.refresh_from_db()
    assert local.email == emulator_user.email


@pytest.mark.parametrize(
    ("option", "value"),
    [("--uid", "no-such-uid"), ("--email", "no-such-user@example.com"), ("--email", "not-an-email")],
)
def test_createapikey_reports_an_owner_unknown_locally_and_to_firebase(option, value):
    with pytest.raises(CommandError, match=f"No local user has {option[2:]} '{value}', and Firebase has no user"):
        run("createapikey", option, value, "--name", "n")
    assert not User.objects.exists()
    assert not ApiKey.objects.exists()


def test_createapikey_refuses_a_disabled_firebase_user(emulator_user):
    auth.update_user(emulator_user.uid, disabled=True, app=firebase.get_app())
    with pytest.raises(CommandError, match="disabled"):
        run("createapikey", "--email", emulator_user.email, "--name", "n")
    assert not User.objects.exists()
    assert not ApiKey.objects.exists()


def test_createapikey_leaves_no_new_user_behind_when_the_name_is_refused(emulator_user):
    with pytest.raises(CommandError, match="Invalid --name"):
        run("createapikey", "--uid", emulator_user.uid, "--name", "")
    assert not User.objects.exists()


def test_createapikey_says_when_firebase_cannot_be_reached(firebase_unreachable):
    with pytest.raises(CommandError, match="Firebase could not be asked: Firebase Auth is unavailable"):
        run("createapikey", "--uid", "someone", "--name", "n")
    assert not User.objects.exists()
    assert not ApiKey.objects.exists()


# revokeapikey


def test_revokeapikey_revokes_a_key_so_it_stops_verifying(owner):
    issued = lifecycle.issue_key(owner=owner, name="Reporting")
    stdout, stderr = run("revokeapikey", str(issued.api_key.pk))
    assert stdout == f"{issued.api_key.pk}: revoked ({issued.api_key.key_prefix}, 'Reporting', owner {owner.email}).\n"
    assert stderr == ""
    assert lifecycle.verify_key(issued.plaintext) is None


def test_revokeapikey_reports_an_already_revoked_key_without_failing(owner):
    issued = lifecycle.issue_key(owner=owner, name="n")
    lifecycle.revoke_api_key(issued.api_key)
    revoked_at = ApiKey.objects.get(pk=issued.api_key.pk).revoked_at
    stdout, _ = run("revokeapikey", str(issued.api_key.pk))
    assert f"already revoked at {revoked_at.isoformat(timespec='seconds')}" in stdout
    assert ApiKey.objects.get(pk=issued.api_key.pk).revoked_at == revoked_at


def test_revokeapikey_names_an_unknown_id_and_fails():
    unknown = uuid.uuid4()
    stderr = io.StringIO()
    with pytest.raises(CommandError, match="No key was revoked"):
        call_command("revokeapikey", str(unknown), stdout=io.StringIO(), stderr=stderr)
    assert f"{unknown}: no API key has this id." in stderr.getvalue()


def test_revokeapikey_rejects_a_malformed_id_without_a_query(django_assert_num_queries):
    stderr = io.StringIO()
    with django_assert_num_queries(0), pytest.raises(CommandError, match="No key was revoked"):
        call_command("revokeapikey", "not-a-uuid", stdout=io.StringIO(), stderr=stderr)
    assert "'not-a-uuid': not a key id" in stderr.getvalue()


def test_revokeapikey_still_revokes_the_valid_ids_in_a_mixed_list(owner):
    first = lifecycle.issue_key(owner=owner, name="first")
    second = lifecycle.issue_key(owner=owner, name="second")
    lifecycle.revoke_api_key(second.api_key)
    unknown = uuid.uuid4()
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as error:
        call_command(
            "revokeapikey", "bogus", str(first.api_key.pk), str(unknown), str(second.api_key.pk),
            stdout=stdout, stderr=stderr,
        )  # fmt: skip
    assert str(error.value) == (
        "2 of 4 key ids failed. The valid ones were still handled: 1 revoked, 1 already revoked."
    )
    assert lifecycle.verify_key(first.plaintext) is None
    assert stdout.getvalue().splitlines()[0].startswith(f"{first.api_key.pk}: revoked")
    assert stdout.getvalue().splitlines()[1].startswith(f"{second.api_key.pk}: already revoked at")
    assert len(stdout.getvalue().splitlines()) == 2
    assert stderr.getvalue().splitlines() == [
        "'bogus': not a key id. Key ids are UUIDs such as 00000000-0000-0000-0000-000000000000.",
        f"{unknown}: no API key has this id.",
    ]


def test_revokeapikey_handles_a_repeated_id_once(owner):
    issued = lifecycle.issue_key(owner=owner, name="n")
    key_id = str(issued.api_key.pk)
    stdout, _ = run("revokeapikey", key_id, key_id.upper())
    assert stdout.splitlines() == [f"{key_id}: revoked ({issued.api_key.key_prefix}, 'n', owner {owner.email})."]


# listapikeys


@pytest.fixture
def keys(owner):
    """Three keys of two owners, created a minute apart; the middle one revoked."""
    uid_only = User.objects.for_firebase("uid-without-email", None)
    start = timezone.now() - datetime.timedelta(hours=1)
    made = {}
    for minutes, (name, key_owner, scopes) in enumerate(
        [("oldest", owner, None), ("revoked", owner, ["memories:write"]), ("newest", uid_only, ["goals:read"])]
    ):
        chosen = None if scopes is None else Scope.objects.filter(code__in=scopes)
        api_key = lifecycle.issue_key(owner=key_owner, name=name, scopes=chosen).api_key
        ApiKey.objects.filter(pk=api_key.pk).update(created_at=start + datetime.timedelta(minutes=minutes))
        made[name] = ApiKey.objects.get(pk=api_key.pk)
    lifecycle.revoke_api_key(made["revoked"])
    used = start + datetime.timedelta(minutes=30)
    ApiKey.objects.filter(pk=made["oldest"].pk).update(last_used_at=used)
    made["oldest"].last_used_at = used
    return made


def test_listapikeys_shows_active_keys_newest_first_in_an_aligned_table(keys):
    stdout, _ = run("listapikeys")
    header, newest, oldest, count = stdout.splitlines()
    assert header.split() == "ID PREFIX NAME OWNER SCOPES CREATED (UTC) LAST USED (UTC) STATUS".split()
    assert newest.split() == [
        str(keys["newest"].pk), keys["newest"].key_prefix, "newest", "uid-without-email", "goals:read",
        *keys["newest"].created_at.strftime("%Y-%m-%d %H:%M:%S").split(), "never", "active",
    ]  # fmt: skip
    assert oldest.split() == [
        str(keys["oldest"].pk), keys["oldest"].key_prefix, "oldest", "owner@example.com", ",".join(DEFAULT_SCOPES),
        *keys["oldest"].created_at.strftime("%Y-%m-%d %H:%M:%S").split(),
        *keys["oldest"].last_used_at.strftime("%Y-%m-%d %H:%M:%S").split(), "active",
    ]  # fmt: skip
    for column in ["PREFIX", "NAME", "OWNER", "SCOPES", "CREATED", "LAST USED", "STATUS"]:
        start = header.index(column)
        assert newest[start - 2 : start] == oldest[start - 2 : start] == "  "
        assert newest[start] != " " and oldest[start] != " "
    assert count == "2 active keys."
    assert "revoked" not in stdout


def test_listapikeys_all_includes_revoked_keys(keys):
    stdout, _ = run("listapikeys", "--all")
    lines = stdout.splitlines()
    assert [line.split()[0] for line in lines[1:-1]] == [str(keys[name].pk) for name in ["newest", "revoked", "oldest"]]
    assert lines[2].endswith("revoked")
    assert lines[-1] == "3 keys (2 active, 1 revoked)."


@pytest.mark.parametrize("selector", ["local-uid-1", "OWNER@example.com"])
def test_listapikeys_filters_by_owner_uid_or_email(keys, selector):
    stdout, _ = run("listapikeys", "--all", "--owner", selector)
    assert [line.split()[2] for line in stdout.splitlines()[1:-1]] == ["revoked", "oldest"]


def test_listapikeys_rejects_an_owner_with_no_local_user(keys):
    with pytest.raises(CommandError, match="No local user has the uid or email 'nobody@example.com'"):
        run("listapikeys", "--owner", "nobody@example.com")


def test_listapikeys_json_lists_every_field_but_the_secret(keys):
    stdout, _ = run("listapikeys", "--all", "--json")
    listed = json.loads(stdout)
    assert [item["name"] for item in listed] == ["newest", "revoked", "oldest"]
    oldest = listed[2]
    assert oldest == {
        "id": str(keys["oldest"].pk),
        "key_prefix": keys["oldest"].key_prefix,
        "name": "oldest",
        "owner": "owner@example.com",
        "owner_uid": "local-uid-1",
        "scopes": DEFAULT_SCOPES,
        "created_at": oldest["created_at"],
        "last_used_at": oldest["last_used_at"],
        "revoked_at": None,
        "status": "active",
    }
    assert datetime.datetime.fromisoformat(oldest["created_at"]) == keys["oldest"].created_at
    assert datetime.datetime.fromisoformat(oldest["last_used_at"]) == keys["oldest"].last_used_at
    assert listed[0]["last_used_at"] is None
    assert datetime.datetime.fromisoformat(listed[1]["revoked_at"]) == keys["revoked"].revoked_at
    assert listed[1]["status"] == "revoked"
    for api_key in keys.values():
        assert api_key.key_hash not in stdout


def test_listapikeys_never_prints_a_hash_in_the_table(keys):
    stdout, _ = run("listapikeys", "--all")
    for api_key in keys.values():
        assert api_key.key_hash not in stdout


def test_listapikeys_says_so_when_there_are_no_keys(owner):
    assert run("listapikeys") == ("No active API keys.\n", "")
    assert run("listapikeys", "--all", "--owner", owner.email) == ("No API keys for owner@example.com.\n", "")
    assert json.loads(run("listapikeys", "--json")[0]) == []


def test_listapikeys_query_count_does_not_grow_with_the_number_of_keys(keys, owner, django_assert_num_queries):
    for number in range(5):
        other = User.objects.for_firebase(f"uid-extra-{number}", f"extra-{number}@example.com")
        lifecycle.issue_key(owner=other, name=f"extra {number}")
    with django_assert_num_queries(2):  # the keys with their owners, then all their scopes
        stdout, _ = run("listapikeys", "--all")
    assert stdout.splitlines()[-1] == "8 keys (7 active, 1 revoked)."


# Real processes: exit codes, help, and stdout that a shell can capture.


@pytest.mark.parametrize(
    ("command", "mentions"),
    [
        ("createapikey", ["--uid UID | --email EMAIL", "--name NAME", "--scope CODE", "shown this once"]),
        ("revokeapikey", ["KEY_ID [KEY_ID ...]", "already revoked"]),
        ("listapikeys", ["--owner UID_OR_EMAIL", "--all", "--json", "never the key itself or its hash"]),
    ],
)
def test_every_command_explains_itself_with_help(command, mentions):
    result = manage(command, "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for mention in mentions:
        assert mention in text


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["createapikey", "--uid", "a", "--email", "a@example.com", "--name", "n"], "not allowed with argument --uid"),
        (["createapikey", "--uid", "a"], "the following arguments are required: --name"),
        (["revokeapikey"], "the following arguments are required: KEY_ID"),
        (["listapikeys", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_exit_with_status_2(args, complaint):
    result = manage(*args)
    assert result.returncode == 2
    assert complaint in result.stderr
    assert "Traceback" not in result.stderr


def test_a_malformed_key_id_exits_1_without_opening_the_database(tmp_path):
    unopenable = tmp_path / "missing-directory" / "db.sqlite3"
    result = manage("revokeapikey", "not-a-uuid", DATABASE_URL=f"sqlite:///{unopenable}")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "'not-a-uuid': not a key id" in result.stderr
    assert "CommandError: No key was revoked" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def scratch_database(tmp_path_factory):
    """A migrated SQLite file of its own, since a subprocess cannot see the test database."""
    url = f"sqlite:///{tmp_path_factory.mktemp('scratch') / 'db.sqlite3'}"
    migrated = manage("migrate", "--verbosity", "0", DATABASE_URL=url)
    assert migrated.returncode == 0, migrated.stderr
    return url


def test_a_real_run_prints_a_key_a_shell_can_capture(scratch_database, emulator_user):
    created = manage("createapikey", "--email", emulator_user.email, "--name", "shell", DATABASE_URL=scratch_database)
    assert created.returncode == 0, created.stderr
    plaintext = created.stdout.removesuffix("\n")
    assert created.stdout == plaintext + "\n"
    assert crypto.is_well_formed(plaintext)
    assert plaintext not in created.stderr
    assert "shown only this once" in created.stderr

    listed = manage("listapikeys", "--json", "--owner", emulator_user.uid, DATABASE_URL=scratch_database)
    [api_key] = json.loads(listed.stdout)
    assert api_key["key_prefix"] == crypto.display_prefix(plaintext)
    revoked = manage("revokeapikey", api_key["id"], DATABASE_URL=scratch_database)
    assert revoked.returncode == 0
    assert revoked.stdout.startswith(f"{api_key['id']}: revoked")


def test_a_real_run_exits_1_with_a_clear_message_when_firebase_is_unreachable(scratch_database, closed_port):
    result = manage(
        "createapikey", "--uid", "someone", "--name", "n",
        DATABASE_URL=scratch_database, FIREBASE_AUTH_EMULATOR_HOST=f"127.0.0.1:{closed_port}",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    assert "CommandError: No local user has uid 'someone', and Firebase could not be asked" in result.stderr
    assert "Traceback" not in result.stderr
