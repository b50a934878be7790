"""No log line, of any logger at any level, holds a key, a Firebase token, a session cookie or a stored hash."""

import json
import re

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from apikeys import crypto, lifecycle
from apikeys.models import ApiKey

from . import firebase_emulator
from .admin.pages import KEY_ADD, PLAINTEXT_RE
from .helpers import make_owner
from .web.pages import post_new_key

pytestmark = pytest.mark.django_db

KEYS = "/v1/dev/keys"


def api_client(credential: str) -> APIClient:
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {credential}")
    return client


def create(client, name: str) -> dict:
    response = client.post(KEYS, data=json.dumps({"name": name}), content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_no_log_line_holds_a_secret(log_format, project_log, settings, monkeypatch, admin_client):
    settings.OMIKEYS_REQUEST_LOG = True
    project_log.use(log_format)
    connection.force_debug_cursor = True  # Django's query log too, with every statement's values
    person = firebase_emulator.sign_up()
    secrets = [person.id_token, person.id_token.split(".")[1]]
    try:
        # The API: create, list, rotate with a grace period, verify, refuse, revoke.
        manager = api_client(person.id_token)
        first = create(manager, "logged")
        assert manager.get(KEYS).status_code == 200
        rotated = manager.post(f"{KEYS}/{first['id']}/rotate", data={"grace_seconds": 3600}, format="json").json()
        old, new = first["key"], rotated["key"]
        assert api_client(new).get("/v1/dev/key").status_code == 200
        assert api_client(old).get("/v1/dev/key").status_code == 200  # the replaced secret, in its grace period
        assert api_client(new).get(f"/v1/dev/key?api_key={new}&token={person.id_token}").status_code == 200
        assert api_client("omi_dev_" + "0" * 32).get("/v1/dev/key").status_code == 401
        assert api_client(person.id_token).get("/v1/dev/key").status_code == 401  # a token sent as a key
        assert api_client(new).get(KEYS).status_code == 401  # a key sent as a token
        assert api_client(person.id_token + "x").get(KEYS).status_code == 401  # a broken token
        assert manager.get(f"{KEYS}/{new}").status_code in (404, 405)  # a key pasted into a path
        name_with_key = manager.post(KEYS, data=json.dumps({"name": new}), content_type="application/json")
        assert name_with_key.status_code == 422
        assert manager.delete(f"{KEYS}/{first['id']}").status_code == 204
        assert api_client(new).get("/v1/dev/key").status_code == 401  # revoked

        # An error path: a failure whose message carries the presented key and its hash.
        def broken(plaintext):
            raise RuntimeError(f"lookup failed for {plaintext} ({crypto.hash_key(plaintext)})")

        monkeypatch.setattr(lifecycle.verification, "verify_key", broken)  # what lifecycle.judge_key calls
        assert api_client(new).get("/v1/dev/key").status_code == 500
        monkeypatch.undo()

        # The service API: a client's token (issued, rotated, sent right, wrong, revoked) and keys in verify bodies.
        issued = lifecycle.issue_service_client("logged-service", permissions=["can_verify_keys"])
        service_tokens = [issued.plaintext]
        verifier = api_client(issued.plaintext)
        for key in (new, old, "omi_dev_" + "0" * 32, person.id_token):
            answer = verifier.post(
                "/v1/service/keys/verify",
                data={"key": key, "client_ip": "203.0.113.5", "user_agent": f"agent {key}"},
                format="json",
            )
            assert answer.status_code == 200
        refused = verifier.post("/v1/service/keys/verify", data={"key": new, "extra": new}, format="json")
        assert refused.status_code == 422
        assert api_client(new).post("/v1/service/keys/verify", data={}, format="json").status_code == 401
        assert api_client(issued.plaintext).get(KEYS).status_code == 401  # a service token sent as a Firebase token
        service_tokens.append(lifecycle.rotate_service_client(issued.client).plaintext)
        assert verifier.post("/v1/service/keys/verify", data={}, format="json").status_code == 401  # the old one
        lifecycle.revoke_service_client(issued.client)
        assert api_client(service_tokens[-1]).post("/v1/service/keys/verify", data={}).status_code == 401

        # The web pages: sign in with the token, create a key, see it once.
        browser = Client(raise_request_exception=False)
        response = browser.post(reverse("web:signin"), {"id_token": person.id_token, "next": "/keys/"})
        assert response.status_code == 302
        secrets.append(browser.cookies["sessionid"].value)
        page = post_new_key(browser, name="from the web", follow=True)
        (web_key,) = set(re.findall(r"omi_dev_(?:[0-9A-Za-z]{36}|[0-9a-f]{32})", page.content.decode()))
        browser.post(reverse("web:signout"))

        # The admin: a key added by staff, on its show-once page.
        secrets.append(admin_client.cookies["sessionid"].value)
        response = admin_client.post(KEY_ADD, {"owner": make_owner("admin-made").pk, "name": "by staff"})
        (staff_key,) = PLAINTEXT_RE.findall(response.content.decode())
    finally:
        connection.force_debug_cursor = False

    for key in (old, new, web_key, staff_key):
        secrets += [key, key[len(crypto.KEY_PREFIX) :]]
    for token in service_tokens:
        secrets += [token, token[len(crypto.SERVICE_TOKEN_PREFIX) :], crypto.hash_service_token(token)]
    for key_hash, previous in ApiKey.objects.values_list("key_hash", "previous_key_hash"):
        secrets += [value for value in (key_hash, previous) if value]
    assert len(secrets) >= 22

    text = project_log.text
    # The capture saw every kind of line: SQL with values, the request log, the 500's traceback.
    assert "INSERT INTO" in text and "omikeys.requests" in text and "Traceback" in text
    assert "RuntimeError: lookup failed for omi_dev_[redacted] ([redacted])" in text
    leaked = [secret for secret in secrets if secret in text]
    assert not leaked, f"{len(leaked)} secrets in the log"
