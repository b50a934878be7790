"""createapikey: issuing a key from the command line, for a local or a Firebase user."""

import datetime
import logging

import pytest
from django.core.management import CommandError
from django.utils import timezone
from firebase_admin import auth

from apikeys import crypto, firebase, lifecycle
from apikeys.models import ApiKey, KeyEvent, Scope, User

from .running import DEFAULT_SCOPES, assert_made_by_command, run

pytestmark = [pytest.mark.django_db, pytest.mark.owner("local-uid-1", "owner@example.com")]


def test_createapikey_prints_only_the_key_on_stdout_and_a_summary_on_stderr(owner, caplog):
    caplog.set_level(logging.DEBUG)
    stdout, stderr = run("createapikey", "--uid", owner.firebase_uid, "--name", "CI deploy")

    plaintext = stdout.removesuffix("\n")
    assert stdout == plaintext + "\n"
    assert crypto.is_well_formed(plaintext)
    api_key = lifecycle.verify_key(plaintext).api_key
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
    assert lifecycle.verify_key(stdout.strip()).api_key.owner == owner
    assert User.objects.count() == 1


def test_createapikey_grants_the_requested_scopes(owner):
    stdout, stderr = run(
        "createapikey", "--uid", owner.firebase_uid, "--name", "n",
        "--scope", "memories:write", "--scope", "goals:read", "--scope", "memories:write",
    )  # fmt: skip
    api_key = lifecycle.verify_key(stdout.strip()).api_key
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
    assert lifecycle.verify_key(stdout.strip()).api_key.owner == created
    assert emulator_user.email in stderr


def test_createapikey_creates_the_local_user_for_an_owner_known_only_to_firebase_by_email(emulator_user):
    stdout, _ = run("createapikey", "--email", emulator_user.email.upper(), "--name", "n")
    created = User.objects.get(firebase_uid=emulator_user.uid)
    assert lifecycle.verify_key(stdout.strip()).api_key.owner == created


def test_createapikey_ignores_a_staff_account_that_only_shares_the_email(emulator_user):
    staff = User.objects.create_user(username="staff", email=emulator_user.email, is_staff=True)
    stdout, _ = run("createapikey", "--email", emulator_user.email, "--name", "n")
    api_key = lifecycle.verify_key(stdout.strip()).api_key
    assert api_key.owner != staff
    assert api_key.owner.firebase_uid == emulator_user.uid


def test_createapikey_updates_a_stale_local_email_found_through_firebase(emulator_user):
    local = User.objects.for_firebase(emulator_user.uid, "old-address@example.com")
    stdout, _ = run("createapikey", "--email", emulator_user.email, "--name", "n")
    assert lifecycle.verify_key(stdout.strip()).api_key.owner == local
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
    api_key = lifecycle.verify_key(stdout.strip()).api_key
    (event,) = KeyEvent.objects.filter(api_key=api_key)
    assert event.action == "created"
    assert_made_by_command(event, "createapikey")


def test_createapikey_without_an_expiry_issues_a_key_that_never_expires(owner):
    stdout, stderr = run("createapikey", "--uid", owner.firebase_uid, "--name", "Forever")
    assert lifecycle.verify_key(stdout.strip()).api_key.expires_at is None
    assert "expires: never" in stderr


def test_createapikey_sets_an_expiry_days_from_now(owner):
    before = timezone.now()
    stdout, stderr = run("createapikey", "--uid", owner.firebase_uid, "--name", "Month", "--expires-in-days", "30")
    after = timezone.now()

    plaintext = stdout.removesuffix("\n")
    assert stdout == plaintext + "\n"
    api_key = lifecycle.verify_key(plaintext).api_key
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
    assert lifecycle.verify_key(stdout.strip()).api_key is not None


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
