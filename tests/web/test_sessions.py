"""Sessions follow the Firebase account: disabled, signed-out and deleted accounts lose them."""

import time

import pytest
from django.urls import reverse
from firebase_admin import auth

from apikeys import firebase
from apikeys.models import ApiKey
from apikeys.web import accounts

from .. import firebase_emulator
from .pages import create_form_token, post_new_key

pytestmark = pytest.mark.django_db


def expire_check(client):
    session = client.session
    session[accounts.CHECKED_AT_KEY] = time.time() - accounts.RECHECK_SECONDS - 1
    session.save()


def test_a_session_ends_when_the_account_is_disabled(person):
    assert person.get(reverse("web:key-list")).status_code == 200
    auth.update_user(person.account.uid, disabled=True, app=firebase.get_app())
    assert person.get(reverse("web:key-list")).status_code == 200  # until the next check is due
    expire_check(person)
    response = person.get(reverse("web:key-list"))
    assert response["Location"] == f"{reverse('web:signin')}?next={reverse('web:key-list')}"
    assert "_auth_user_id" not in person.session
    assert "This account has been disabled." in person.get(response["Location"]).content.decode()


def test_a_session_ends_when_firebase_sessions_are_revoked(person):
    time.sleep(1.1)  # Firebase records revocation to the second
    auth.revoke_refresh_tokens(person.account.uid, app=firebase.get_app())
    expire_check(person)
    response = person.get(reverse("web:key-list"))
    assert response.status_code == 302
    assert "Your sessions were ended" in person.get(response["Location"]).content.decode()


def test_a_session_opened_before_the_issued_at_was_kept_stands_until_revocation(person):
    session = person.session
    del session[accounts.TOKEN_ISSUED_AT_KEY]
    session[accounts.AUTH_TIME_KEY] = int(firebase_emulator.lookup(person.account.uid)["validSince"])
    session.save()
    expire_check(person)
    assert person.get(reverse("web:key-list")).status_code == 200
    time.sleep(1.1)
    auth.revoke_refresh_tokens(person.account.uid, app=firebase.get_app())
    expire_check(person)
    assert person.get(reverse("web:key-list")).status_code == 302


def test_a_session_opened_with_the_token_of_a_password_change_stands(client):
    person = firebase_emulator.sign_up()
    time.sleep(1.1)  # Firebase records validSince to the second
    fresh = firebase_emulator.change_password(person.id_token)
    claims = firebase_emulator.decode_claims(fresh)
    valid_since = int(firebase_emulator.lookup(person.uid)["validSince"])
    assert claims["auth_time"] < valid_since <= claims["iat"]  # the case: signed in before, token issued after

    assert client.post(reverse("web:signin"), {"id_token": fresh}).status_code == 302
    assert client.session[accounts.AUTH_TIME_KEY] == claims["auth_time"]  # still written, for earlier versions
    expire_check(client)
    assert client.get(reverse("web:key-list")).status_code == 200
    assert "_auth_user_id" in client.session


def test_a_session_ends_when_the_account_is_deleted(person):
    auth.delete_user(person.account.uid, app=firebase.get_app())
    expire_check(person)
    assert person.get(reverse("web:key-list")).status_code == 302
    assert "_auth_user_id" not in person.session


def test_creating_a_key_always_checks_the_account_first(person):
    token = create_form_token(person)
    auth.update_user(person.account.uid, disabled=True, app=firebase.get_app())
    response = post_new_key(person, token=token)  # no check was due, but creation asks anyway
    assert response.status_code == 302
    assert not ApiKey.objects.exists()


def test_no_key_is_created_when_firebase_cannot_confirm_the_account(person, monkeypatch):
    token = create_form_token(person)
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9")
    firebase.reset_app()
    response = post_new_key(person, name="Kept", token=token)
    assert response.status_code == 503
    assert "could not be confirmed" in response.content.decode()
    assert 'value="Kept"' in response.content.decode()
    assert not ApiKey.objects.exists()
    expire_check(person)
    assert person.get(reverse("web:key-list")).status_code == 200  # a routine check lets the session stand


def test_a_form_with_errors_keeps_its_valid_token(person):
    token = create_form_token(person)
    page = post_new_key(person, name="   ", token=token).content.decode()
    assert f'name="form_token" value="{token}"' in page
