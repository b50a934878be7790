"""Pausing a key: POST /v1/dev/keys/{key_id}/disable and /enable, what a disabled key does everywhere,
and the lifecycle functions behind them (disable_key, enable_key, change_key)."""

import datetime
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from apikeys import lifecycle, webhooks
from apikeys.models import ApiKey, Event, KeyEvent

from . import firebase_emulator
from .helpers import expire, issue, key_client, make_owner, scopes, service

pytestmark = pytest.mark.django_db

URL = "/v1/dev/keys"
DISABLED = "Invalid API Key: this key is disabled."


@pytest.fixture
def key(user_client):
    response = user_client.post(URL, {"name": "to pause", "scopes": ["memories:read"]}, format="json")
    assert response.status_code == 200
    return response.json()


def disable(client, key_id, **kwargs):
    return client.post(f"{URL}/{key_id}/disable", **kwargs)


def enable(client, key_id, **kwargs):
    return client.post(f"{URL}/{key_id}/enable", **kwargs)


def calling(plaintext):
    return key_client(plaintext).get("/v1/dev/key")


def pause_events(key_id) -> list[str]:
    return list(
        KeyEvent.objects.filter(api_key_id=key_id, action__in=["disabled", "enabled"])
        .order_by("at", "id")
        .values_list("action", flat=True)
    )


# --- the JSON API ------------------------------------------------------------------------


def test_a_disabled_key_is_refused_with_its_own_message_and_keeps_its_secret(user_client, key):
    response = disable(user_client, key["id"])

    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert "key" not in body
    assert body["status"] == "disabled"
    assert body["disabled_at"] is not None
    assert body["key_prefix"] == key["key_prefix"]

    refused = calling(key["key"])
    assert refused.status_code == 401
    assert refused.json() == {"detail": DISABLED}


def test_enabling_restores_the_same_secret(user_client, key):
    disable(user_client, key["id"])

    response = enable(user_client, key["id"])

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["disabled_at"]) == ("active", None)
    assert calling(key["key"]).status_code == 200


def test_disable_and_enable_are_idempotent_and_audit_only_real_changes(user_client, key):
    first = disable(user_client, key["id"]).json()
    again = disable(user_client, key["id"])
    assert again.status_code == 200
    assert again.json()["disabled_at"] == first["disabled_at"]  # unchanged

    assert enable(user_client, key["id"]).status_code == 200
    assert enable(user_client, key["id"]).status_code == 200

    assert pause_events(key["id"]) == ["disabled", "enabled"]
    for event in KeyEvent.objects.filter(api_key_id=key["id"], action__in=["disabled", "enabled"]):
        assert (event.actor_kind, event.via) == (KeyEvent.ActorKind.USER, KeyEvent.Via.API)
        assert event.actor.firebase_uid == user_client.emulator_user.uid


def test_the_list_shows_a_disabled_key_as_disabled(user_client, key):
    disable(user_client, key["id"])
    (listed,) = user_client.get(URL).json()
    assert listed["status"] == "disabled"
    assert listed["disabled_at"] is not None


def test_a_revoked_key_is_409_for_both(user_client, key):
    user_client.delete(f"{URL}/{key['id']}")
    for call in (disable, enable):
        response = call(user_client, key["id"])
        assert response.status_code == 409
        assert response.json() == {"detail": "This key has been revoked; it cannot change. Create a new key instead."}
    assert ApiKey.objects.get(pk=key["id"]).disabled_at is None


def test_another_users_key_is_404_and_unchanged(user_client, key, client_for):
    stranger = client_for(firebase_emulator.sign_up())
    for call in (disable, enable):
        response = call(stranger, key["id"])
        assert response.status_code == 404
        assert response.json() == {"detail": "No API key with this id."}
    assert calling(key["key"]).status_code == 200


@pytest.mark.parametrize("key_id", ["3dc2cbf1-fe55-4fa1-b347-8a87ee718c87", "not-a-uuid"])
def test_unknown_ids_are_404(user_client, key_id):
    assert disable(user_client, key_id).status_code == 404
    assert enable(user_client, key_id).status_code == 404


def test_they_take_no_fields(user_client, key):
    response = disable(user_client, key["id"], data=json.dumps({"reason": "leak"}), content_type="application/json")
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "extra_forbidden"
    assert ApiKey.objects.get(pk=key["id"]).disabled_at is None
    assert disable(user_client, key["id"], data="{}", content_type="application/json").status_code == 200


def test_an_api_key_cannot_disable_itself_or_others(key):
    response = disable(key_client(key["key"]), key["id"])
    assert response.status_code == 401
    assert ApiKey.objects.get(pk=key["id"]).disabled_at is None


def test_they_need_authentication(api, key):
    assert disable(api, key["id"]).status_code == 401
    assert enable(api, key["id"]).status_code == 401


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_other_methods_are_405(user_client, key, method):
    for path in ("disable", "enable"):
        assert getattr(user_client, method)(f"{URL}/{key['id']}/{path}").status_code == 405


def test_rotating_a_disabled_key_keeps_it_disabled(user_client, key):
    disable(user_client, key["id"])

    rotated = user_client.post(f"{URL}/{key['id']}/rotate")

    assert rotated.status_code == 200, rotated.content
    assert rotated.json()["status"] == "disabled"
    assert rotated.json()["disabled_at"] is not None
    assert calling(rotated.json()["key"]).json() == {"detail": DISABLED}
    enable(user_client, key["id"])
    assert calling(rotated.json()["key"]).status_code == 200


def test_a_disabled_key_can_be_edited_and_stays_disabled(user_client, key):
    disable(user_client, key["id"])
    response = user_client.patch(f"{URL}/{key['id']}", {"name": "paused, renamed"}, format="json")
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["status"]) == ("paused, renamed", "disabled")


def test_a_disabled_key_counts_toward_the_active_key_limit(user_client, key, settings):
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 1
    disable(user_client, key["id"])
    response = user_client.post(URL, {"name": "second"}, format="json")
    assert response.status_code == 409
    assert "1 active API key" in response.json()["detail"]


def test_an_expired_disabled_key_is_refused_as_expired_and_enabling_does_not_revive_it(user_client, key):
    disable(user_client, key["id"])
    expire(ApiKey.objects.get(pk=key["id"]))
    assert calling(key["key"]).json() == {"detail": "Invalid API Key: this key has expired."}

    response = enable(user_client, key["id"])
    assert response.status_code == 200
    assert response.json()["status"] == "expired"
    assert calling(key["key"]).status_code == 401


def test_events_key_disabled_and_key_enabled_are_sent(user_client, key):
    webhooks.register_endpoint("http://127.0.0.1:9/hooks", ["key.disabled", "key.enabled"])
    disable(user_client, key["id"])
    disable(user_client, key["id"])  # nothing changed: no event
    enable(user_client, key["id"])

    payloads = [event.payload for event in Event.objects.order_by("created_at")]
    assert [payload["type"] for payload in payloads] == ["key.disabled", "key.enabled"]
    assert [payload["data"]["status"] for payload in payloads] == ["disabled", "active"]
    for payload in payloads:
        assert payload["data"]["key_id"] == key["id"]
        assert payload["data"]["actor"] == {"kind": "user", "via": "api", "uid": user_client.emulator_user.uid}


# --- the service API -----------------------------------------------------------------------


def test_the_service_verdict_on_a_disabled_key_is_disabled():
    owner = make_owner("paused-owner")
    issued = issue(owner)
    lifecycle.disable_key(issued.api_key)

    response = service("verify_keys").post(
        "/v1/service/keys/verify", {"key": issued.plaintext, "client_ip": "203.0.113.9"}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["valid"], body["code"], body["detail"]) == (False, "DISABLED", DISABLED)
    assert body["key_id"] == str(issued.api_key.pk)  # the secret matched a key: the service is told which


def test_the_service_list_of_a_users_keys_shows_disabled():
    owner = make_owner("listed-paused")
    paused, working = issue(owner, "paused").api_key, issue(owner, "working").api_key
    lifecycle.disable_key(paused)

    body = service("read_user_keys").get(f"/v1/service/users/{owner.firebase_uid}/keys").json()

    shown = {item["id"]: item for item in body["keys"]}
    assert shown[str(paused.pk)]["status"] == "disabled"
    assert shown[str(paused.pk)]["disabled_at"] is not None
    assert (shown[str(working.pk)]["status"], shown[str(working.pk)]["disabled_at"]) == ("active", None)
    assert body["active_key_count"] == 2  # a disabled key keeps its place under the limit
    assert body["disabled_key_count"] == 1


# --- the lifecycle -------------------------------------------------------------------------


def test_disable_key_is_guarded_against_a_stale_copy(owner):
    api_key = issue(owner).api_key
    stale = ApiKey.objects.get(pk=api_key.pk)

    assert lifecycle.disable_key(api_key, reason="checking a leak") is True
    assert lifecycle.disable_key(stale) is False
    assert stale.disabled_at == api_key.disabled_at  # brought up to date

    (event,) = KeyEvent.objects.filter(api_key=api_key, action="disabled")
    assert event.details == {"reason": "checking a leak"}
    assert lifecycle.enable_key(api_key) is True
    assert lifecycle.enable_key(stale) is False
    assert stale.disabled_at is None


@pytest.mark.django_db(transaction=True)
def test_two_disable_calls_at_once_disable_once_and_audit_once():
    api_key = issue(make_owner("raced-pause")).api_key
    barrier = threading.Barrier(2, timeout=20)

    def pause() -> bool:
        copy = ApiKey.objects.get(pk=api_key.pk)
        barrier.wait()
        try:
            return lifecycle.disable_key(copy)
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        results = sorted(pool.map(lambda _: pause(), range(2)))

    assert results == [False, True]
    assert KeyEvent.objects.filter(api_key=api_key, action="disabled").count() == 1


def test_a_revoked_key_can_be_neither_disabled_nor_enabled(owner):
    api_key = issue(owner).api_key
    stale = ApiKey.objects.get(pk=api_key.pk)
    lifecycle.revoke_key(api_key)

    with pytest.raises(lifecycle.KeyRevoked):
        lifecycle.disable_key(stale)
    with pytest.raises(lifecycle.KeyRevoked):
        lifecycle.enable_key(stale)
    with pytest.raises(lifecycle.KeyRevoked):
        lifecycle.change_key(stale, name="too late")
    assert not KeyEvent.objects.filter(api_key=api_key, action__in=["disabled", "enabled", "renamed"]).exists()


def test_change_key_reports_every_refusal_together_and_applies_nothing(owner):
    api_key = issue(owner, "unchanged", scopes=["memories:read"]).api_key

    with pytest.raises(ValidationError) as refused:
        lifecycle.change_key(
            api_key,
            name="   ",
            scopes=[],
            expires_at=timezone.now() - datetime.timedelta(days=1),
        )

    assert set(refused.value.error_dict) == {"name", "scopes", "expires_at"}
    api_key.refresh_from_db()
    assert api_key.name == "unchanged"
    assert list(api_key.scopes.values_list("code", flat=True)) == ["memories:read"]
    assert api_key.expires_at is None
    assert KeyEvent.objects.filter(api_key=api_key).count() == 1  # created


def test_change_key_rolls_back_the_name_when_the_expiry_finds_no_room(owner, settings, caplog):
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 1
    api_key = issue(owner, "expired one").api_key
    expire(api_key)
    issue(owner, "the active one")
    api_key.refresh_from_db()

    with pytest.raises(lifecycle.TooManyKeys):
        lifecycle.change_key(api_key, name="renamed", scopes=scopes("goals:read"), expires_at=None)

    assert api_key.name == "expired one"  # the caller's object too: a page shows what the key is
    api_key.refresh_from_db()
    assert api_key.name == "expired one" and api_key.is_expired()
    assert list(api_key.scopes.values_list("code", flat=True)) != ["goals:read"]
    assert not KeyEvent.objects.filter(api_key=api_key, action__in=["renamed", "scopes_changed"]).exists()
    assert "api key updated" not in caplog.text  # nothing is logged as changed that was rolled back


def test_change_key_leaves_an_unchanged_past_expiry_alone(owner):
    api_key = issue(owner, "expired, renamed").api_key
    expire(api_key)
    api_key.refresh_from_db()

    assert lifecycle.change_key(api_key, name="renamed", expires_at=api_key.expires_at) == ["renamed"]
