"""The sign-in and sign-out pages: a Firebase ID token opens a session, signing out ends it."""

import json
import re
import time

import pytest
from django.contrib.sessions.models import Session
from django.urls import reverse
from firebase_admin import auth

from apikeys import firebase
from apikeys.models import User
from apikeys.web import firebase_sdk

from .. import firebase_emulator
from .pages import firebase_user

pytestmark = pytest.mark.django_db


def test_sign_in_page_loads_the_sdk_from_our_static_files(client):
    page = client.get(reverse("web:signin")).content.decode()
    import_map = json.loads(re.search(r'<script type="importmap"[^>]*>(.*?)</script>', page, re.S).group(1))
    targets = set(import_map["imports"].values())
    assert targets == {f"/static/{firebase_sdk.STATIC_DIR}/{name}" for name in firebase_sdk.MODULES}
    assert f"{firebase_sdk.CDN_BASE}/firebase-app.js" in import_map["imports"]
    assert "https://" not in re.sub(r'"https://www.gstatic.com[^"]*":', "", page.split("<body>")[0])


def test_sign_in_with_a_fresh_emulator_token_opens_a_session_and_returns(client):
    person = firebase_emulator.sign_up()
    response = client.post(reverse("web:signin"), {"id_token": person.id_token, "next": "/keys/new/"})
    assert response.status_code == 302
    assert response["Location"] == "/keys/new/"
    user = User.objects.get(firebase_uid=person.uid)
    assert user.email == person.email
    assert client.get(reverse("web:key-list")).status_code == 200


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/keys/", "javascript:alert(1)", ""])
def test_sign_in_never_redirects_off_site(client, next_url):
    person = firebase_emulator.sign_up()
    response = client.post(reverse("web:signin"), {"id_token": person.id_token, "next": next_url})
    assert response["Location"] == reverse("web:key-list")


def test_sign_in_rotates_the_session_key(client):
    client.get(reverse("web:signin"))
    client.session.save()
    before = client.session.session_key
    client.post(reverse("web:signin"), {"id_token": firebase_emulator.sign_up().id_token})
    assert client.session.session_key != before


def test_a_bad_token_is_refused_with_the_reason(client):
    response = client.post(reverse("web:signin"), {"id_token": "not-a-token"})
    assert response.status_code == 403
    assert "Your sign-in could not be verified. Please sign in again." in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_missing_token_is_400(client):
    response = client.post(reverse("web:signin"), {})
    assert response.status_code == 400
    assert "Sign in with Firebase first." in response.content.decode()


def test_a_disabled_account_is_refused_clearly(client):
    person = firebase_emulator.sign_up()
    auth.update_user(person.uid, disabled=True, app=firebase.get_app())
    response = client.post(reverse("web:signin"), {"id_token": person.id_token})
    assert response.status_code == 403
    assert "This account has been disabled." in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_deactivated_local_account_is_refused(client):
    person = firebase_emulator.sign_up()
    User.objects.filter(pk=firebase_user(person.uid, person.email).pk).update(is_active=False)
    response = client.post(reverse("web:signin"), {"id_token": person.id_token})
    assert response.status_code == 403
    assert "deactivated" in response.content.decode()


def test_a_token_from_an_old_sign_in_cannot_open_a_session(client):
    person = firebase_emulator.sign_up()
    claims = firebase_emulator.decode_claims(person.id_token)
    claims["auth_time"] = int(time.time()) - 10 * 60  # signed in ten minutes ago, token still valid
    response = client.post(reverse("web:signin"), {"id_token": firebase_emulator.unsigned_token(claims)})
    assert response.status_code == 403
    assert "too old" in response.content.decode()


def test_sign_in_says_when_firebase_is_unreachable(client, monkeypatch):
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9")
    firebase.reset_app()
    response = client.post(reverse("web:signin"), {"id_token": firebase_emulator.sign_up().id_token})
    assert response.status_code == 503
    assert "unavailable" in response.content.decode()


def test_a_firebase_sign_in_never_opens_a_staff_session(client):
    person = firebase_emulator.sign_up()
    user = firebase_user(person.uid, person.email)
    User.objects.filter(pk=user.pk).update(is_staff=True)
    response = client.post(reverse("web:signin"), {"id_token": person.id_token})
    assert response.status_code == 403
    assert "Staff accounts cannot sign in here" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("admin:index")).status_code == 302


def test_a_signed_in_visitor_skips_the_sign_in_page(person):
    response = person.get(reverse("web:signin") + "?next=/keys/new/")
    assert response["Location"] == "/keys/new/"


def test_sign_out_ends_the_session_on_the_server(person):
    session_key = person.session.session_key
    assert person.get(reverse("web:signout")).status_code == 405
    response = person.post(reverse("web:signout"))
    assert response["Location"] == reverse("web:signin")
    assert not Session.objects.filter(session_key=session_key).exists()
    assert person.get(reverse("web:key-list")).status_code == 302


def test_sign_in_page_explains_when_web_sign_in_is_not_configured(client, settings):
    settings.FIREBASE_WEB_API_KEY = ""
    page = client.get(reverse("web:signin")).content.decode()
    assert "FIREBASE_WEB_API_KEY is missing" in page
    assert 'id="auth-form"' not in page
