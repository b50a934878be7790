"""createapikey: issuing a key from the command line, for a local or a Firebase user."""

import datetime
import logging

import pytest
from django.core.management import CommandError
from django.utils import timezone
from firebase_admin import auth

from apikeys import crypto, firebase, lifecycle
from apikeys.models import ApiKey, KeyEvent, Scope, User

from .. import firebase_emulator
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


def test_createapikey_finds_the_owner_by_email_case_insensitively(owner):
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


def test_createapikey_gives_the_key_to_the_account_firebase_says_holds_a_shared_address(emulator_user):
    """Local copies can disagree (stale addresses); Firebase decides, and the stale copies are brought up to date."""
    firebase_emulator.update_account(emulator_user.uid, emailVerified=True)
    elsewhere = firebase_emulator.sign_up()
    stale = User.objects.for_firebase(elsewhere.uid, emulator_user.email.upper())
    stdout, stderr = run("createapikey", "--email", emulator_user.email, "--name", "n")
    assert lifecycle.verify_key(stdout.strip()).api_key.owner.firebase_uid == emulator_user.uid
    stale.refresh_from_db()
    assert stale.email == elsewhere.email
    assert f"uid {elsewhere.uid} showed this address" in stderr and "local copy was updated" in stderr


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
    firebase_emulator.update_account(emulator_user.uid, emailVerified=True)
    stdout, _ = run("createapikey", "--email", emulator_user.email.upper(), "--name", "n")
    created = User.objects.get(firebase_uid=emulator_user.uid)
    assert lifecycle.verify_key(stdout.strip()).api_key.owner == created


def test_createapikey_ignores_a_staff_account_that_only_shares_the_email(emulator_user):
    firebase_emulator.update_account(emulator_user.uid, emailVerified=True)
    staff = User.objects.create_user(username="staff", email=emulator_user.email, is_staff=True)
    stdout, _ = run("createapikey", "--email", emulator_user.email, "--name", "n")
    api_key = lifecycle.verify_key(stdout.strip()).api_key
    assert api_key.owner != staff
    assert api_key.owner.firebase_uid == emulator_user.uid


def test_createapikey_updates_a_stale_local_email_found_through_firebase(emulator_user):
    firebase_emulator.update_account(emulator_user.uid, emailVerified=True)
    local = User.objects.for_firebase(emulator_user.uid, "old-address@example.com")
    stdout, _ = run("createapikey", "--email", emulator_user.email, "--name", "n")
    assert lifecycle.verify_key(stdout.strip()).api_key.owner == local
    local.refresh_from_db()
    assert local.email == emulator_user.email


@pytest.mark.parametrize(
    ("option", "value"),
    [("--uid", "no-such-uid"), ("--email", "no-such-user@example.com"), ("--email", "not-an-email")],
)
def test_createapikey_reports_an_owner_unknown_to_firebase(option, value):
    with pytest.raises(CommandError, match=f"Firebase has no user with {option[2:]} '{value}'.* No key was issued"):
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
    with pytest.raises(CommandError, match="Firebase could not be asked who holds uid 'someone'.*unavailable"):
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


# Firebase is asked every time: the local copy of a user is never trusted to issue a key.


@pytest.mark.parametrize("by", ["--uid", "--email"])
def test_createapikey_refuses_an_owner_disabled_in_firebase_since_omikeys_last_saw_them(owner, by):
    run("createapikey", "--uid", owner.firebase_uid, "--name", "before")  # seen and given a key
    firebase_emulator.update_account(owner.firebase_uid, disableUser=True)
    selector = owner.firebase_uid if by == "--uid" else owner.email
    with pytest.raises(CommandError, match=r"The Firebase account local-uid-1 \(owner@example.com\) is disabled"):
        run("createapikey", by, selector, "--name", "after")
    assert list(ApiKey.objects.values_list("name", flat=True)) == ["before"]


def test_createapikey_follows_an_address_to_the_account_that_holds_it_now(emulator_user):
    """A changed address, then B signed up with A's old one: --email <old address> is B's key, never A's."""
    address = emulator_user.email
    firebase_emulator.update_account(emulator_user.uid, emailVerified=True)
    first, _ = run("createapikey", "--email", address, "--name", "A's key")
    alice = lifecycle.verify_key(first.strip()).api_key.owner
    assert alice.firebase_uid == emulator_user.uid

    moved_to = f"moved-{address}"
    firebase_emulator.update_account(emulator_user.uid, email=moved_to, emailVerified=True)
    bob = firebase_emulator.sign_up(address)
    firebase_emulator.update_account(bob.uid, emailVerified=True)

    second, stderr = run("createapikey", "--email", address, "--name", "B's key")
    owner = lifecycle.verify_key(second.strip()).api_key.owner
    assert owner.firebase_uid == bob.uid
    assert owner.email == address
    alice.refresh_from_db()
    assert alice.email == moved_to
    assert ApiKey.objects.filter(owner=alice).count() == 1
    assert f"it is now {moved_to}" in stderr


def test_createapikey_refuses_an_address_firebase_has_not_verified(emulator_user):
    with pytest.raises(CommandError) as error:
        run("createapikey", "--email", emulator_user.email, "--name", "n")
    message = str(error.value)
    assert f"Firebase has not verified the address {emulator_user.email!r}" in message
    assert emulator_user.uid in message and "--allow-unverified-email" in message
    assert not ApiKey.objects.exists()
    assert not User.objects.exists()


def test_createapikey_issues_to_an_unverified_address_when_the_operator_allows_it(emulator_user):
    stdout, _ = run("createapikey", "--email", emulator_user.email, "--name", "n", "--allow-unverified-email")
    assert lifecycle.verify_key(stdout.strip()).api_key.owner.firebase_uid == emulator_user.uid


def test_createapikey_by_uid_does_not_need_a_verified_address(emulator_user):
    stdout, _ = run("createapikey", "--uid", emulator_user.uid, "--name", "n")
    assert lifecycle.verify_key(stdout.strip()).api_key.owner.firebase_uid == emulator_user.uid


def test_createapikey_refuses_an_account_deleted_in_firebase_and_says_the_local_copy_is_stale(owner):
    auth.delete_user(owner.firebase_uid, app=firebase.get_app())
    for by, selector in (("--uid", owner.firebase_uid), ("--email", owner.email)):
        with pytest.raises(CommandError) as error:
            run("createapikey", by, selector, "--name", "n")
        assert "Firebase has no user" in str(error.value)
        assert "The local copy (owner@example.com (uid local-uid-1)) is out of date" in str(error.value)
    assert not ApiKey.objects.exists()


def test_createapikey_never_falls_back_to_the_local_copy_when_firebase_cannot_be_asked(owner, firebase_unreachable):
    with pytest.raises(CommandError, match="Firebase could not be asked who holds email 'owner@example.com'"):
        run("createapikey", "--email", owner.email, "--name", "n")
    assert not ApiKey.objects.exists()
