"""GET /v1/dev/keys: the caller's active keys, newest first, never the secret."""

import datetime
import json

import pytest
from django.utils import timezone

from apikeys.models import ApiKey

from . import firebase_emulator

pytestmark = pytest.mark.django_db

URL = "/v1/dev/keys"


def create(client, name, scopes=None):
    body = {"name": name} if scopes is None else {"name": name, "scopes": scopes}
    response = client.post(URL, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200
    return response.json()


def test_a_new_user_has_no_keys(user_client):
    response = user_client.get(URL)
    assert response.status_code == 200
    assert response.json() == []


def test_it_lists_active_keys_newest_first_without_the_secret(user_client):
    first = create(user_client, "first")
    second = create(user_client, "second", ["memories:write"])
    ApiKey.objects.filter(pk=first["id"]).update(created_at=timezone.now() - datetime.timedelta(hours=1))

    listed = user_client.get(URL).json()

    assert [item["id"] for item in listed] == [second["id"], first["id"]]
    for item, created in zip(listed, [second, first], strict=True):
        assert set(item) == {
            "id", "name", "key_prefix", "created_at", "last_used_at", "expires_at", "status", "scopes", "disabled_at",
        }  # fmt: skip
        assert item["disabled_at"] is None
        assert {k: v for k, v in item.items() if k not in ("created_at", "disabled_at")} == {
            k: v for k, v in created.items() if k not in ("key", "created_at")
        }
    assert first["key"] not in json.dumps(listed) and second["key"] not in json.dumps(listed)


def test_revoked_keys_are_not_listed(user_client):
    kept = create(user_client, "kept")
    gone = create(user_client, "gone")
    assert user_client.delete(f"{URL}/{gone['id']}").status_code == 204
    assert [item["id"] for item in user_client.get(URL).json()] == [kept["id"]]


def test_it_never_lists_another_users_keys(user_client, client_for):
    mine = create(user_client, "mine")
    other = client_for(firebase_emulator.sign_up())
    create(other, "theirs")
    assert [item["id"] for item in user_client.get(URL).json()] == [mine["id"]]
    assert [item["name"] for item in other.get(URL).json()] == ["theirs"]


def test_listing_does_not_grow_queries_with_the_number_of_keys(user_client, django_assert_max_num_queries):
    create(user_client, "one")
    with django_assert_max_num_queries(3):  # user, keys, scopes
        assert len(user_client.get(URL).json()) == 1
    for index in range(10):
        create(user_client, f"key {index}", ["goals:read", "memories:write"])
    with django_assert_max_num_queries(3):
        assert len(user_client.get(URL).json()) == 11
