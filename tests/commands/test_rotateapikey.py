"""rotateapikey: a new secret on stdout, the old one stopped now or after a grace period."""

import datetime
import io
import logging
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from firebase_admin import auth

from apikeys import crypto, firebase, lifecycle
from apikeys.models import ApiKey, KeyEvent

from .. import firebase_emulator
from ..helpers import expire
from .running import assert_made_by_command, run

pytestmark = [pytest.mark.django_db, pytest.mark.owner("local-uid-1", "owner@example.com")]


def test_rotateapikey_prints_only_the_new_key_and_the_old_one_stops_at_once(owner, caplog):
    caplog.set_level(logging.DEBUG)
    issued = lifecycle.issue_key(owner=owner, name="Reporting")
    old_prefix = issued.api_key.key_prefix

    stdout, stderr = run("rotateapikey", str(issued.api_key.pk))

    plaintext = stdout.removesuffix("\n")
    assert stdout == plaintext + "\n"
    assert crypto.is_well_formed(plaintext) and plaintext != issued.plaintext
    assert lifecycle.verify_key(plaintext).api_key == issued.api_key
    assert lifecycle.verify_key(issued.plaintext).api_key is None
    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    for fact in [str(api_key.pk), "Reporting", owner.email, api_key.key_prefix, f"(was {old_prefix})"]:
        assert fact in stderr
    assert "old secret: stopped working now" in stderr
    assert "only this once" in stderr
    assert plaintext not in stderr and plaintext not in caplog.text
    (event,) = KeyEvent.objects.filter(api_key=api_key, action="rotated")
    assert_made_by_command(event, "rotateapikey")
    assert event.details == {"grace_seconds": 0, "previous_key_expires_at": None, "previous_key_prefix": old_prefix}


def test_rotateapikey_with_grace_keeps_the_old_secret_working_for_that_long(owner):
    issued = lifecycle.issue_key(owner=owner, name="Reporting")
    before = timezone.now()

    stdout, stderr = run("rotateapikey", str(issued.api_key.pk), "--grace", "3600")

    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    hour = datetime.timedelta(hours=1)
    assert before + hour <= api_key.previous_key_expires_at <= timezone.now() + hour
    assert lifecycle.verify_key(stdout.strip()).api_key == api_key
    assert lifecycle.verify_key(issued.plaintext).api_key == api_key
    until = api_key.previous_key_expires_at.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert f"keeps working until {until} UTC (a grace period of 3600 seconds)" in stderr
    ApiKey.objects.filter(pk=api_key.pk).update(previous_key_expires_at=timezone.now())  # the hour has passed
    assert lifecycle.verify_key(issued.plaintext).api_key is None


@pytest.mark.parametrize("grace", ["-1", "604801"])
def test_rotateapikey_refuses_a_grace_period_out_of_range(owner, grace):
    issued = lifecycle.issue_key(owner=owner, name="n")
    with pytest.raises(CommandError) as error:
        run("rotateapikey", str(issued.api_key.pk), "--grace", grace)
    assert str(error.value) == "Invalid --grace: The grace period must be between 0 and 604800 seconds (7 days)."
    assert lifecycle.verify_key(issued.plaintext).api_key == issued.api_key
    assert not KeyEvent.objects.filter(action="rotated").exists()


def test_rotateapikey_accepts_the_longest_grace_period(owner):
    issued = lifecycle.issue_key(owner=owner, name="n")
    run("rotateapikey", str(issued.api_key.pk), "--grace", "604800")
    assert lifecycle.verify_key(issued.plaintext).api_key == issued.api_key


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
        lifecycle.revoke_key(issued.api_key)
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


# A new secret is a new credential: Firebase is asked about the owner first, as createapikey does.


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda uid: firebase_emulator.update_account(uid, disableUser=True), "is disabled; no new secret was issued"),
        (lambda uid: auth.delete_user(uid, app=firebase.get_app()), "no longer has a Firebase account"),
    ],
    ids=["disabled", "deleted"],
)
def test_rotateapikey_refuses_the_key_of_an_account_firebase_no_longer_allows(owner, change, reason):
    issued = lifecycle.issue_key(owner=owner, name="n")
    change(owner.firebase_uid)
    with pytest.raises(CommandError) as error:
        run("rotateapikey", str(issued.api_key.pk))
    assert reason in str(error.value) and "revokeapikey" in str(error.value)
    assert ApiKey.objects.get(pk=issued.api_key.pk).key_hash == issued.api_key.key_hash
    assert not KeyEvent.objects.filter(action="rotated").exists()


def test_rotateapikey_changes_nothing_when_firebase_cannot_be_asked(owner, firebase_unreachable):
    issued = lifecycle.issue_key(owner=owner, name="n")
    with pytest.raises(CommandError, match="Firebase could not be asked whether the account of owner@example.com"):
        run("rotateapikey", str(issued.api_key.pk))
    assert ApiKey.objects.get(pk=issued.api_key.pk).key_hash == issued.api_key.key_hash


def test_rotateapikey_shows_the_address_firebase_has_now(owner):
    issued = lifecycle.issue_key(owner=owner, name="n")
    firebase_emulator.update_account(owner.firebase_uid, email="renamed-owner@example.com")
    _, stderr = run("rotateapikey", str(issued.api_key.pk))
    assert "renamed-owner@example.com (uid local-uid-1)" in stderr
    owner.refresh_from_db()
    assert owner.email == "renamed-owner@example.com"
