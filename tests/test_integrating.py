"""docs/integrating.md: its FastAPI dependency and webhook receiver, run as written against real omikeys parts."""

import datetime
import re
import sys
import time
import types
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from fastapi.testclient import TestClient

from apikeys import lifecycle, webhooks
from apikeys.models import Event

from .helpers import free_port, issue, make_owner, service

pytestmark = pytest.mark.django_db(transaction=True)

DOC = Path(settings.BASE_DIR) / "docs" / "integrating.md"
END_CLIENT = ("203.0.113.50", 50000)


def dependency_module(monkeypatch, url: str, token: str) -> types.ModuleType:
    """The first Python block of the FastAPI section, executed as the module ``omikeys_keys``."""
    section = DOC.read_text(encoding="utf-8").split("## Checking keys from a FastAPI service", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    monkeypatch.setenv("OMIKEYS_URL", url)
    monkeypatch.setenv("OMIKEYS_SERVICE_TOKEN", token)
    module = types.ModuleType("omikeys_keys")
    monkeypatch.setitem(sys.modules, "omikeys_keys", module)
    exec(compile(code, str(DOC), "exec"), module.__dict__)
    return module


@pytest.fixture
def verifier():
    return service("verify_keys", name="developer-api")


def test_the_documented_dependency_lets_valid_keys_through_and_answers_the_others(live_server, monkeypatch, verifier):
    owner = make_owner("integrating-owner")
    reader = issue(owner, name="reader", scopes=["memories:read"]).plaintext
    writer = issue(owner, name="writer", scopes=["goals:write"]).plaintext
    revoked = issue(owner, name="revoked", scopes=["memories:read"])
    lifecycle.revoke_key(revoked.api_key)
    module = dependency_module(monkeypatch, live_server.url, verifier.token)

    with TestClient(module.app, client=END_CLIENT) as client:

        def get(key=None):
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            return client.get("/v1/dev/user/memories", headers=headers)

        ok, no_scope, gone, missing = get(reader), get(writer), get(revoked.plaintext), get()

    assert (ok.status_code, ok.json()) == (200, {"uid": "integrating-owner", "memories": []})
    assert (no_scope.status_code, no_scope.json()["detail"]) == (
        403,
        "Insufficient permissions. Required scope: memories:read",
    )
    # Told what GET /v1/dev/key tells it: not that the key exists and was revoked.
    assert (gone.status_code, gone.json()["detail"]) == (401, "Invalid API Key")
    assert missing.status_code == 401


def test_the_documented_dependency_throttles_per_end_client(live_server, monkeypatch, verifier, settings):
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (2, 60)
    module = dependency_module(monkeypatch, live_server.url, verifier.token)
    bad = "omi_dev_" + "0" * 32

    with TestClient(module.app, client=END_CLIENT) as client:
        statuses = [client.get("/v1/dev/user/memories", headers={"Authorization": f"Bearer {bad}"}) for _ in range(3)]

    assert [response.status_code for response in statuses] == [401, 401, 429]
    assert int(statuses[-1].headers["Retry-After"]) >= 1


def test_the_documented_dependency_answers_503_when_omikeys_is_down(monkeypatch, verifier):
    module = dependency_module(monkeypatch, f"http://127.0.0.1:{free_port()}", verifier.token)
    key = "omi_dev_" + "1" * 32

    with TestClient(module.app, client=END_CLIENT) as client:
        started = time.monotonic()
        response = client.get("/v1/dev/user/memories", headers={"Authorization": f"Bearer {key}"})
        took = time.monotonic() - started

    assert (response.status_code, response.headers["Retry-After"]) == (503, "5")
    assert took < 10


def test_the_documented_dependency_answers_503_when_its_token_is_refused(live_server, monkeypatch):
    module = dependency_module(monkeypatch, live_server.url, "omi_svc_" + "0" * 32)

    with TestClient(module.app, client=END_CLIENT) as client:
        response = client.get("/v1/dev/user/memories", headers={"Authorization": "Bearer omi_dev_" + "2" * 32})

    assert response.status_code == 503


def receiver_module(monkeypatch, secret: str) -> types.ModuleType:
    """The Python block of "Verifying the signature", executed as the module ``receiver``."""
    section = DOC.read_text(encoding="utf-8").split("### Verifying the signature", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    monkeypatch.setenv("OMIKEYS_WEBHOOK_SECRET", secret)
    module = types.ModuleType("receiver")
    monkeypatch.setitem(sys.modules, "receiver", module)
    exec(compile(code, str(DOC), "exec"), module.__dict__)
    return module


def test_the_documented_receiver_accepts_omikeys_events_once_and_refuses_forgeries(monkeypatch):
    _, secret = webhooks.register_endpoint("http://127.0.0.1:9/hooks/omikeys", ["key.created"], "doc receiver")
    issue(make_owner("uid-doc-receiver"), "Zapier", ["memories:read"])
    event = Event.objects.get(type="key.created")
    # The exact body and headers omikeys' worker sends for this event.
    body = webhooks.body_of(event)
    headers = webhooks.signed_headers(event, body, secret, timezone.now())
    app = receiver_module(monkeypatch, secret).app

    with TestClient(app) as client:
        first = client.post("/hooks/omikeys", content=body, headers=headers)
        again = client.post("/hooks/omikeys", content=body, headers=headers)
        tampered = client.post("/hooks/omikeys", content=body.replace("Zapier", "Zapiez"), headers=headers)
        stale = webhooks.signed_headers(event, body, secret, timezone.now() - datetime.timedelta(minutes=10))
        too_old = client.post("/hooks/omikeys", content=body, headers=stale)
        _, other_secret = webhooks.register_endpoint("http://127.0.0.1:9/other", ["key.created"], "other")
        forged = client.post(
            "/hooks/omikeys", content=body, headers=webhooks.signed_headers(event, body, other_secret, timezone.now())
        )

    assert (first.status_code, again.status_code) == (204, 204)  # a retry is answered 2xx too
    assert (tampered.status_code, too_old.status_code, forged.status_code) == (401, 401, 401)


def test_the_documented_dependency_answers_401_to_an_overlong_key(live_server, monkeypatch, verifier):
    # A client's junk is its own fault (401), never this service's misconfiguration (503 and an error logged).
    module = dependency_module(monkeypatch, live_server.url, verifier.token)

    with TestClient(module.app, client=END_CLIENT) as client:
        response = client.get("/v1/dev/user/memories", headers={"Authorization": "Bearer omi_dev_" + "a" * 9000})

    assert response.status_code == 401
    assert response.json()["detail"].startswith("Invalid API Key: not an Omi Developer API key")
