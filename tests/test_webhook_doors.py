"""Each door's key changes produce their webhook events: the JSON API, the web pages, the admin, the commands."""

import json

import pytest
from django.urls import reverse

from apikeys import webhooks
from apikeys.models import Event

from .admin.pages import change_data, key_url
from .commands.running import run
from .helpers import issue, make_owner
from .web.pages import post_rotate, sign_in

pytestmark = pytest.mark.django_db

ALL = ["key.created", "key.updated", "key.rotated", "key.revoked"]


@pytest.fixture(autouse=True)
def endpoint():
    # Nothing needs to listen: these tests read the outbox, which is written whatever the receiver does.
    return webhooks.register_endpoint("http://127.0.0.1:9/hooks", ALL)


def events() -> list[dict]:
    return [event.payload for event in Event.objects.order_by("created_at")]


def test_the_json_api_creates_and_revokes_with_the_owner_as_actor(user_client):
    created = user_client.post("/v1/dev/keys", data=json.dumps({"name": "api"}), content_type="application/json")
    assert created.status_code == 200, created.content
    key_id = created.json()["id"]
    assert user_client.delete(f"/v1/dev/keys/{key_id}").status_code == 204

    payloads = events()
    assert [p["type"] for p in payloads] == ["key.created", "key.revoked"]
    uid = user_client.emulator_user.uid
    for payload in payloads:
        assert payload["data"]["key_id"] == key_id
        assert payload["data"]["door"] == "api"
        assert payload["data"]["actor"] == {"kind": "user", "via": "api", "uid": uid}
    assert user_client.emulator_user.email not in json.dumps(payloads)


def test_the_web_pages_rotate_with_the_owner_as_actor(client):
    person = sign_in(client)
    api_key = issue(person.user, "web").api_key

    assert post_rotate(person, api_key.pk).status_code == 200

    rotated = Event.objects.get(type="key.rotated").payload["data"]
    assert rotated["key_id"] == str(api_key.pk)
    assert rotated["door"] == "web"
    assert rotated["actor"] == {"kind": "user", "via": "web", "uid": person.user.firebase_uid}


def test_the_admin_revokes_with_the_staff_member_as_actor(admin_client, admin_user):
    api_key = issue(make_owner("uid-admin-door"), "admin").api_key

    admin_client.post(
        reverse("admin:apikeys_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [str(api_key.pk)]},
    )

    revoked = Event.objects.get(type="key.revoked").payload["data"]
    assert revoked["door"] == "admin"
    assert revoked["actor"] == {"kind": "staff", "via": "admin", "staff_id": admin_user.pk}
    assert admin_user.email not in json.dumps(revoked)


def test_the_admin_change_form_renames_as_key_updated(admin_client, admin_user):
    api_key = issue(make_owner("uid-admin-rename"), "before").api_key

    response = admin_client.post(key_url(api_key), change_data(api_key, name="after"))

    assert response.status_code == 302
    updated = Event.objects.get(type="key.updated").payload["data"]
    assert (updated["name"], updated["changed"], updated["door"]) == ("after", ["name"], "admin")
    assert updated["actor"] == {"kind": "staff", "via": "admin", "staff_id": admin_user.pk}


def test_the_commands_rotate_and_revoke_with_the_command_as_actor(emulator_user):
    api_key = issue(make_owner(emulator_user.uid, emulator_user.email), "command").api_key

    run("rotateapikey", str(api_key.pk))
    run("revokeapikey", str(api_key.pk))

    payloads = [p for p in events() if p["type"] in ("key.rotated", "key.revoked")]
    assert [p["type"] for p in payloads] == ["key.rotated", "key.revoked"]
    for payload in payloads:
        assert payload["data"]["door"] == "command"
        assert payload["data"]["actor"]["kind"] == "command"
        assert payload["data"]["actor"]["label"].startswith(("rotateapikey", "revokeapikey"))
