"""POST /v1/dev/keys: creating a key, and every way a request can be refused."""

import datetime
import json
import re

import pytest
from django.conf import settings

from apikeys import crypto
from apikeys.api.serializers import MAX_SCOPES_IN_REQUEST
from apikeys.models import ApiKey, Scope

pytestmark = pytest.mark.django_db

URL = "/v1/dev/keys"
DEFAULT_SCOPES = ["action_items:read", "conversations:read", "goals:read", "memories:read"]
ALL_SCOPES = sorted(
    f"{resource}:{action}"
    for resource in ("conversations", "memories", "action_items", "goals")
    for action in ("read", "write")
)
A_KEY = "omi_dev_" + "0123456789abcdef" * 2


def post(client, body, **extra):
    return client.post(URL, data=json.dumps(body), content_type="application/json", **extra)


def errors_of(response):
    assert response.status_code == 422, response.content
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail
    for entry in detail:
        assert set(entry) == {"loc", "msg", "type"}
        assert entry["msg"]
    return [(entry["loc"], entry["type"]) for entry in detail]


def test_it_creates_a_key_with_the_read_only_default(user_client):
    response = post(user_client, {"name": "My integration"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "id",
        "name",
        "key_prefix",
        "created_at",
        "key",
        "last_used_at",
        "expires_at",
        "status",
        "scopes",
    }
    assert body["expires_at"] is None and body["status"] == "active"
    assert body["name"] == "My integration"
    assert re.fullmatch(r"omi_dev_[0-9A-Za-z]{36}", body["key"])  # the checksum format (docs/key-format.md)
    assert crypto.has_valid_checksum(body["key"])
    assert body["key_prefix"] == f"omi_dev_{body['key'][8:12]}...{body['key'][-4:]}"
    assert body["last_used_at"] is None
    assert body["scopes"] == DEFAULT_SCOPES
    created = datetime.datetime.fromisoformat(body["created_at"])
    assert created.utcoffset() == datetime.timedelta(0)
    assert abs(datetime.datetime.now(datetime.UTC) - created) < datetime.timedelta(minutes=1)
    key = ApiKey.objects.get(pk=body["id"])
    assert key.owner.firebase_uid == user_client.emulator_user.uid
    assert key.key_hash == crypto.hash_key(body["key"])
    assert response["Cache-Control"] == "no-store"


def test_null_scopes_mean_the_default(user_client):
    assert post(user_client, {"name": "n", "scopes": None}).json()["scopes"] == DEFAULT_SCOPES


def test_the_default_follows_the_scope_table(user_client):
    Scope.objects.filter(code="goals:read").update(is_default=False)
    assert post(user_client, {"name": "n"}).json()["scopes"] == [s for s in DEFAULT_SCOPES if s != "goals:read"]


def test_every_contract_scope_can_be_chosen(user_client):
    response = post(user_client, {"name": "everything", "scopes": list(reversed(ALL_SCOPES))})
    assert response.status_code == 200
    assert response.json()["scopes"] == ALL_SCOPES


def test_duplicate_scopes_are_collapsed_in_a_stable_order(user_client):
    response = post(user_client, {"name": "n", "scopes": ["memories:write", "goals:read", "memories:write"]})
    assert response.json()["scopes"] == ["goals:read", "memories:write"]
    assert sorted(ApiKey.objects.get().scopes.values_list("code", flat=True)) == ["goals:read", "memories:write"]


def test_a_scope_added_by_staff_is_accepted_without_a_code_change(user_client):
    Scope.objects.create(code="folders:read", description="Read folders")
    response = post(user_client, {"name": "n", "scopes": ["folders:read"]})
    assert response.status_code == 200
    assert response.json()["scopes"] == ["folders:read"]


def test_the_name_is_stripped(user_client):
    assert post(user_client, {"name": "  CI bot \t"}).json()["name"] == "CI bot"


def test_a_name_of_exactly_100_characters_is_accepted(user_client):
    assert post(user_client, {"name": "x" * 100}).status_code == 200


def test_unicode_names_are_kept(user_client):
    assert post(user_client, {"name": "Zapier → Notion ✓ 日本"}).json()["name"] == "Zapier → Notion ✓ 日本"


def test_fields_that_are_not_input_are_refused_and_create_nothing(user_client):
    response = post(user_client, {"name": "n", "owner": "someone-else", "key": A_KEY, "id": "x"})
    assert errors_of(response) == [
        (["body", "owner"], "extra_forbidden"),
        (["body", "key"], "extra_forbidden"),
        (["body", "id"], "extra_forbidden"),
    ]
    assert A_KEY not in response.content.decode()
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, [(["body", "name"], "missing")]),
        ({"scopes": ["memories:read"]}, [(["body", "name"], "missing")]),
        ({"name": ""}, [(["body", "name"], "string_too_short")]),
        ({"name": " \t\n "}, [(["body", "name"], "string_too_short")]),
        ({"name": "x" * 101}, [(["body", "name"], "string_too_long")]),
        ({"name": " " + "x" * 101 + " "}, [(["body", "name"], "string_too_long")]),
        ({"name": None}, [(["body", "name"], "string_type")]),
        ({"name": 42}, [(["body", "name"], "string_type")]),
        ({"name": 4.2}, [(["body", "name"], "string_type")]),
        ({"name": True}, [(["body", "name"], "string_type")]),
        ({"name": ["a"]}, [(["body", "name"], "string_type")]),
        ({"name": {"a": 1}}, [(["body", "name"], "string_type")]),
        ({"name": f"prod {A_KEY}"}, [(["body", "name"], "secret_in_name")]),
        ({"name": A_KEY.replace("omi_dev_", "omi_mcp_")}, [(["body", "name"], "secret_in_name")]),
        ({"name": f"key={A_KEY.upper()}"}, [(["body", "name"], "secret_in_name")]),
        ({"name": "bad\x00name"}, [(["body", "name"], "string_control_characters")]),
        ({"name": "two\nlines"}, [(["body", "name"], "string_control_characters")]),
        ({"name": "n", "scopes": "memories:read"}, [(["body", "scopes"], "list_type")]),
        ({"name": "n", "scopes": {"memories:read": True}}, [(["body", "scopes"], "list_type")]),
        ({"name": "n", "scopes": 7}, [(["body", "scopes"], "list_type")]),
        ({"name": "n", "scopes": []}, [(["body", "scopes"], "too_short")]),
        ({"name": "n", "scopes": [1]}, [(["body", "scopes", 0], "string_type")]),
        ({"name": "n", "scopes": [None]}, [(["body", "scopes", 0], "string_type")]),
        ({"name": "n", "scopes": ["memories:read", "memories:delete"]}, [(["body", "scopes", 1], "enum")]),
        ({"name": "n", "scopes": ["MEMORIES:READ"]}, [(["body", "scopes", 0], "enum")]),
        ({"name": "n", "scopes": ["memories:read\x00"]}, [(["body", "scopes", 0], "enum")]),
        (
            {"name": "n", "scopes": ["goals:read", 3, "admin", ["memories:read"]]},
            [
                (["body", "scopes", 1], "string_type"),
                (["body", "scopes", 2], "enum"),
                (["body", "scopes", 3], "string_type"),
            ],
        ),
        (
            {"name": "n", "scopes": ["goals:read"] * (MAX_SCOPES_IN_REQUEST + 1)},
            [(["body", "scopes"], "too_long")],
        ),
        ({"name": "", "scopes": ["nope"]}, [(["body", "name"], "string_too_short"), (["body", "scopes", 0], "enum")]),
    ],
)
def test_invalid_bodies_are_422_pointing_at_the_field(user_client, body, expected):
    assert errors_of(post(user_client, body)) == expected
    assert not ApiKey.objects.exists()


def test_an_unknown_scope_message_names_the_valid_scopes(user_client):
    response = post(user_client, {"name": "n", "scopes": ["memories:delete"]})
    message = response.json()["detail"][0]["msg"]
    assert "memories:delete" in message
    for scope in ALL_SCOPES:
        assert scope in message


def test_a_long_unknown_scope_is_not_echoed_in_full(user_client):
    scope = "s" * 5000
    message = post(user_client, {"name": "n", "scopes": [scope]}).json()["detail"][0]["msg"]
    assert scope not in message and len(message) < 500


@pytest.mark.parametrize("body", [[], ["name"], "name", 5, None, True])
def test_a_body_that_is_not_an_object_is_422(user_client, body):
    assert errors_of(post(user_client, body)) == [(["body"], "model_attributes_type")]


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"name": "n",}', b"{'name': 'n'}", b'{"name": NaN}', b'{"name": Infinity}', b"\xff\xfe", b"[" * 5_000],
)
def test_malformed_json_is_422_json_invalid(user_client, raw):
    response = user_client.post(URL, data=raw, content_type="application/json")
    assert errors_of(response) == [(["body"], "json_invalid")]


def test_deeply_nested_json_is_422_not_a_crash(user_client):
    raw = b'{"name": ' + b"[" * 7_000 + b"]" * 7_000 + b"}"
    assert errors_of(user_client.post(URL, data=raw, content_type="application/json")) == [(["body"], "json_invalid")]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_a_non_json_content_type_is_422(user_client, content_type):
    response = user_client.post(URL, data='{"name": "n"}', content_type=content_type)
    assert errors_of(response) == [(["body"], "content_type")]
    assert not ApiKey.objects.exists()


def test_an_oversized_body_is_413(user_client):
    response = post(user_client, {"name": "n", "padding": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE})
    assert response.status_code == 413
    assert "at most" in response.json()["detail"]


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "image/png", "*/*;q=bad"])
def test_it_answers_json_whatever_the_accept_header(user_client, accept):
    response = post(user_client, {"name": "n"}, HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["key"].startswith("omi_dev_")


@pytest.mark.parametrize("charset", ["rot13", "base64", "zlib", "latin-1", "utf-8; charset=rot13"])
def test_the_charset_parameter_is_never_used_as_a_codec(user_client, charset):
    response = user_client.generic("POST", URL, b'{"name": "n"}', content_type=f"application/json; charset={charset}")
    assert response.status_code == 200


def test_a_body_over_djangos_limit_is_413_without_buffering_it(user_client):
    response = user_client.generic(
        "POST", URL, b'{"name": "' + b"x" * 3_000_000 + b'"}', content_type="application/json"
    )
    assert response.status_code == 413
    assert response.json() == {"detail": "The request body must be at most 16384 bytes."}


def test_a_key_pasted_as_a_scope_is_not_echoed(user_client):
    response = post(user_client, {"name": "n", "scopes": [A_KEY]})
    assert errors_of(response) == [(["body", "scopes", 0], "enum")]
    assert A_KEY[8:] not in response.content.decode()


def test_authentication_comes_before_validation(api):
    response = post(api, {"name": ""})
    assert response.status_code == 401


@pytest.mark.parametrize("method", ["put", "patch"])
def test_other_methods_are_405_with_json(user_client, method):
    response = getattr(user_client, method)(URL, data="{}", content_type="application/json")
    assert response.status_code == 405
    assert response.json()["detail"]


def test_options_is_405_and_allow_lists_the_documented_methods(user_client):
    response = user_client.options(URL)
    assert response.status_code == 405
    assert set(response["Allow"].split(", ")) == {"GET", "POST", "HEAD"}


def test_unknown_api_paths_are_json_404(user_client):
    response = user_client.get("/v1/dev/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_first_request_creates_the_user_in_a_bounded_number_of_queries(user_client, django_assert_max_num_queries):
    with django_assert_max_num_queries(5):  # user: look up, savepoint, insert, release; then the keys
        assert user_client.get(URL).status_code == 200


def test_create_runs_a_bounded_number_of_queries(user_client, django_assert_max_num_queries):
    post(user_client, {"name": "warm-up"})  # first sight of the user creates it
    # user, scopes; then in one transaction (2 statements): owner lock, active-key count,
    # key insert, scope links, audit event, the owner's "key created" email notice; then the response's scopes.
    with django_assert_max_num_queries(11):
        assert post(user_client, {"name": "n", "scopes": ALL_SCOPES}).status_code == 200
