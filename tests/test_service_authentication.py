"""Service tokens: the only credential the service API accepts, and never accepted anywhere else."""

import pytest
from rest_framework.test import APIClient

from apikeys import lifecycle

from .helpers import issue, key_client, service

pytestmark = pytest.mark.django_db

VERIFY = "/v1/service/keys/verify"
BODY = {"key": "omi_dev_" + "0" * 32, "client_ip": "203.0.113.9"}


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_a_service_token_is_accepted_and_stamped_used():
    client = service("verify_keys")

    response = client.post(VERIFY, data=BODY, format="json")

    assert response.status_code == 200
    client.service_client.refresh_from_db()
    assert client.service_client.last_used_at is not None


def test_no_credentials_is_401_saying_what_to_send(api):
    response = api.post(VERIFY, data=BODY, format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="omikeys-service"'
    assert "Authorization: Bearer <service token>" in response.json()["detail"]


def test_an_api_key_is_refused_naming_it(owner):
    response = bearer(issue(owner).plaintext).post(VERIFY, data=BODY, format="json")

    assert response.status_code == 401
    assert "not an API key (omi_dev_...)" in response.json()["detail"]


def test_a_firebase_id_token_is_refused_naming_it(emulator_user):
    response = bearer(emulator_user.id_token).post(VERIFY, data=BODY, format="json")

    assert response.status_code == 401
    assert "not a Firebase ID token" in response.json()["detail"]


def test_an_mcp_key_is_refused_naming_it():
    response = bearer("omi_mcp_" + "a" * 32).post(VERIFY, data=BODY, format="json")

    assert response.status_code == 401
    assert "not an MCP key (omi_mcp_...)" in response.json()["detail"]


@pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Bearer omi_svc_" + "0" * 32, "Bearer omi_svc_xyz"])
def test_malformed_and_unknown_tokens_are_401(api, header):
    api.credentials(HTTP_AUTHORIZATION=header)

    response = api.post(VERIFY, data=BODY, format="json")

    assert response.status_code == 401
    assert "service token" in response.json()["detail"]


def test_a_revoked_client_is_refused_at_once():
    client = service("verify_keys")
    lifecycle.revoke_service_client(client.service_client)

    assert client.post(VERIFY, data=BODY, format="json").status_code == 401


def test_a_rotated_token_stops_at_once_and_the_new_one_works():
    client = service("verify_keys")
    issued = lifecycle.rotate_service_client(client.service_client)

    assert client.post(VERIFY, data=BODY, format="json").status_code == 401
    assert bearer(issued.plaintext).post(VERIFY, data=BODY, format="json").status_code == 200


def test_failed_tokens_are_throttled_per_address_then_even_a_good_one_waits(settings):
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (2, 60)
    good = service("verify_keys")
    bad = bearer("omi_svc_" + "1" * 32)

    statuses = [bad.post(VERIFY, data=BODY, format="json").status_code for _ in range(3)]
    blocked = good.post(VERIFY, data=BODY, format="json")
    elsewhere = good.post(VERIFY, data=BODY, format="json", REMOTE_ADDR="192.0.2.50")

    assert statuses == [401, 401, 429]
    assert blocked.status_code == 429
    assert int(blocked["Retry-After"]) >= 1
    assert "Too many failed service token attempts" in blocked.json()["detail"]
    assert elsewhere.status_code == 200


def test_a_service_token_is_refused_as_an_api_key_naming_it():
    token = service("verify_keys").token

    response = key_client(token).get("/v1/dev/key")

    assert response.status_code == 401
    assert "not a service token (omi_svc_...)" in response.json()["detail"]


def test_a_service_token_is_refused_as_a_firebase_id_token_naming_it():
    token = service("verify_keys").token

    response = bearer(token).get("/v1/dev/keys")

    assert response.status_code == 401
    assert "not a service token (omi_svc_...)" in response.json()["detail"]


def test_the_token_is_stored_only_as_its_hash():
    from .test_secrets import every_stored_value

    client = service("verify_keys")
    secret = client.token.removeprefix("omi_svc_")

    values = list(every_stored_value())

    assert client.service_client.token_hash in values
    assert not [value for value in values if secret in value]
