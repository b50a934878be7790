"""syncfirebaseusers against the Auth Emulator: accounts disabled or deleted there deactivated, re-enabled ones back."""

import time
import uuid

import pytest
from django.core.management.base import CommandError

from apikeys import firebase, lifecycle
from apikeys.models import ApiKey, User

from .. import firebase_emulator
from ..helpers import issue, make_owner
from .running import run

pytestmark = pytest.mark.django_db


def firebase_user() -> User:
    """A user with a Firebase account (enabled) and a key."""
    account = firebase_emulator.sign_up()
    user = make_owner(account.uid, account.email)
    user.key = issue(user).plaintext
    return user


def verdict(plaintext: str) -> str:
    return lifecycle.judge_key(plaintext, client_address="192.0.2.1").code


def state(user: User) -> tuple[bool, str]:
    user.refresh_from_db()
    return user.is_active, user.deactivation_reason


def test_disabled_and_deleted_accounts_are_deactivated_and_their_keys_stop_unrevoked():
    enabled, disabled, deleted = firebase_user(), firebase_user(), firebase_user()
    firebase_emulator.update_account(disabled.firebase_uid, disableUser=True)
    firebase_emulator.delete_account(deleted.firebase_uid)

    out, err = run("syncfirebaseusers")

    assert state(enabled) == (True, "")
    assert state(disabled) == (False, "firebase_disabled")
    assert state(deleted) == (False, "firebase_deleted")
    assert f"uid {disabled.firebase_uid}): deactivated (disabled in Firebase)." in out
    assert f"uid {deleted.firebase_uid}): deactivated (deleted in Firebase)." in out
    assert enabled.firebase_uid not in out
    assert [verdict(user.key) for user in (enabled, disabled, deleted)] == ["VALID", "OWNER_INACTIVE", "OWNER_INACTIVE"]
    assert not ApiKey.objects.filter(revoked_at__isnull=False).exists()
    assert "deactivated: 2" in err


def test_an_account_enabled_again_is_reactivated_and_its_keys_work_again():
    user = firebase_user()
    firebase_emulator.update_account(user.firebase_uid, disableUser=True)
    run("syncfirebaseusers")
    firebase_emulator.update_account(user.firebase_uid, disableUser=False)

    out, _ = run("syncfirebaseusers")

    assert state(user) == (True, "")
    assert "reactivated (enabled in Firebase again)" in out
    assert verdict(user.key) == "VALID"


def test_staff_deactivations_and_erasures_are_never_undone():
    by_staff, erased = firebase_user(), firebase_user()
    User.objects.filter(pk=by_staff.pk).update(is_active=False, deactivation_reason="staff")
    lifecycle.erase_user(erased, actor=None)

    out, _ = run("syncfirebaseusers")

    assert state(by_staff) == (False, "staff")
    assert state(erased) == (False, "erased")
    assert out == ""


def test_a_second_run_changes_nothing():
    user = firebase_user()
    firebase_emulator.update_account(user.firebase_uid, disableUser=True)
    run("syncfirebaseusers")

    out, err = run("syncfirebaseusers")

    assert out == ""
    assert "deactivated: 0" in err and "reactivated: 0" in err


def test_overlapping_runs_report_each_change_once():
    user = firebase_user()
    firebase_emulator.update_account(user.firebase_uid, disableUser=True)
    # Two runs that read the same users before either wrote.
    first_read, second_read = list(lifecycle.users_to_sync()), list(lifecycle.users_to_sync())
    found, not_found = firebase.get_users([u.firebase_uid for u in first_read])

    first = lifecycle.apply_firebase_states(first_read, found, not_found)
    second = lifecycle.apply_firebase_states(second_read, found, not_found)

    assert [change.user.pk for change in first] == [user.pk]
    assert second == []
    assert state(user) == (False, "firebase_disabled")


def test_a_dry_run_reports_and_changes_nothing():
    user = firebase_user()
    firebase_emulator.update_account(user.firebase_uid, disableUser=True)

    out, err = run("syncfirebaseusers", "--dry-run")

    assert "would be deactivated (disabled in Firebase)" in out
    assert "nothing was changed" in err
    assert state(user) == (True, "")


def test_users_are_asked_about_in_batches_of_100(monkeypatch):
    # Uids Firebase has never seen: every one is deleted as far as it knows.
    User.objects.bulk_create(
        User(username=f"firebase:{uid}", firebase_uid=uid)
        for uid in (f"gone-{n:03d}-{uuid.uuid4().hex[:6]}" for n in range(250))
    )
    calls = []
    real_get_users = firebase.get_users

    def counting(uids):
        calls.append(len(uids))
        return real_get_users(uids)

    monkeypatch.setattr(firebase, "get_users", counting)

    out, err = run("syncfirebaseusers", "--verbosity", "2")

    assert calls == [100, 100, 50]
    assert User.objects.filter(is_active=False, deactivation_reason="firebase_deleted").count() == 250
    assert "Checked 100 of 250 users." in err and "Checked 250 of 250 users." in err


def test_firebase_unreachable_stops_with_a_clear_message_within_the_timeouts(firebase_unreachable):
    firebase_user_uid = f"someone-{uuid.uuid4().hex[:8]}"
    make_owner(firebase_user_uid)
    started = time.monotonic()

    with pytest.raises(CommandError, match="Firebase could not be asked about the accounts"):
        run("syncfirebaseusers")

    assert time.monotonic() - started < 30
    assert User.objects.get(firebase_uid=firebase_user_uid).is_active
