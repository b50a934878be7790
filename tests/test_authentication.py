"""Firebase ID-token authentication of the key API: every way in, and every way to be refused."""

import os
import subprocess
import sys
import time
from pathlib import Path

import google.auth.exceptions
import google.oauth2.id_token
import pytest
from firebase_admin import auth

from apikeys import firebase, lifecycle
from apikeys.models import User

from . import firebase_emulator
from .helpers import free_port

pytestmark = pytest.mark.django_db

URL = "/v1/dev/keys"
ROOT = Path(__file__).resolve().parent.parent


def assert_401(response, *, mentions: str | None = None, token: str | None = None):
    assert response.status_code == 401, response.content
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"].startswith("Bearer")
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    if mentions:
        assert mentions.lower() in detail.lower(), detail
    if token:
        assert token not in response.content.decode()
        assert token[-20:] not in response.content.decode()


def bearer(api, token):
    return api.get(URL, HTTP_AUTHORIZATION=f"Bearer {token}")


def test_a_valid_emulator_token_is_accepted_and_maps_to_one_user(api, emulator_user):
    assert bearer(api, emulator_user.id_token).status_code == 200
    assert bearer(api, emulator_user.id_token).status_code == 200
    user = User.objects.get(firebase_uid=emulator_user.uid)
    assert user.email == emulator_user.email
    assert not user.has_usable_password()
    assert User.objects.filter(firebase_uid=emulator_user.uid).count() == 1


def test_email_changes_in_firebase_are_copied_to_the_user(api, emulator_user):
    bearer(api, emulator_user.id_token)
    new_email = f"renamed-{emulator_user.email}"
    auth.update_user(emulator_user.uid, email=new_email, app=firebase.get_app())
    token = firebase_emulator.sign_in(new_email)
    assert bearer(api, token).status_code == 200
    assert User.objects.get(firebase_uid=emulator_user.uid).email == new_email


def test_missing_header_is_401(api):
    assert_401(api.get(URL), mentions="Bearer")


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Token abc", "bearer"])
def test_other_schemes_and_empty_bearer_are_401(api, header):
    assert_401(api.get(URL, HTTP_AUTHORIZATION=header))


def test_bearer_with_two_parts_is_401(api):
    assert_401(api.get(URL, HTTP_AUTHORIZATION="Bearer one two"), mentions="Malformed")


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "x" * 9000])
def test_malformed_tokens_are_401_and_not_echoed(api, token):
    assert_401(bearer(api, token), token=token)


def test_non_ascii_token_is_401(api):
    assert_401(api.get(URL, HTTP_AUTHORIZATION="Bearer t\u00f6ken".encode().decode("latin-1")))


def test_an_api_key_is_not_a_firebase_token(api):
    key = "omi_dev_" + "a" * 32
    assert_401(bearer(api, key), mentions="Firebase ID token", token=key)


def test_a_token_for_another_project_is_401(api, emulator_user):
    claims = firebase_emulator.decode_claims(emulator_user.id_token)
    claims.update(aud="another-project", iss="https://securetoken.google.com/another-project")
    token = firebase_emulator.unsigned_token(claims)
    assert_401(bearer(api, token), mentions="this project", token=token)


def test_a_revoked_session_is_401(api, emulator_user):
    assert bearer(api, emulator_user.id_token).status_code == 200
    time.sleep(1.1)  # revocation times have one-second resolution
    auth.revoke_refresh_tokens(emulator_user.uid, app=firebase.get_app())
    assert_401(bearer(api, emulator_user.id_token), mentions="revoked")


def test_a_disabled_user_is_401(api, emulator_user):
    auth.update_user(emulator_user.uid, disabled=True, app=firebase.get_app())
    assert_401(bearer(api, emulator_user.id_token), mentions="disabled")


def test_a_deleted_user_is_401(api, emulator_user):
    auth.delete_user(emulator_user.uid, app=firebase.get_app())
    assert_401(bearer(api, emulator_user.id_token), mentions="no longer exists")


def test_a_user_deactivated_by_staff_is_401(api, emulator_user):
    bearer(api, emulator_user.id_token)
    User.objects.filter(firebase_uid=emulator_user.uid).update(is_active=False)
    assert_401(bearer(api, emulator_user.id_token), mentions="deactivated")


def test_an_erased_user_is_401_without_blaming_an_administrator(api, emulator_user):
    """An erasure comes from a service (or syncfirebaseusers deactivates): the message names no one."""
    bearer(api, emulator_user.id_token)
    lifecycle.erase_user(User.objects.get(firebase_uid=emulator_user.uid), actor=None)
    response = bearer(api, emulator_user.id_token)
    assert_401(response, mentions="deactivated")
    assert "administrator" not in response.json()["detail"]
    assert response.json()["detail"] == (
        "This account has been deactivated. Contact support if you think this is a mistake."
    )


# Signature and expiry: checked by firebase-admin only outside emulator mode (see conftest).


def test_a_locally_signed_valid_token_passes_signature_checks(api, signed_tokens, monkeypatch):
    """Control for the seam: a well-signed token gets past verification (then needs Firebase's API)."""
    response = bearer(api, signed_tokens.mint())
    # The revocation check then needs Firebase's API, which the made-up service account cannot reach.
    assert response.status_code == 503
    assert response.json() == {"detail": "Firebase Auth is unavailable. Try again shortly."}


def test_an_expired_token_is_401(api, signed_tokens):
    token = signed_tokens.mint(issued=time.time() - 7200, lifetime=3600)
    assert_401(bearer(api, token), mentions="expired", token=token)


def test_a_token_signed_with_an_unknown_key_is_401(api, signed_tokens, foreign_signer):
    token = signed_tokens.mint(signer=foreign_signer)
    assert_401(bearer(api, token), token=token)


def test_a_signed_token_for_another_project_is_401(api, signed_tokens):
    assert_401(bearer(api, signed_tokens.mint(project="another-project")), mentions="this project")


def test_unreachable_google_certificates_are_503_not_401(api, signed_tokens, monkeypatch):
    def unreachable(request, url):
        raise google.auth.exceptions.TransportError("connection refused")

    monkeypatch.setattr(google.oauth2.id_token, "_fetch_certs", unreachable)
    response = bearer(api, signed_tokens.mint())
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert "unavailable" in response.json()["detail"].lower()


def test_unreachable_firebase_auth_is_503_not_401(api, emulator_user, monkeypatch):
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    firebase.reset_app()
    response = bearer(api, emulator_user.id_token)
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert response.json() == {"detail": "Firebase Auth is unavailable. Try again shortly."}


def test_the_firebase_app_is_not_initialised_at_import_time():
    code = (
        "import django, firebase_admin; django.setup(); "
        "import omikeys_project.urls, apikeys.api.views, apikeys.firebase; "
        "from django.test import Client; print(Client().get('/healthz', HTTP_HOST='localhost').status_code); "
        "firebase_admin.get_app(apikeys.firebase.APP_NAME)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "omikeys_project.settings"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == "200", result.stderr
    assert "ValueError" in result.stderr and "does not exist" in result.stderr


def test_the_firebase_app_is_initialised_once(api, emulator_user, monkeypatch):
    calls = []
    real_initialize_app = firebase.firebase_admin.initialize_app

    def counting_initialize_app(*args, **kwargs):
        calls.append(kwargs.get("name"))
        return real_initialize_app(*args, **kwargs)

    monkeypatch.setattr(firebase.firebase_admin, "initialize_app", counting_initialize_app)
    for _ in range(3):
        assert bearer(api, emulator_user.id_token).status_code == 200
    assert calls == [firebase.APP_NAME]
