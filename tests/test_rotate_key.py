"""POST /v1/dev/keys/{key_id}/rotate: a new secret for the same key, with an optional grace period."""

import datetime

import pytest
from django.utils import timezone

from apikeys import lifecycle
from apikeys.models import ApiKey, KeyEvent

from .helpers import key_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(user_client):
    response = user_client.post(
        "/v1/dev/keys", {"name": "to rotate", "scopes": ["memories:read", "goals:write"]}, format="json"
    )
    assert response.status_code == 200
    return response.json()


def rotate_url(key_id) -> str:
    return f"/v1/dev/keys/{key_id}/rotate"


def works(plaintext: str) -> bool:
    return key_client(plaintext).get("/v1/dev/key").status_code == 200


def test_it_returns_a_new_secret_for_the_same_key(user_client, key):
    response = user_client.post(rotate_url(key["id"]))
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {
        "id", "name", "key_prefix", "created_at", "last_used_at", "expires_at", "status", "scopes", "key",
        "previous_key_expires_at", "disabled_at",
    }  # fmt: skip
    assert (body["id"], body["name"], body["scopes"], body["created_at"]) == (
        key["id"],
        key["name"],
        key["scopes"],
        key["created_at"],
    )
    assert body["key"] != key["key"] and body["key"].startswith("omi_dev_")
    assert body["key_prefix"] != key["key_prefix"]
    assert body["previous_key_expires_at"] is None
    assert works(body["key"]) and not works(key["key"])
    assert ApiKey.objects.count() == 1


def test_the_list_shows_the_new_prefix_and_never_a_secret(user_client, key):
    rotated = user_client.post(rotate_url(key["id"])).json()
    listed = user_client.get("/v1/dev/keys").json()
    assert [item["key_prefix"] for item in listed] == [rotated["key_prefix"]]
    assert rotated["key"] not in str(listed)


def test_the_old_secret_works_until_the_grace_period_ends(user_client, key, time_machine):
    start = timezone.now()
    time_machine.move_to(start, tick=False)
    body = user_client.post(rotate_url(key["id"]), {"grace_seconds": 3600}, format="json").json()
    assert body["previous_key_expires_at"] == (start + datetime.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert works(key["key"]) and works(body["key"])
    time_machine.move_to(start + datetime.timedelta(seconds=3599), tick=False)
    assert works(key["key"])
    time_machine.move_to(start + datetime.timedelta(seconds=3600), tick=False)
    assert not works(key["key"]) and works(body["key"])


def test_the_old_secret_during_grace_identifies_the_same_key(user_client, key):
    new = user_client.post(rotate_url(key["id"]), {"grace_seconds": 60}, format="json").json()
    via_old = key_client(key["key"]).get("/v1/dev/key").json()
    via_new = key_client(new["key"]).get("/v1/dev/key").json()
    # The same key; only which secret was sent, and when it stops, differ.
    which = ("secret", "secret_expires_at")
    assert {k: v for k, v in via_old.items() if k not in which} == {k: v for k, v in via_new.items() if k not in which}
    assert (via_old["secret"], via_new["secret"]) == ("replaced", "current")
    assert via_old["secret_expires_at"] == new["previous_key_expires_at"]
    assert via_old["key_prefix"] == new["key_prefix"]


def test_rotating_again_stops_the_secret_still_in_grace(user_client, key):
    second = user_client.post(rotate_url(key["id"]), {"grace_seconds": 600}, format="json").json()
    third = user_client.post(rotate_url(key["id"]), {"grace_seconds": 600}, format="json").json()
    assert not works(key["key"])
    assert works(second["key"]) and works(third["key"])


def test_revoking_stops_both_secrets_at_once(user_client, key):
    new = user_client.post(rotate_url(key["id"]), {"grace_seconds": 600}, format="json").json()
    assert user_client.delete(f"/v1/dev/keys/{key['id']}").status_code == 204
    assert not works(key["key"]) and not works(new["key"])


@pytest.mark.parametrize(
    ("grace", "error_type"),
    [
        (-1, "greater_than_equal"),
        (7 * 24 * 3600 + 1, "less_than_equal"),
        ("60", "int_type"),
        (True, "int_type"),
        (1.5, "int_type"),
        (None, "int_type"),
    ],
)
def test_bad_grace_periods_are_422_and_change_nothing(user_client, key, grace, error_type):
    response = user_client.post(rotate_url(key["id"]), {"grace_seconds": grace}, format="json")
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "grace_seconds"]
    assert error["type"] == error_type
    assert works(key["key"])


def test_the_longest_grace_period_is_seven_days(user_client, key):
    response = user_client.post(rotate_url(key["id"]), {"grace_seconds": 7 * 24 * 3600}, format="json")
    assert response.status_code == 200


@pytest.mark.parametrize("body", [[], "x", 3])
def test_a_body_that_is_not_an_object_is_422(user_client, key, body):
    response = user_client.post(rotate_url(key["id"]), body, format="json")
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "model_attributes_type"


def test_a_revoked_key_is_404(user_client, key):
    user_client.delete(f"/v1/dev/keys/{key['id']}")
    response = user_client.post(rotate_url(key["id"]))
    assert response.status_code == 404


def test_an_expired_key_is_409_and_keeps_its_secret(user_client, key):
    ApiKey.objects.filter(pk=key["id"]).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    response = user_client.post(rotate_url(key["id"]))
    assert response.status_code == 409
    assert response.json() == {"detail": "This key has expired; an expired key cannot be rotated."}
    assert ApiKey.objects.get(pk=key["id"]).key_prefix == key["key_prefix"]


@pytest.mark.parametrize("key_id", ["7f38a4bb-60ae-4e9a-b68a-7b5ff1937e49", "not-a-uuid"])
def test_unknown_ids_are_404(user_client, key_id):
    assert user_client.post(rotate_url(key_id)).status_code == 404


def test_another_users_key_is_404_and_unchanged(key, emulator_user, client_for):
    from . import firebase_emulator

    stranger = client_for(firebase_emulator.sign_up())
    assert stranger.post(rotate_url(key["id"])).status_code == 404
    assert works(key["key"])


def test_an_api_key_cannot_rotate_keys(key):
    response = key_client(key["key"]).post(rotate_url(key["id"]))
    assert response.status_code == 401
    assert works(key["key"])


def test_rotation_is_audited_with_the_grace_period(user_client, key):
    user_client.post(rotate_url(key["id"]), {"grace_seconds": 90}, format="json", HTTP_USER_AGENT="rotator/1.0")
    event = KeyEvent.objects.filter(api_key_id=key["id"], action="rotated").get()
    assert (event.actor_kind, event.via, event.user_agent, event.ip_address) == (
        "user",
        "api",
        "rotator/1.0",
        "127.0.0.1",
    )
    assert event.actor == ApiKey.objects.get(pk=key["id"]).owner
    assert event.details["grace_seconds"] == 90
    assert event.details["previous_key_expires_at"] is not None


def test_rotations_count_towards_the_creation_throttle(user_client, key, settings):
    settings.OMIKEYS_KEY_CREATION_RATE = (3, 3600)
    statuses = [user_client.post(rotate_url(key["id"])).status_code for _ in range(3)]
    # The key's creation counted once already.
    assert statuses == [200, 200, 429]


def test_a_rotation_racing_a_revocation_never_revives_the_key(user_client, key):
    """The rotation reads the key under a row lock, so a revoked key stays revoked."""
    api_key = ApiKey.objects.get(pk=key["id"])
    lifecycle.revoke_key(ApiKey.objects.get(pk=key["id"]))
    with pytest.raises(lifecycle.KeyRevoked):
        lifecycle.rotate_key(api_key)  # a stale copy that still looks active
    assert ApiKey.objects.get(pk=key["id"]).key_prefix == key["key_prefix"]


@pytest.mark.parametrize("ahead", [datetime.timedelta(seconds=5), datetime.timedelta(days=400)])
def test_a_key_rotated_in_the_future_by_another_clock_can_be_rotated(user_client, key, ahead):
    """rotated_at ahead of this server's clock (an import, another host's clock) is no reason to refuse."""
    ApiKey.objects.filter(pk=key["id"]).update(rotated_at=timezone.now() + ahead)

    plain = user_client.post(rotate_url(key["id"]), {"grace_seconds": 0}, format="json")
    assert plain.status_code == 200, plain.content
    assert works(plain.json()["key"]) and not works(key["key"])

    ApiKey.objects.filter(pk=key["id"]).update(rotated_at=timezone.now() + ahead)
    current = plain.json()["key_prefix"]
    conditional = user_client.post(
        rotate_url(key["id"]), {"grace_seconds": 0}, format="json", HTTP_IF_MATCH=f'"{current}"'
    )
    assert conditional.status_code == 200, conditional.content
    assert works(conditional.json()["key"])


def test_a_rotation_committed_after_this_request_arrived_is_not_undone(user_client, key, monkeypatch):
    """Another rotation commits after this request arrived, before it reads the caller's key: this one
    refuses with 409 naming the new secret, and that secret keeps working."""
    from apikeys.api import views

    real_own_key = views.own_key
    meanwhile = []

    def own_key(request, key_id, **kwargs):
        meanwhile.append(lifecycle.rotate_key(ApiKey.objects.get(pk=key_id)))
        return real_own_key(request, key_id, **kwargs)

    monkeypatch.setattr(views, "own_key", own_key)
    response = user_client.post(rotate_url(key["id"]), {"grace_seconds": 0}, format="json")

    assert response.status_code == 409, response.content
    (other,) = meanwhile
    assert other.api_key.key_prefix in response.json()["detail"]
    assert works(other.plaintext)


def test_the_core_refuses_only_when_the_locked_secret_differs_from_the_one_expected(key):
    api_key = ApiKey.objects.get(pk=key["id"])
    seen = api_key.key_prefix
    first = lifecycle.rotate_key(api_key, expected_prefix=seen)
    ApiKey.objects.filter(pk=key["id"]).update(rotated_at=timezone.now() + datetime.timedelta(days=30))
    with pytest.raises(lifecycle.AlreadyRotated):
        lifecycle.rotate_key(ApiKey.objects.get(pk=key["id"]), expected_prefix=seen)
    later = lifecycle.rotate_key(ApiKey.objects.get(pk=key["id"]), expected_prefix=first.api_key.key_prefix)
    assert works(later.plaintext) and not works(first.plaintext)
