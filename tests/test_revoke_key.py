"""DELETE /v1/dev/keys/{key_id}: revocation is immediate, idempotent and owner-only."""

import json

import pytest

from apikeys.models import ApiKey

from . import firebase_emulator

pytestmark = pytest.mark.django_db

URL = "/v1/dev/keys"


@pytest.fixture
def key(user_client):
    response = user_client.post(URL, data=json.dumps({"name": "to revoke"}), content_type="application/json")
    return response.json()


def test_it_revokes_a_key_and_keeps_the_row(user_client, key):
    response = user_client.delete(f"{URL}/{key['id']}")

    assert response.status_code == 204
    assert response.content == b""
    row = ApiKey.objects.get(pk=key["id"])
    assert row.revoked_at is not None
    assert not ApiKey.objects.active().filter(pk=key["id"]).exists()


def test_revoking_twice_is_204_and_keeps_the_first_time(user_client, key):
    user_client.delete(f"{URL}/{key['id']}")
    first = ApiKey.objects.get(pk=key["id"]).revoked_at
    assert user_client.delete(f"{URL}/{key['id']}").status_code == 204
    assert ApiKey.objects.get(pk=key["id"]).revoked_at == first


def test_another_users_key_is_404_and_unchanged(user_client, key, client_for):
    stranger = client_for(firebase_emulator.sign_up())
    response = stranger.delete(f"{URL}/{key['id']}")
    assert response.status_code == 404
    assert response.json() == {"detail": "No API key with this id."}
    assert ApiKey.objects.get(pk=key["id"]).revoked_at is None


@pytest.mark.parametrize("key_id", ["3dc2cbf1-fe55-4fa1-b347-8a87ee718c87", "not-a-uuid", "1", "%00", "x" * 500])
def test_unknown_or_malformed_ids_are_404(user_client, key, key_id):
    response = user_client.delete(f"{URL}/{key_id}")
    assert response.status_code == 404
    assert response.json()["detail"]
    assert ApiKey.objects.active().count() == 1


def test_revocation_needs_authentication(api, key):
    assert api.delete(f"{URL}/{key['id']}").status_code == 401
    assert ApiKey.objects.get(pk=key["id"]).revoked_at is None


@pytest.mark.parametrize("method", ["get", "post", "put"])
def test_other_methods_on_a_key_are_405(user_client, key, method):
    response = getattr(user_client, method)(f"{URL}/{key['id']}")
    assert response.status_code == 405
    assert response.json()["detail"]


def test_revocation_runs_a_bounded_number_of_queries(user_client, key, django_assert_max_num_queries):
    # user, key; then in one transaction (2 statements): the guarded update and its audit event.
    with django_assert_max_num_queries(6):
        assert user_client.delete(f"{URL}/{key['id']}").status_code == 204


def test_a_revoked_key_stops_verifying_at_once(user_client, key):
    from apikeys import lifecycle

    assert lifecycle.verify_key(key["key"]).api_key is not None
    user_client.delete(f"{URL}/{key['id']}")
    assert lifecycle.verify_key(key["key"]).api_key is None
