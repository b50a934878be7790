"""PATCH /v1/dev/keys/{key_id}: an owner changes a key's name, scopes or expiry in place, all or nothing."""

import datetime
import json

import pytest
from django.utils import timezone

from apikeys import webhooks
from apikeys.models import ApiKey, Event, KeyEvent

from . import firebase_emulator
from .helpers import expire, key_client

pytestmark = pytest.mark.django_db

URL = "/v1/dev/keys"
SHOWN = {"id", "name", "key_prefix", "created_at", "last_used_at", "expires_at", "status", "scopes", "disabled_at"}


@pytest.fixture
def key(user_client):
    response = user_client.post(URL, {"name": "to change", "scopes": ["memories:read"]}, format="json")
    assert response.status_code == 200
    return response.json()


def patch(client, key_id, body):
    return client.patch(f"{URL}/{key_id}", data=json.dumps(body), content_type="application/json")


def later(days: int) -> str:
    return (timezone.now() + datetime.timedelta(days=days)).replace(microsecond=0).isoformat()


def row(key) -> ApiKey:
    return ApiKey.objects.get(pk=key["id"])


def test_it_renames_a_key_and_keeps_its_secret(user_client, key):
    response = patch(user_client, key["id"], {"name": "  renamed  "})

    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == SHOWN  # never the secret
    assert (body["id"], body["name"], body["key_prefix"], body["scopes"]) == (
        key["id"],
        "renamed",
        key["key_prefix"],
        ["memories:read"],
    )
    assert body["status"] == "active" and body["disabled_at"] is None
    assert key_client(key["key"]).get("/v1/dev/key").json()["name"] == "renamed"


def test_new_scopes_replace_the_old_ones_and_apply_to_the_next_request(user_client, key):
    response = patch(user_client, key["id"], {"scopes": ["memories:write", "goals:read", "goals:read"]})

    assert response.status_code == 200, response.content
    assert sorted(response.json()["scopes"]) == ["goals:read", "memories:write"]
    assert sorted(row(key).scopes.values_list("code", flat=True)) == ["goals:read", "memories:write"]
    assert key_client(key["key"]).get("/v1/dev/key").json()["scopes"] == ["goals:read", "memories:write"]


def test_an_expiry_is_set_and_null_means_never(user_client, key):
    moment = later(30)
    response = patch(user_client, key["id"], {"expires_at": moment})
    assert response.status_code == 200, response.content
    assert datetime.datetime.fromisoformat(response.json()["expires_at"]) == datetime.datetime.fromisoformat(moment)

    response = patch(user_client, key["id"], {"expires_at": None})
    assert response.status_code == 200
    assert response.json()["expires_at"] is None
    assert row(key).expires_at is None


def test_all_three_change_together_each_audited_with_the_owner_as_actor(user_client, key):
    response = patch(user_client, key["id"], {"name": "all", "scopes": ["goals:write"], "expires_at": later(10)})

    assert response.status_code == 200, response.content
    changed = row(key)
    assert (changed.name, list(changed.scopes.values_list("code", flat=True))) == ("all", ["goals:write"])
    assert changed.expires_at is not None
    events = KeyEvent.objects.filter(api_key_id=key["id"]).exclude(action=KeyEvent.Action.CREATED)
    assert sorted(event.action for event in events) == ["expiry_changed", "renamed", "scopes_changed"]
    for event in events:
        assert (event.actor_kind, event.via) == (KeyEvent.ActorKind.USER, KeyEvent.Via.API)
        assert event.actor.firebase_uid == user_client.emulator_user.uid
    renamed = events.get(action="renamed")
    assert renamed.details["previous_name"] == "to change"


def test_an_unchanged_value_records_nothing(user_client, key):
    response = patch(user_client, key["id"], {"name": "to change", "scopes": ["memories:read"]})
    assert response.status_code == 200
    assert not KeyEvent.objects.exclude(action=KeyEvent.Action.CREATED).exists()


def test_a_bad_expiry_with_a_good_name_changes_nothing(user_client, key):
    response = patch(user_client, key["id"], {"name": "good name", "expires_at": "2001-01-01T00:00:00Z"})

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {"loc": ["body", "expires_at"], "msg": "The expiry must be in the future.", "type": "datetime_future"}
        ]
    }
    assert row(key).name == "to change"
    assert not KeyEvent.objects.exclude(action=KeyEvent.Action.CREATED).exists()


def test_every_bad_field_is_reported_at_once_in_creates_shapes(user_client, key):
    response = patch(user_client, key["id"], {"name": "", "scopes": ["memories:read", "nope"], "expires_at": "soon"})

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [entry["loc"] for entry in detail] == [["body", "name"], ["body", "scopes", 1], ["body", "expires_at"]]
    assert [entry["type"] for entry in detail] == ["string_too_short", "enum", "datetime_parsing"]
    # The create request answers the same mistakes in the same words.
    body = {"name": "", "scopes": ["memories:read", "nope"], "expires_at": "soon"}
    created = user_client.post(URL, body, format="json")
    assert created.status_code == 422
    assert created.json()["detail"] == detail
    assert row(key).name == "to change"


@pytest.mark.parametrize(
    "body, loc, type_",
    [
        ({"name": None}, ["body", "name"], "string_type"),
        ({"name": 5}, ["body", "name"], "string_type"),
        ({"name": "x" * 101}, ["body", "name"], "string_too_long"),
        ({"name": "copy of omi_dev_" + "a" * 32}, ["body", "name"], "secret_in_name"),
        ({"scopes": None}, ["body", "scopes"], "list_type"),
        ({"scopes": []}, ["body", "scopes"], "too_short"),
        ({"scopes": "memories:read"}, ["body", "scopes"], "list_type"),
        ({"expires_at": 1}, ["body", "expires_at"], "datetime_type"),
    ],
)
def test_bad_values_are_refused_as_create_refuses_them(user_client, key, body, loc, type_):
    response = patch(user_client, key["id"], body)
    assert response.status_code == 422, response.content
    (entry,) = response.json()["detail"]
    assert (entry["loc"], entry["type"]) == (loc, type_), entry
    assert entry["msg"]


def test_an_empty_scope_list_is_told_a_key_needs_a_scope_not_to_send_null(user_client, key):
    response = patch(user_client, key["id"], {"scopes": []})
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == "List should have at least 1 item: a key needs at least one scope."


def test_an_expiry_beyond_the_longest_lifetime_is_refused(user_client, key, settings):
    settings.OMIKEYS_MAX_KEY_LIFETIME_DAYS = 30
    response = patch(user_client, key["id"], {"expires_at": later(31)})
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == "The expiry must be at most 30 days from now."


@pytest.mark.parametrize("body", [{}, None])
def test_a_body_with_nothing_to_change_is_422_naming_the_fields(user_client, key, body):
    if body is None:
        response = user_client.patch(f"{URL}/{key['id']}")
    else:
        response = patch(user_client, key["id"], body)
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "loc": ["body"],
                "msg": "Nothing to change: send at least one of name, scopes, expires_at.",
                "type": "missing",
            }
        ]
    }


def test_unknown_fields_are_refused_as_create_refuses_them(user_client, key):
    response = patch(user_client, key["id"], {"name": "ok", "grace_seconds": 5})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "loc": ["body", "grace_seconds"],
            "msg": "Extra inputs are not permitted. This endpoint accepts: name, scopes, expires_at.",
            "type": "extra_forbidden",
        }
    ]
    assert row(key).name == "to change"


def test_a_body_that_is_not_an_object_is_422(user_client, key):
    response = user_client.patch(f"{URL}/{key['id']}", data="[]", content_type="application/json")
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "model_attributes_type"


def test_another_users_key_is_404_as_delete_answers(user_client, key, client_for):
    stranger = client_for(firebase_emulator.sign_up())
    response = patch(stranger, key["id"], {"name": "mine now"})
    assert response.status_code == 404
    assert response.json() == stranger.delete(f"{URL}/{key['id']}").json() == {"detail": "No API key with this id."}
    assert row(key).name == "to change"


@pytest.mark.parametrize("key_id", ["3dc2cbf1-fe55-4fa1-b347-8a87ee718c87", "not-a-uuid", "x" * 500])
def test_unknown_ids_are_404(user_client, key_id):
    assert patch(user_client, key_id, {"name": "x"}).status_code == 404


def test_a_revoked_key_cannot_change(user_client, key):
    user_client.delete(f"{URL}/{key['id']}")
    response = patch(user_client, key["id"], {"name": "too late"})
    assert response.status_code == 409
    assert response.json() == {"detail": "This key has been revoked; it cannot change. Create a new key instead."}
    assert row(key).name == "to change"


def test_an_api_key_cannot_change_keys(key):
    response = patch(key_client(key["key"]), key["id"], {"name": "by itself"})
    assert response.status_code == 401
    assert "not an API key" in response.json()["detail"]
    assert row(key).name == "to change"


def test_it_needs_authentication(api, key):
    assert patch(api, key["id"], {"name": "anyone"}).status_code == 401


def test_an_expired_key_given_a_later_expiry_works_again(user_client, key):
    expire(row(key))
    assert key_client(key["key"]).get("/v1/dev/key").status_code == 401

    response = patch(user_client, key["id"], {"expires_at": later(5)})

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "active"
    assert key_client(key["key"]).get("/v1/dev/key").status_code == 200


def test_an_expired_key_needs_room_under_the_limit_to_expire_later(user_client, key, settings):
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 1
    expire(row(key))
    assert user_client.post(URL, {"name": "the one active"}, format="json").status_code == 200
    # Create's answer at the limit: 409.
    assert user_client.post(URL, {"name": "one too many"}, format="json").status_code == 409

    response = patch(user_client, key["id"], {"name": "revived", "expires_at": None})

    assert response.status_code == 409
    assert response.json()["detail"] == (
        "Not changed: this key has expired, and a later expiry would make it active again, but you already have "
        "1 active API key, the most allowed. Revoke a key you no longer use first."
    )
    changed = row(key)
    assert changed.name == "to change" and changed.is_expired()  # all or nothing: the name did not change
    # Renaming an expired key needs no room.
    assert patch(user_client, key["id"], {"name": "still expired"}).status_code == 200


def test_a_change_through_the_api_is_reported_as_key_updated_with_the_owner(user_client, key):
    webhooks.register_endpoint("http://127.0.0.1:9/hooks", ["key.updated"])
    assert patch(user_client, key["id"], {"name": "hooked", "scopes": ["goals:read"]}).status_code == 200

    payloads = [event.payload for event in Event.objects.filter(type="key.updated")]
    assert len(payloads) == 2  # one per change: renamed, scopes changed
    for payload in payloads:
        assert payload["data"]["key_id"] == key["id"]
        assert payload["data"]["actor"] == {"kind": "user", "via": "api", "uid": user_client.emulator_user.uid}


def test_the_key_list_shows_the_change(user_client, key):
    patch(user_client, key["id"], {"name": "listed"})
    (listed,) = user_client.get(URL).json()
    assert listed["name"] == "listed"
    assert set(listed) == SHOWN


@pytest.mark.parametrize(
    "body, message",
    [
        (
            {"scopes": None},
            "Input should be a valid list of scope strings; null is not accepted here: leave scopes out to keep them.",
        ),
        ({"name": None}, "Input should be a valid string; null is not accepted here: leave name out to keep it."),
    ],
)
def test_null_for_a_field_that_refuses_it_says_to_leave_the_field_out(user_client, key, body, message):
    response = patch(user_client, key["id"], body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == message
    # On create, null scopes still mean the read-only default.
    created = user_client.post(URL, {"name": "defaults", "scopes": None}, format="json")
    assert created.status_code == 200, created.content
