"""The management commands: createapikey, rotateapikey, revokeapikey and listapikeys."""

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
from apikeys.models import ApiKey, KeyEvent, Scope, User

pytestmark = pytest.mark.django_db

MANAGE_PY = Path(settings.BASE_DIR) / "manage.py"
DEFAULT_SCOPES = ["action_items:read", "conversations:read", "goals:read", "memories:read"]


def assert_made_by_command(event: KeyEvent, command: str) -> None:
    assert (event.actor_kind, event.via, event.actor) == ("command", "command", None)
    assert event.actor_label.startswith(f"{command} (run by ")
    assert (event.ip_address, event.user_agent) == (None, "")


def expire(api_key: ApiKey) -> None:
    """Make a key's expiry pass, as time would."""
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - datetime.timedelta(minutes=1))


def in_days(days: int) -> datetime.datetime:
    return timezone.now() + datetime.timedelta(days=days)


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


def test_createapikey_records_the_command_as_the_actor(owner):
    stdout, _ = run("createapikey", "--uid", owner.firebase_uid, "--name", "Audited")
    api_key = lifecycle.verify_key(stdout.strip())
    (event,) = KeyEvent.objects.filter(api_key=api_key)
    assert event.action == "created"
    assert_made_by_command(event, "createapikey")


def test_createapikey_without_an_expiry_issues_a_key_that_never_expires(owner):
    stdout, stderr = run("createapikey", "--uid", owner.firebase_uid, "--name", "Forever")
    assert lifecycle.verify_key(stdout.strip()).expires_at is None
    assert "expires: never" in stderr


def test_createapikey_sets_an_expiry_days_from_now(owner):
    before = timezone.now()
    stdout, stderr = run("createapikey", "--uid", owner.firebase_uid, "--name", "Month", "--expires-in-days", "30")
    after = timezone.now()

    plaintext = stdout.removesuffix("\n")
    assert stdout == plaintext + "\n"
    api_key = lifecycle.verify_key(plaintext)
    month = datetime.timedelta(days=30)
    assert before + month <= api_key.expires_at <= after + month
    assert f"expires: {api_key.expires_at.astimezone(datetime.UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC" in stderr
    (event,) = KeyEvent.objects.filter(api_key=api_key)
    assert event.details["expires_at"] == api_key.expires_at.isoformat()


@pytest.mark.parametrize(
    ("days", "reason"),
    [
        ("0", "The expiry must be in the future."),
        ("-3", "The expiry must be in the future."),
        ("366", "The expiry must be at most 365 days from now."),
        ("99999999999999", "The expiry must be at most 365 days from now."),
    ],
)
def test_createapikey_refuses_an_expiry_the_core_refuses(owner, days, reason):
    with pytest.raises(CommandError) as error:
        run("createapikey", "--uid", owner.firebase_uid, "--name", "n", "--expires-in-days", days)
    assert str(error.value) == f"Invalid --expires-in-days: {reason}"
    assert not ApiKey.objects.exists()


def test_createapikey_refuses_a_bad_expiry_before_asking_firebase_or_creating_a_user(emulator_user, monkeypatch):
    monkeypatch.setattr(firebase, "get_user", lambda uid: pytest.fail("Firebase was asked"))
    with pytest.raises(CommandError, match="Invalid --expires-in-days"):
        run("createapikey", "--uid", emulator_user.uid, "--name", "n", "--expires-in-days", "0")
    assert not User.objects.exists()


def test_createapikey_expiry_limit_follows_the_setting(owner, settings):
    settings.OMIKEYS_MAX_KEY_LIFETIME_DAYS = 10
    with pytest.raises(CommandError, match="at most 10 days"):
        run("createapikey", "--uid", owner.firebase_uid, "--name", "n", "--expires-in-days", "11")
    stdout, _ = run("createapikey", "--uid", owner.firebase_uid, "--name", "n", "--expires-in-days", "10")
    assert lifecycle.verify_key(stdout.strip()) is not None


def test_createapikey_refuses_an_owner_with_the_most_keys_allowed(owner, settings):
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 2
    for name in ("one", "two"):
        lifecycle.issue_key(owner=owner, name=name)
    with pytest.raises(CommandError) as error:
        run("createapikey", "--uid", owner.firebase_uid, "--name", "three")
    assert str(error.value) == (
        "The user owner@example.com (uid local-uid-1) already has 2 active API keys, the most allowed; "
        "no key was issued. Revoke one with revokeapikey first."
    )
    assert ApiKey.objects.count() == 2


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


def test_revokeapikey_records_the_command_as_the_actor(owner):
    issued = lifecycle.issue_key(owner=owner, name="n")
    run("revokeapikey", str(issued.api_key.pk))
    (event,) = KeyEvent.objects.filter(api_key=issued.api_key, action="revoked")
    assert_made_by_command(event, "revokeapikey")


# rotateapikey


def test_rotateapikey_prints_only_the_new_key_and_the_old_one_stops_at_once(owner, caplog):
    caplog.set_level(logging.DEBUG)
    issued = lifecycle.issue_key(owner=owner, name="Reporting")
    old_prefix = issued.api_key.key_prefix

    stdout, stderr = run("rotateapikey", str(issued.api_key.pk))

    plaintext = stdout.removesuffix("\n")
    assert stdout == plaintext + "\n"
    assert crypto.is_well_formed(plaintext) and plaintext != issued.plaintext
    assert lifecycle.verify_key(plaintext) == issued.api_key
    assert lifecycle.verify_key(issued.plaintext) is None
    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    for fact in [str(api_key.pk), "Reporting", owner.email, api_key.key_prefix, f"(was {old_prefix})"]:
        assert fact in stderr
    assert "old secret: stopped working now" in stderr
    assert "only this once" in stderr
    assert plaintext not in stderr and plaintext not in caplog.text
    (event,) = KeyEvent.objects.filter(api_key=api_key, action="rotated")
    assert_made_by_command(event, "rotateapikey")
    assert event.details == {"grace_seconds": 0, "previous_key_expires_at": None}


def test_rotateapikey_with_grace_keeps_the_old_secret_working_for_that_long(owner):
    issued = lifecycle.issue_key(owner=owner, name="Reporting")
    before = timezone.now()

    stdout, stderr = run("rotateapikey", str(issued.api_key.pk), "--grace", "3600")

    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    hour = datetime.timedelta(hours=1)
    assert before + hour <= api_key.previous_key_expires_at <= timezone.now() + hour
    assert lifecycle.verify_key(stdout.strip()) == api_key
    assert lifecycle.verify_key(issued.plaintext) == api_key
    until = api_key.previous_key_expires_at.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert f"keeps working until {until} UTC (a grace period of 3600 seconds)" in stderr
    ApiKey.objects.filter(pk=api_key.pk).update(previous_key_expires_at=timezone.now())  # the hour has passed
    assert lifecycle.verify_key(issued.plaintext) is None


@pytest.mark.parametrize("grace", ["-1", "604801"])
def test_rotateapikey_refuses_a_grace_period_out_of_range(owner, grace):
    issued = lifecycle.issue_key(owner=owner, name="n")
    with pytest.raises(CommandError) as error:
        run("rotateapikey", str(issued.api_key.pk), "--grace", grace)
    assert str(error.value) == "Invalid --grace: The grace period must be between 0 and 604800 seconds (7 days)."
    assert lifecycle.verify_key(issued.plaintext) == issued.api_key
    assert not KeyEvent.objects.filter(action="rotated").exists()


def test_rotateapikey_accepts_the_longest_grace_period(owner):
    issued = lifecycle.issue_key(owner=owner, name="n")
    run("rotateapikey", str(issued.api_key.pk), "--grace", "604800")
    assert lifecycle.verify_key(issued.plaintext) == issued.api_key


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ("revoked", "This key has been revoked; a revoked key cannot be rotated."),
        ("expired", "This key has expired; an expired key cannot be rotated."),
    ],
)
def test_rotateapikey_refuses_a_revoked_or_expired_key(owner, state, reason):
    issued = lifecycle.issue_key(owner=owner, name="n")
    if state == "revoked":
        lifecycle.revoke_api_key(issued.api_key)
    else:
        expire(issued.api_key)
    stdout = io.StringIO()
    with pytest.raises(CommandError) as error:
        call_command("rotateapikey", str(issued.api_key.pk), stdout=stdout, stderr=io.StringIO())
    assert str(error.value) == f"{issued.api_key.pk}: {reason} Nothing changed."
    assert stdout.getvalue() == ""
    assert ApiKey.objects.get(pk=issued.api_key.pk).key_hash == issued.api_key.key_hash


def test_rotateapikey_names_an_unknown_or_malformed_id(django_assert_num_queries):
    unknown = uuid.uuid4()
    with pytest.raises(CommandError, match=f"^{unknown}: no API key has this id.$"):
        run("rotateapikey", str(unknown))
    with django_assert_num_queries(0), pytest.raises(CommandError, match="'nope' is not a key id"):
        run("rotateapikey", "nope")


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
    assert header.split() == [
        *("ID", "PREFIX", "NAME", "OWNER", "SCOPES", "CREATED", "(UTC)"),
        *("LAST", "USED", "(UTC)", "EXPIRES", "(UTC)", "STATUS"),
    ]
    assert newest.split() == [
        str(keys["newest"].pk), keys["newest"].key_prefix, "newest", "uid-without-email", "goals:read",
        *keys["newest"].created_at.strftime("%Y-%m-%d %H:%M:%S").split(), "never", "never", "active",
    ]  # fmt: skip
    assert oldest.split() == [
        str(keys["oldest"].pk), keys["oldest"].key_prefix, "oldest", "owner@example.com", ",".join(DEFAULT_SCOPES),
        *keys["oldest"].created_at.strftime("%Y-%m-%d %H:%M:%S").split(),
        *keys["oldest"].last_used_at.strftime("%Y-%m-%d %H:%M:%S").split(), "never", "active",
    ]  # fmt: skip
    for column in ["PREFIX", "NAME", "OWNER", "SCOPES", "CREATED", "LAST USED", "EXPIRES", "STATUS"]:
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
        "expires_at": None,
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
    assert run("listapikeys") == ("No active or expired API keys.\n", "")
    assert run("listapikeys", "--all", "--owner", owner.email) == ("No API keys for owner@example.com.\n", "")
    assert json.loads(run("listapikeys", "--json")[0]) == []


def test_listapikeys_query_count_does_not_grow_with_the_number_of_keys(keys, owner, django_assert_num_queries):
    for number in range(5):
        other = User.objects.for_firebase(f"uid-extra-{number}", f"extra-{number}@example.com")
        lifecycle.issue_key(owner=other, name=f"extra {number}")
    with django_assert_num_queries(2):  # the keys with their owners, then all their scopes
        stdout, _ = run("listapikeys", "--all")
    assert stdout.splitlines()[-1] == "8 keys (7 active, 1 revoked)."


def test_listapikeys_lists_expired_keys_by_default_and_marks_them(keys, owner):
    later = lifecycle.issue_key(owner=owner, name="later", expires_at=in_days(7)).api_key
    lapsed = lifecycle.issue_key(owner=owner, name="lapsed", expires_at=in_days(1)).api_key
    expire(lapsed)
    lapsed.refresh_from_db()

    stdout, _ = run("listapikeys")

    lines = stdout.splitlines()
    rows = {line.split()[2]: line for line in lines[1:-1]}
    assert set(rows) == {"oldest", "newest", "later", "lapsed"}
    assert rows["lapsed"].split()[-3:] == [*utc_text(lapsed.expires_at).split(), "expired"]
    assert rows["later"].split()[-3:] == [*utc_text(later.expires_at).split(), "active"]
    assert rows["oldest"].split()[-2:] == ["never", "active"]
    assert lines[-1] == "4 keys (3 active, 1 expired)."
    assert run("listapikeys", "--all")[0].splitlines()[-1] == "5 keys (3 active, 1 expired, 1 revoked)."

    listed = {item["name"]: item for item in json.loads(run("listapikeys", "--json")[0])}
    assert set(listed) == {"oldest", "newest", "later", "lapsed"}
    assert listed["lapsed"]["status"] == "expired"
    assert datetime.datetime.fromisoformat(listed["lapsed"]["expires_at"]) == lapsed.expires_at
    assert datetime.datetime.fromisoformat(listed["later"]["expires_at"]) == later.expires_at
    assert (listed["later"]["status"], listed["oldest"]["expires_at"]) == ("active", None)


def test_listapikeys_all_still_adds_revoked_keys_whether_or_not_they_had_expired(keys, owner):
    lapsed_then_revoked = lifecycle.issue_key(owner=owner, name="both").api_key
    expire(lapsed_then_revoked)
    lifecycle.revoke_api_key(lapsed_then_revoked)

    assert "both" not in run("listapikeys")[0]
    statuses = {item["name"]: item["status"] for item in json.loads(run("listapikeys", "--all", "--json")[0])}
    assert statuses == {"oldest": "active", "revoked": "revoked", "newest": "active", "both": "revoked"}


def utc_text(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


# Real processes: exit codes, help, and stdout that a shell can capture.


@pytest.mark.parametrize(
    ("command", "mentions"),
    [
        (
            "createapikey",
            [
                "--uid UID | --email EMAIL",
                "--name NAME",
                "--scope CODE",
                "--expires-in-days DAYS",
                "at most 365",
                "never expires",
                "shown this once",
            ],
        ),  # fmt: skip
        (
            "rotateapikey",
            [
                "KEY_ID",
                "--grace SECONDS",
                "Grace period",
                "keeps working alongside the new one",
                "0 (the default: it stops at once) to 604800 (7 days)",
                "id, name, scopes and expiry stay",
                "shown this once",
            ],
        ),  # fmt: skip
        ("revokeapikey", ["KEY_ID [KEY_ID ...]", "already revoked"]),
        (
            "listapikeys",
            [
                "--owner UID_OR_EMAIL",
                "--all",
                "--json",
                "never the key itself or its hash",
                "marked expired",
                "expires_at",
            ],
        ),  # fmt: skip
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
        (["createapikey", "--uid", "a", "--name", "n", "--expires-in-days", "soon"], "invalid int value: 'soon'"),
        (["rotateapikey"], "the following arguments are required: KEY_ID"),
        (["rotateapikey", str(uuid.UUID(int=1)), "--grace", "an hour"], "invalid int value: 'an hour'"),
        (["rotateapikey", str(uuid.UUID(int=1)), str(uuid.UUID(int=2))], "unrecognized arguments"),
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


def test_a_real_rotation_prints_a_key_a_shell_can_capture_and_fails_with_1_when_it_cannot(
    scratch_database, emulator_user
):
    def listed():
        result = manage("listapikeys", "--json", "--owner", emulator_user.uid, DATABASE_URL=scratch_database)
        return json.loads(result.stdout)

    email = emulator_user.email
    created = manage("createapikey", "--email", email, "--name", "rotating", DATABASE_URL=scratch_database)
    assert created.returncode == 0, created.stderr
    [api_key] = listed()

    rotated = manage("rotateapikey", api_key["id"], "--grace", "60", DATABASE_URL=scratch_database)

    assert rotated.returncode == 0, rotated.stderr
    plaintext = rotated.stdout.removesuffix("\n")
    assert rotated.stdout == plaintext + "\n"
    assert crypto.is_well_formed(plaintext) and plaintext != created.stdout.strip()
    assert plaintext not in rotated.stderr
    assert "a grace period of 60 seconds" in rotated.stderr
    [after] = listed()
    assert after["key_prefix"] == crypto.display_prefix(plaintext)

    assert manage("revokeapikey", api_key["id"], DATABASE_URL=scratch_database).returncode == 0
    refused = manage("rotateapikey", api_key["id"], DATABASE_URL=scratch_database)
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert "a revoked key cannot be rotated" in refused.stderr
    assert "Traceback" not in refused.stderr
    unknown = manage("rotateapikey", str(uuid.UUID(int=7)), DATABASE_URL=scratch_database)
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert "no API key has this id" in unknown.stderr
    bad_grace = manage("rotateapikey", api_key["id"], "--grace", "-5", DATABASE_URL=scratch_database)
    assert (bad_grace.returncode, bad_grace.stdout) == (1, "")
    assert "Invalid --grace" in bad_grace.stderr


def test_a_real_createapikey_with_a_refused_expiry_exits_1(tmp_path):
    unopenable = tmp_path / "missing-directory" / "db.sqlite3"
    result = manage(
        "createapikey", "--uid", "someone", "--name", "n", "--expires-in-days", "400",
        DATABASE_URL=f"sqlite:///{unopenable}",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    assert "CommandError: Invalid --expires-in-days: The expiry must be at most 365 days from now." in result.stderr
    assert "Traceback" not in result.stderr
