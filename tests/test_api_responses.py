"""What every /v1/ answer shares: 405 for a method whoever asks, Cache-Control: no-store, JSON under DEBUG."""

import json
import logging

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apikeys.api import views
from apikeys.models import ApiKey

from .helpers import issue, key_client, make_owner, service

pytestmark = pytest.mark.django_db

KEY_ID = "00000000-0000-4000-8000-000000000000"
# Each endpoint, and the methods it does not offer.
NOT_OFFERED = {
    "/v1/dev/keys": ["put", "patch", "delete", "options"],
    f"/v1/dev/keys/{KEY_ID}": ["get", "head", "post", "put", "options"],
    f"/v1/dev/keys/{KEY_ID}/rotate": ["get", "head", "put", "patch", "delete", "options"],
    f"/v1/dev/keys/{KEY_ID}/disable": ["get", "head", "put", "patch", "delete", "options"],
    f"/v1/dev/keys/{KEY_ID}/enable": ["get", "head", "put", "patch", "delete", "options"],
    "/v1/dev/key": ["post", "put", "patch", "delete", "options"],
}
CASES = [(path, method) for path, methods in NOT_OFFERED.items() for method in methods]


def call(client, method, path):
    return client.generic(method.upper(), path, data="{}", content_type="application/json")


@pytest.mark.parametrize("path, method", CASES)
def test_a_method_not_offered_is_405_without_credentials(path, method):
    response = call(APIClient(), method, path)

    assert response.status_code == 405, response.content
    if method != "head":
        assert response.json()["detail"] == f'Method "{method.upper()}" not allowed.'
    assert "WWW-Authenticate" not in response
    assert response["Allow"]


@pytest.mark.parametrize("credential", ["firebase", "api key", "garbage"])
@pytest.mark.parametrize("path, method", CASES)
def test_a_method_not_offered_is_405_whatever_the_credential(path, method, credential, request):
    if credential == "firebase":
        token = request.getfixturevalue("emulator_user").id_token
    elif credential == "api key":
        token = issue(make_owner("method-owner")).plaintext
    else:
        token = "not-a-credential"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    assert call(client, method, path).status_code == 405


def test_refused_methods_do_not_count_as_failed_key_checks(settings):
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (2, 60)
    client = key_client("omi_dev_" + "0" * 32)
    for _ in range(5):
        assert call(client, "put", "/v1/dev/key").status_code == 405
    issued = issue(make_owner("counted-owner"))
    assert key_client(issued.plaintext).get("/v1/dev/key").status_code == 200


def assert_no_store(response):
    assert response["Cache-Control"] == "no-store", (response.status_code, response.get("Cache-Control"))


def test_every_key_endpoint_answer_is_no_store(user_client):
    created = user_client.post("/v1/dev/keys", {"name": "cached?"}, format="json")
    key = created.json()
    answers = [
        created,
        user_client.get("/v1/dev/keys"),
        user_client.head("/v1/dev/keys"),
        user_client.post("/v1/dev/keys", {"name": ""}, format="json"),  # 422
        user_client.post("/v1/dev/keys", data="{", content_type="application/json"),  # 422 json_invalid
        user_client.post(f"/v1/dev/keys/{key['id']}/rotate", {"grace_seconds": 60}, format="json"),
        user_client.post(f"/v1/dev/keys/{KEY_ID}/rotate"),  # 404
        user_client.patch(f"/v1/dev/keys/{key['id']}", {"name": "still cached?"}, format="json"),
        user_client.post(f"/v1/dev/keys/{key['id']}/disable"),
        user_client.post(f"/v1/dev/keys/{key['id']}/enable"),
        user_client.put("/v1/dev/keys"),  # 405
        APIClient().get("/v1/dev/keys"),  # 401
        key_client(key["key"]).get("/v1/dev/key"),
        key_client("omi_dev_" + "f" * 32).get("/v1/dev/key"),  # 401
        user_client.get("/v1/dev/unknown"),  # 404 from no view
        user_client.delete(f"/v1/dev/keys/{key['id']}"),  # 204
    ]
    for response in answers:
        assert_no_store(response)


def test_a_server_error_on_the_api_is_no_store_json(monkeypatch):
    monkeypatch.setattr(views.ApiKey.objects, "unrevoked", lambda: 1 / 0)
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(make_owner("erring-owner"))
    response = client.get("/v1/dev/keys")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}
    assert_no_store(response)


@pytest.mark.parametrize(
    "token, named",
    [
        ("omi_mcp_" + "0123456789abcdef" * 2, "not an MCP key (omi_mcp_...)"),
        ("omi_mcp_short", "not an MCP key (omi_mcp_...)"),
        ("OMI_MCP_" + "0123456789ABCDEF" * 2, "not an MCP key (omi_mcp_...)"),
        ("Omi_Mcp_" + "0" * 32, "not an MCP key (omi_mcp_...)"),
        ("ya29.a0AfH6SMBexample", "not a Google OAuth access token"),
    ],
)
def test_a_recognisable_other_credential_is_named(token, named):
    response = key_client(token).get("/v1/dev/key")

    assert response.status_code == 401
    detail = response.json()["detail"]
    assert "needs an API key (omi_dev_...)" in detail and named in detail
    assert "POST /v1/dev/keys" in detail
    assert token not in response.content.decode()


@pytest.mark.parametrize("token", ["omi_mcp_" + "0123456789abcdef" * 2, "OMI_MCP_" + "A" * 32, "omi_mcp_x"])
def test_an_mcp_key_sent_to_a_firebase_token_endpoint_is_named(token):
    response = APIClient().get("/v1/dev/keys", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 401
    detail = response.json()["detail"]
    assert "needs a Firebase ID token, not an MCP key (omi_mcp_...)" in detail
    assert token not in response.content.decode()


@pytest.mark.parametrize("token", ["omi_dev_" + "a" * 32, "OMI_DEV_" + "A" * 32])
def test_a_dev_key_sent_to_a_firebase_token_endpoint_is_named_in_any_case(token):
    response = APIClient().get("/v1/dev/keys", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    assert "needs a Firebase ID token, not an API key" in response.json()["detail"]


def test_under_debug_v1_without_a_slash_is_json(settings):
    settings.DEBUG = True
    response = Client().get("/v1", HTTP_ACCEPT="text/html")
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


@pytest.mark.parametrize("wrapped", ['"{}"', "'{}'", "<{}>", "`{}`"])
def test_a_key_sent_with_quotes_or_brackets_says_so(wrapped):
    plaintext = issue(make_owner("quoted-owner")).plaintext
    response = key_client(wrapped.format(plaintext)).get("/v1/dev/key")

    assert response.status_code == 401
    assert "without quotes or brackets" in response.json()["detail"]
    assert plaintext not in response.content.decode()


def test_a_dev_key_that_does_not_verify_is_still_invalid_api_key():
    response = key_client("omi_dev_" + "0" * 32).get("/v1/dev/key")
    assert response.json() == {"detail": "Invalid API Key"}


def test_other_credentials_count_as_failed_key_checks(settings):
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (2, 60)
    client = key_client("omi_mcp_" + "0" * 32)
    assert [client.get("/v1/dev/key").status_code for _ in range(3)] == [401, 401, 429]


# --- DEBUG on (what scripts/dev runs) ------------------------------------------------


@pytest.fixture
def debug(settings):
    settings.DEBUG = True
    return settings


@pytest.mark.parametrize("path", ["/v1/", "/v1/dev/nothing", "/v1/dev/keys/x/y/z", "/v1/dev/keys/", "/v1/dev/key/"])
def test_under_debug_an_unknown_api_path_is_json(debug, path):
    response = Client().get(path, HTTP_ACCEPT="text/html")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert_no_store(response)


def test_under_debug_a_server_error_on_the_api_is_json_and_logged(debug, monkeypatch, caplog):
    monkeypatch.setattr(views.ApiKey.objects, "unrevoked", lambda: 1 / 0)
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(make_owner("debug-owner"))
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = client.get("/v1/dev/keys", HTTP_ACCEPT="text/html")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {"detail": "Internal server error."}
    assert "ZeroDivisionError" in caplog.text


def test_under_debug_the_api_errors_keep_their_shapes(debug, user_client):
    assert user_client.post("/v1/dev/keys", {"nme": "x"}, format="json").status_code == 422
    response = Client().get("/v1/dev/keys")
    assert response.status_code == 401 and response.json()["detail"].startswith("Authentication required")
    assert not ApiKey.objects.exists()


def test_under_debug_web_pages_still_get_django_s_debug_404(debug):
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert b"Page not found" in response.content and b"<html" in response.content


def test_under_debug_a_refused_host_on_the_api_is_json(debug):
    response = Client(HTTP_HOST="evil.example").get("/v1/dev/keys")
    assert response.status_code == 400
    assert response.json() == {"detail": "Bad request."}
    assert_no_store(response)


def test_a_redirect_on_the_api_is_left_as_it_is(settings):
    settings.SECURE_SSL_REDIRECT = True
    response = Client().get("/v1/dev/keys")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/v1/dev/keys"


@pytest.mark.django_db
def test_a_missing_field_is_worded_alike_on_every_endpoint(user_client):
    """DRF's "This field is required." and pydantic's "Field required." must not both answer a missing field."""
    owner = make_owner("missing-fields-owner")
    answers = [
        user_client.post("/v1/dev/keys", data={}, format="json"),
        service("verify_keys").post("/v1/service/keys/verify", data={}, format="json"),
        service("act_on_users").post(f"/v1/service/users/{owner.firebase_uid}/keys/revoke", data={}, format="json"),
    ]
    missing = []
    for response in answers:
        assert response.status_code == 422
        missing += [entry for entry in response.json()["detail"] if entry["type"] == "missing"]
    assert {tuple(entry["loc"]) for entry in missing} == {
        ("body", "name"),
        ("body", "key"),
        ("body", "client_ip"),
        ("body", "reason"),
    }
    assert {entry["msg"] for entry in missing} == {"Field required."}
