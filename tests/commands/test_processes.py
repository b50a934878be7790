"""The commands as real processes: exit codes, help, and stdout that a shell can capture."""

import json
import uuid

import pytest

from apikeys import crypto

from .. import firebase_emulator
from .running import manage

pytestmark = pytest.mark.django_db


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
        ("disableapikey", ["KEY_ID [KEY_ID ...]", "--reason TEXT", "keeps its secret", "already disabled"]),
        ("enableapikey", ["KEY_ID [KEY_ID ...]", "verify again", "not disabled"]),
        (
            "listapikeys",
            [
                "--owner UID_OR_EMAIL",
                "--all",
                "--json",
                "never the key itself or its hash",
                "marked expired",
                "marked disabled",
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
        (["disableapikey"], "the following arguments are required: KEY_ID"),
        (["enableapikey", str(uuid.UUID(int=1)), "--reason", "x"], "unrecognized arguments: --reason"),
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
    firebase_emulator.update_account(emulator_user.uid, emailVerified=True)
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
    assert "CommandError: Firebase could not be asked who holds uid 'someone'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_real_rotation_prints_a_key_a_shell_can_capture_and_fails_with_1_when_it_cannot(
    scratch_database, emulator_user
):
    def listed():
        result = manage("listapikeys", "--json", "--owner", emulator_user.uid, DATABASE_URL=scratch_database)
        return json.loads(result.stdout)

    email = emulator_user.email
    firebase_emulator.update_account(emulator_user.uid, emailVerified=True)
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


def test_a_real_createapikey_for_an_account_disabled_in_firebase_exits_1_with_the_reason(scratch_database):
    person = firebase_emulator.sign_up()
    firebase_emulator.update_account(person.uid, disableUser=True)
    result = manage("createapikey", "--uid", person.uid, "--name", "n", DATABASE_URL=scratch_database)
    assert (result.returncode, result.stdout) == (1, "")
    assert f"The Firebase account {person.uid} ({person.email}) is disabled; no key was issued." in result.stderr
    assert "Traceback" not in result.stderr


def test_a_real_createapikey_for_an_unverified_address_exits_1_and_names_the_flag(scratch_database):
    person = firebase_emulator.sign_up()
    result = manage("createapikey", "--email", person.email, "--name", "n", DATABASE_URL=scratch_database)
    assert (result.returncode, result.stdout) == (1, "")
    assert "--allow-unverified-email" in result.stderr
    allowed = manage(
        "createapikey", "--email", person.email, "--name", "n", "--allow-unverified-email",
        DATABASE_URL=scratch_database,
    )  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr
    assert crypto.is_well_formed(allowed.stdout.strip())


def test_a_real_run_that_queues_notice_mail_prints_no_worker_queue_lines(scratch_database, emulator_user):
    # createapikey queues the "key created" notice, disableapikey and revokeapikey the "changed by
    # someone else" one: django-q's "Enqueued [omikeys] 35" lines are no business of the operator's.
    # Mail on (the worker is not running: the notices wait in the queue).
    env = {
        "DATABASE_URL": scratch_database,
        "EMAIL_URL": "smtp://127.0.0.1:1",
        "DEFAULT_FROM_EMAIL": "keys@example.com",
        "OMIKEYS_PUBLIC_URL": "https://keys.example.com",
    }
    firebase_emulator.update_account(emulator_user.uid, emailVerified=True)
    created = manage("createapikey", "--email", emulator_user.email, "--name", "quiet", **env)
    assert created.returncode == 0, created.stderr
    listed = manage("listapikeys", "--json", "--owner", emulator_user.uid, **env)
    key_id = next(key["id"] for key in json.loads(listed.stdout) if key["name"] == "quiet")
    disabled = manage("disableapikey", key_id, "--reason", "checking a leak", **env)
    revoked = manage("revokeapikey", key_id, **env)
    queued = manage("shell", "-c", "from django_q.models import OrmQ; print(OrmQ.objects.count())", **env)
    # The mail was queued each time, so django-q had cause to log its line.
    assert int(queued.stdout.split()[-1]) >= 3, queued.stderr

    for result in (created, disabled, revoked):
        assert result.returncode == 0, result.stderr
        assert "Enqueued" not in result.stderr and "django-q" not in result.stderr, result.stderr
    assert disabled.stdout.startswith(f"{key_id}: disabled")
