"""Request bodies of the key API: unknown fields refused, RFC 3339 timestamps in either case."""

import datetime
import json

import pytest
from rest_framework.test import APIClient

from apikeys.models import ApiKey

pytestmark = pytest.mark.django_db

CREATE = "/v1/dev/keys"
CREATE_FIELDS = "name, scopes, expires_at"


def rotate_url(key_id) -> str:
    return f"/v1/dev/keys/{key_id}/rotate"


def post(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


@pytest.fixture
def key(user_client):
    response = post(user_client, CREATE, {"name": "rotated"})
    assert response.status_code == 200
    return response.json()


def extra_entries(response) -> list[dict]:
    assert response.status_code == 422, response.content
    return [entry for entry in response.json()["detail"] if entry["type"] == "extra_forbidden"]


@pytest.mark.parametrize(
    "body, unknown",
    [
        ({"name": "x", "expiresAt": "2026-12-30T00:00:00Z"}, ["expiresAt"]),
        ({"name": "x", "expires": None}, ["expires"]),
        ({"name": "x", "scope": ["memories:write"]}, ["scope"]),
        ({"name": "x", "grace_seconds": 60}, ["grace_seconds"]),
        ({"name": "x", "Name": "y", "key": "omi_dev_x"}, ["Name", "key"]),
        ({"name": "x", "": 1}, [""]),
    ],
)
def test_an_unknown_field_in_a_create_is_422_at_that_field(user_client, body, unknown):
    response = post(user_client, CREATE, body)

    entries = extra_entries(response)
    assert [entry["loc"] for entry in entries] == [["body", field] for field in unknown]
    for entry in entries:
        assert CREATE_FIELDS in entry["msg"]
    assert not ApiKey.objects.exists()


def test_unknown_fields_are_reported_with_the_other_errors(user_client):
    response = post(user_client, CREATE, {"expiresAt": "2027-01-01T00:00:00Z"})

    assert response.status_code == 422
    locs = {tuple(entry["loc"]): entry["type"] for entry in response.json()["detail"]}
    assert locs == {("body", "name"): "missing", ("body", "expiresAt"): "extra_forbidden"}


@pytest.mark.parametrize("body", [{"grace": 3600}, {"grace_seconds": 60, "graceSeconds": 60}, {"expected_prefix": "x"}])
def test_an_unknown_field_in_a_rotation_is_422_and_the_secret_is_kept(user_client, key, body):
    response = post(user_client, rotate_url(key["id"]), body)

    entries = extra_entries(response)
    assert entries and all("grace_seconds" in entry["msg"] for entry in entries)
    assert ApiKey.objects.get(pk=key["id"]).key_prefix == key["key_prefix"]
    assert APIClient().get("/v1/dev/key", HTTP_AUTHORIZATION=f"Bearer {key['key']}").status_code == 200


@pytest.mark.parametrize(
    "raw, field",
    [
        (b'{"name": "a", "name": "b"}', "name"),
        (b'{"name": "a", "scopes": [], "scopes": ["memories:write"]}', "scopes"),
        (b'{"name": "a", "expires_at": null, "expires_at": "2027-01-01T00:00:00Z"}', "expires_at"),
    ],
)
def test_a_field_given_twice_is_422_and_creates_nothing(user_client, raw, field):
    response = user_client.post(CREATE, data=raw, content_type="application/json")

    assert response.status_code == 422, response.content
    (entry,) = response.json()["detail"]
    assert entry["loc"] == ["body"] and entry["type"] == "json_invalid"
    assert f'Duplicate field "{field}"' in entry["msg"]
    assert not ApiKey.objects.exists()


def test_a_field_given_twice_in_a_rotation_is_422_and_the_secret_is_kept(user_client, key):
    raw = b'{"grace_seconds": 3600, "grace_seconds": 0}'
    response = user_client.post(rotate_url(key["id"]), data=raw, content_type="application/json")

    assert response.status_code == 422
    assert 'Duplicate field "grace_seconds"' in response.json()["detail"][0]["msg"]
    assert ApiKey.objects.get(pk=key["id"]).key_prefix == key["key_prefix"]


def test_the_same_name_in_different_objects_is_not_a_duplicate(user_client):
    # Only repeats within one object count; nested objects are separate (here refused for their type).
    raw = b'{"name": "a", "scopes": [{"name": 1}, {"name": 2}]}'
    response = user_client.post(CREATE, data=raw, content_type="application/json")
    assert "Duplicate" not in response.content.decode()


@pytest.mark.parametrize("body", [{"foo": 1}, {"revoke": True, "reason": "x"}])
def test_a_revocation_with_fields_is_422_and_the_key_keeps_working(user_client, key, body):
    url = f"/v1/dev/keys/{key['id']}"
    response = user_client.delete(url, data=json.dumps(body), content_type="application/json")

    entries = extra_entries(response)
    assert [entry["loc"] for entry in entries] == [["body", field] for field in body]
    assert all("takes no fields" in entry["msg"] for entry in entries)
    assert ApiKey.objects.get(pk=key["id"]).revoked_at is None


def test_a_revocation_with_a_body_that_is_not_an_object_is_422(user_client, key):
    url = f"/v1/dev/keys/{key['id']}"
    response = user_client.delete(url, data="[1]", content_type="application/json")
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "model_attributes_type"
    assert ApiKey.objects.get(pk=key["id"]).revoked_at is None


@pytest.mark.parametrize("data", [None, "", "{}"])
def test_a_revocation_without_a_body_or_with_an_empty_object_is_204(user_client, key, data):
    url = f"/v1/dev/keys/{key['id']}"
    if data is None:
        response = user_client.delete(url)
    else:
        response = user_client.delete(url, data=data, content_type="application/json")
    assert response.status_code == 204, response.content
    assert ApiKey.objects.get(pk=key["id"]).revoked_at is not None


def test_known_fields_alone_still_work(user_client, key):
    assert post(user_client, CREATE, {"name": "y", "scopes": None, "expires_at": None}).status_code == 200
    assert post(user_client, rotate_url(key["id"]), {"grace_seconds": 60}).status_code == 200


def test_the_served_schema_forbids_additional_properties_in_request_bodies(api):
    schemas = api.get("/openapi.json").json()["components"]["schemas"]

    assert schemas["DevApiKeyCreate"]["additionalProperties"] is False
    assert schemas["DevApiKeyRotate"]["additionalProperties"] is False
    assert "additionalProperties" not in schemas["DevApiKey"]


def in_days(days: int) -> datetime.datetime:
    return (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)).replace(microsecond=0)


@pytest.mark.parametrize(
    "template",
    ["{date}t{time}z", "{date}T{time}z", "{date}t{time}Z", "{date}t{time}.5z", "{date}t{time}+02:00", "{date}T{time}Z"],
)
def test_rfc_3339_timestamps_are_accepted_in_either_case(user_client, template):
    moment = in_days(30)
    text = template.format(date=moment.strftime("%Y-%m-%d"), time=moment.strftime("%H:%M:%S"))

    response = post(user_client, CREATE, {"name": "x", "expires_at": text})

    assert response.status_code == 200, response.content
    expected = datetime.datetime.fromisoformat(text.upper())
    if expected.tzinfo is None:
        expected = expected.replace(tzinfo=datetime.UTC)
    assert ApiKey.objects.get().expires_at == expected


@pytest.mark.parametrize("text", ["2027-01-01x00:00:00z", "2027-01-01t00:00:00y", "tomorrow", "2027-01-01t25:00:00z"])
def test_other_letters_are_still_refused(user_client, text):
    response = post(user_client, CREATE, {"name": "x", "expires_at": text})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "expires_at"]
