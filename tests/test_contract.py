"""The key API against Omi's published contract (tests/contract/omi-dev-keys.openapi.yaml).

Three angles:

* live responses validated with ``jsonschema`` (Draft 2020-12) against the contract's schemas;
* the OpenAPI document the project serves (``/openapi.json``) compared with the contract,
  property by property, by how each schema judges a fixed list of probe values;
* schemathesis fuzzing the Django WSGI app, driven once by the contract and once by the
  served document, with a real Auth Emulator ID token.

The contract is a copy kept in the repository: nothing here reads outside the project.
"""

import copy
import datetime
import json
import re
from pathlib import Path

import pytest
import schemathesis
import yaml
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from omikeys_project.wsgi import application

pytestmark = pytest.mark.django_db

URL = "/v1/dev/keys"
CONTRACT_PATH = Path(__file__).parent / "contract" / "omi-dev-keys.openapi.yaml"
CONTRACT = yaml.safe_load(CONTRACT_PATH.read_text(encoding="utf-8"))
CONTRACT_URI = "urn:omikeys:contract"
SERVED_URI = "urn:omikeys:served"
CREATE = ("/v1/dev/keys", "post")


# --- JSON Schema machinery -------------------------------------------------------------

# jsonschema checks "date-time" only when the optional rfc3339-validator is installed; the
# check is defined here so that it always runs (RFC 3339 syntax, then a real calendar date).
FORMAT_CHECKER = FormatChecker()
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _is_rfc3339_date_time(value) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.fullmatch(value):
        return False
    datetime.datetime.fromisoformat(value.upper())
    return True


def escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def pointer_to(*tokens: str) -> str:
    return "".join(f"/{escape(token)}" for token in tokens)


def node_at(document: dict, pointer: str):
    node = document
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def follow(document: dict, pointer: str) -> tuple[str, dict]:
    """The node at ``pointer``, following local ``$ref``s; returns its final pointer and the node."""
    node = node_at(document, pointer)
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"only local references are expected, not {ref}"
        assert ref not in seen, f"reference cycle at {ref}"
        seen.add(ref)
        pointer = ref[1:]
        node = node_at(document, pointer)
    return pointer, node


def validator_for(document: dict, uri: str, pointer: str) -> Draft202012Validator:
    """A Draft 2020-12 validator for the schema at ``pointer``; its ``$ref``s resolve in ``document``."""
    registry = Registry().with_resource(uri, DRAFT202012.create_resource(document))
    return Draft202012Validator({"$ref": f"{uri}#{pointer}"}, registry=registry, format_checker=FORMAT_CHECKER)


def contract_validator(name: str) -> Draft202012Validator:
    return validator_for(CONTRACT, CONTRACT_URI, f"/components/schemas/{name}")


def list_item_validator() -> Draft202012Validator:
    """The contract's ``DevApiKeyCreated`` without ``key``: what GET /v1/dev/keys lists."""
    document = copy.deepcopy(CONTRACT)
    listed = document["components"]["schemas"]["DevApiKeyCreated"]
    del listed["properties"]["key"]
    listed["required"].remove("key")
    return validator_for(document, CONTRACT_URI, "/components/schemas/DevApiKeyCreated")


def assert_valid(instance, validator: Draft202012Validator):
    errors = sorted(validator.iter_errors(instance), key=lambda error: list(error.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors) + f"\n{instance!r}"


# --- Requests -------------------------------------------------------------------------


def post_json(client, body, **extra):
    return client.post(URL, data=json.dumps(body), content_type="application/json", **extra)


def json_body(response, status: int):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    return response.json()


# === a. Live responses against the contract's schemas ==================================


def test_contract_validators_reject_bodies_that_break_the_contract():
    """The validators used below are strict: formats, types, required keys and nested refs count."""
    created = {
        "id": "1",
        "name": "n",
        "key_prefix": "omi_dev_abcd...wxyz",
        "created_at": "2026-01-01T00:00:00Z",
        "key": "omi_dev_" + "0" * 32,
        "last_used_at": None,
        "scopes": ["memories:read"],
    }
    assert_valid(created, contract_validator("DevApiKeyCreated"))
    for broken in (
        {**created, "created_at": "yesterday"},
        {**created, "created_at": "2026-13-01T00:00:00Z"},
        {**created, "last_used_at": "2026-01-01"},
        {**created, "scopes": ["memories:read", 3]},
        {**created, "id": 1},
        {key: value for key, value in created.items() if key != "key"},
    ):
        assert not contract_validator("DevApiKeyCreated").is_valid(broken), broken
    listed = {key: value for key, value in created.items() if key != "key"}
    assert_valid(listed, list_item_validator())
    assert not list_item_validator().is_valid({**listed, "created_at": None})
    assert not contract_validator("HTTPValidationError").is_valid({"detail": [{"loc": [1.5], "msg": "m", "type": "t"}]})
    assert not contract_validator("HTTPValidationError").is_valid({"detail": [{"loc": ["body"], "msg": "m"}]})
    assert not contract_validator("ErrorResponse").is_valid({"detail": None})
    assert not contract_validator("ErrorResponse").is_valid({})


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Contract check"},
        {"name": "Contract check", "scopes": None},
        {"name": "Contract check", "scopes": ["memories:read", "memories:write", "goals:write"]},
    ],
    ids=["scopes-omitted", "scopes-null", "scopes-explicit"],
)
def test_create_response_matches_contract_schema(user_client, body):
    created = json_body(post_json(user_client, body), 200)

    assert_valid(created, contract_validator("DevApiKeyCreated"))
    if body.get("scopes"):
        assert sorted(created["scopes"]) == sorted(body["scopes"])


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        ("{}", "application/json"),
        ('{"name": ""}', "application/json"),
        ('{"name": "   "}', "application/json"),
        ('{"name": 42}', "application/json"),
        ('{"name": null}', "application/json"),
        (json.dumps({"name": "x" * 101}), "application/json"),
        ('{"name": "ok", "scopes": []}', "application/json"),
        ('{"name": "ok", "scopes": "memories:read"}', "application/json"),
        ('{"name": "ok", "scopes": ["memories:read", "nope", 7]}', "application/json"),
        ('["name"]', "application/json"),
        ('"name"', "application/json"),
        ('{"name": ', "application/json"),
        ("name=ok", "application/x-www-form-urlencoded"),
    ],
    ids=[
        "missing-name",
        "empty-name",
        "blank-name",
        "int-name",
        "null-name",
        "long-name",
        "empty-scopes",
        "string-scopes",
        "bad-scope-items",
        "array-body",
        "string-body",
        "malformed-json",
        "form-body",
    ],
)
def test_validation_error_response_matches_contract_schema(user_client, raw, content_type):
    error = json_body(user_client.post(URL, data=raw, content_type=content_type), 422)

    assert_valid(error, contract_validator("HTTPValidationError"))
    assert error["detail"], "a 422 must say what is wrong"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer one two", "Bearer omi_dev_" + "a" * 32],
    ids=["missing", "malformed-token", "other-scheme", "two-parts", "api-key-instead-of-token"],
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_unauthenticated_response_matches_contract_error_schema(api, method, authorization):
    extra = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    if method == "post":
        response = post_json(api, {"name": "Contract check"}, **extra)
    else:
        response = api.get(URL, **extra)

    assert_valid(json_body(response, 401), contract_validator("ErrorResponse"))


def test_listed_keys_match_contract_schema_without_the_secret(user_client):
    post_json(user_client, {"name": "Default scopes"})
    post_json(user_client, {"name": "Explicit scopes", "scopes": ["conversations:write"]})

    listed = json_body(user_client.get(URL), 200)

    assert isinstance(listed, list)
    assert len(listed) == 2
    for item in listed:
        assert_valid(item, list_item_validator())
        assert "key" not in item


# === b. The served OpenAPI document against the contract ================================

# JSON values each property schema is asked to judge; two schemas are equivalent here when
# they accept and reject exactly the same probes. Annotations (title, description,
# readOnly...) do not take part in validation, so they are ignored by construction.
PROBES = [
    "",
    "x",
    "My integration",
    "memories:read",
    "2026-01-01T00:00:00Z",
    "2026-01-01T12:30:00.123456+02:00",
    "2026-13-01T00:00:00Z",
    "2026-01-01",
    None,
    0,
    1,
    -7,
    1.0,
    1.5,
    True,
    False,
    [],
    ["a"],
    ["memories:read", "goals:write"],
    [1],
    ["a", 2],
    [None],
    [True],
    [1.5],
    [[]],
    [{}],
    {},
    {"a": 1},
    {"detail": "x"},
    [{"loc": ["body", "name"], "msg": "m", "type": "t"}],
    [{"loc": ["body", "scopes", 0], "msg": "m", "type": "t"}],
    [{"loc": [], "msg": "", "type": ""}],
    [{"loc": [1.5], "msg": "m", "type": "t"}],
    [{"loc": [True], "msg": "m", "type": "t"}],
    [{"loc": "body", "msg": "m", "type": "t"}],
    [{"loc": ["body"], "msg": 1, "type": "t"}],
    [{"loc": ["body"], "msg": "m", "type": None}],
    [{"msg": "m", "type": "t"}],
    [{"loc": ["body"], "type": "t"}],
    [{"loc": ["body"], "msg": "m"}],
]


def verdicts(document: dict, uri: str, pointer: str) -> list[bool]:
    validator = validator_for(document, uri, pointer)
    return [validator.is_valid(probe) for probe in PROBES]


def probe_mismatches(contract: tuple[dict, str, str], served: tuple[dict, str, str]) -> list[str]:
    expected, actual = verdicts(*contract), verdicts(*served)
    return [
        f"{probe!r}: contract {'accepts' if want else 'rejects'}, served {'accepts' if got else 'rejects'}"
        for probe, want, got in zip(PROBES, expected, actual, strict=True)
        if want != got
    ]


@pytest.fixture
def served(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] in {"application/json", "application/vnd.oai.openapi+json"}
    return json.loads(response.content)


def operation_by_id(document: dict, operation_id: str) -> tuple[str, str, dict]:
    found = [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and operation.get("operationId") == operation_id
    ]
    assert len(found) == 1, f"{operation_id}: {len(found)} operations"
    return found[0]


def assert_same_object_schema(
    served_document: dict, contract_pointer: str, served_pointer: str, extensions: frozenset = frozenset()
) -> dict:
    """Same property names (plus exactly the named ``extensions``), contract's required ⊆ ours,
    and probe-equivalent property schemas.

    Returns ``{property: (contract pointer, served pointer)}`` for further comparisons.
    """
    contract_pointer, contract_schema = follow(CONTRACT, contract_pointer)
    served_pointer, served_schema = follow(served_document, served_pointer)
    assert contract_schema.get("type") == "object"
    assert served_schema.get("type") == "object", served_schema
    assert set(served_schema.get("properties", {})) == set(contract_schema["properties"]) | extensions, (
        contract_pointer,
        served_pointer,
    )
    missing = set(contract_schema.get("required", [])) - set(served_schema.get("required", []))
    assert not missing, f"{served_pointer} does not require {sorted(missing)}"
    pointers = {}
    for name in contract_schema["properties"]:
        contract_at = f"{contract_pointer}/properties/{escape(name)}"
        served_at = f"{served_pointer}/properties/{escape(name)}"
        contract_verdicts = verdicts(CONTRACT, CONTRACT_URI, contract_at)
        # A property schema accepting everything (or nothing) would make the comparison vacuous.
        assert True in contract_verdicts and False in contract_verdicts, name
        mismatches = probe_mismatches((CONTRACT, CONTRACT_URI, contract_at), (served_document, SERVED_URI, served_at))
        assert not mismatches, f"property {name!r}:\n" + "\n".join(mismatches)
        pointers[name] = (contract_at, served_at)
    return pointers


def response_schema_pointer(document: dict, path: str, method: str, status: str) -> str:
    response_pointer, response = follow(document, pointer_to("paths", path, method, "responses", status))
    assert "application/json" in response.get("content", {}), f"{status} has no JSON body"
    return f"{response_pointer}{pointer_to('content', 'application/json', 'schema')}"


def test_probe_comparison_tells_different_schemas_apart():
    """Every kind of difference the contract's properties could hide changes some verdict."""
    pairs = [
        ({"type": "string", "format": "date-time"}, {"type": "string"}),
        ({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}, {"type": "string"}),
        ({"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]}, {"type": ["array", "null"]}),
        ({"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]}, {"type": "array"}),
        ({"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}, {"type": "array"}),
        (
            {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
            {"type": "array", "items": {"type": "string"}},
        ),
        ({"anyOf": [{"type": "string"}, {"type": "array"}, {"type": "object"}]}, {}),
        ({"anyOf": [{"type": "string"}, {"type": "array"}, {"type": "object"}]}, {"type": ["string", "object"]}),
        (
            {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
            {"type": "array", "items": {"type": "object"}},
        ),
    ]
    for left, right in pairs:
        left_document = {"components": CONTRACT["components"], "s": left}
        right_document = {"components": CONTRACT["components"], "s": right}
        assert probe_mismatches((left_document, CONTRACT_URI, "/s"), (right_document, SERVED_URI, "/s")), (left, right)
        assert not probe_mismatches((left_document, CONTRACT_URI, "/s"), (left_document, SERVED_URI, "/s"))


def test_served_schema_is_openapi_3_1(served):
    assert served["openapi"].startswith("3.1.")
    assert CONTRACT["openapi"].startswith("3.1.")


def test_served_create_operation_has_the_contract_path_method_and_operation_id(served):
    path, method, _ = operation_by_id(CONTRACT, "createApiKey")
    assert (path, method) == CREATE
    assert operation_by_id(served, "createApiKey")[:2] == (path, method)


def test_served_create_request_body_is_required_json(served):
    _, _, contract_operation = operation_by_id(CONTRACT, "createApiKey")
    _, _, served_operation = operation_by_id(served, "createApiKey")
    assert contract_operation["requestBody"]["required"] is True
    assert served_operation["requestBody"].get("required") is True
    assert set(served_operation["requestBody"]["content"]) == set(contract_operation["requestBody"]["content"])


def test_served_create_request_schema_matches_contract(served):
    body = pointer_to("paths", *CREATE, "requestBody", "content", "application/json", "schema")
    # expires_at extends the contract: optional, so every contract request stays valid.
    pointers = assert_same_object_schema(served, body, body, extensions=frozenset({"expires_at"}))
    assert set(pointers) == {"name", "scopes"}
    _, served_body = follow(served, body)
    assert "expires_at" not in served_body.get("required", [])


def test_served_create_documents_every_contract_response(served):
    _, _, contract_operation = operation_by_id(CONTRACT, "createApiKey")
    _, _, served_operation = operation_by_id(served, "createApiKey")
    assert set(contract_operation["responses"]) == {"200", "401", "422"}
    missing = set(contract_operation["responses"]) - set(served_operation["responses"])
    assert not missing, missing
    assert [code for code in served_operation["responses"] if code.startswith("2")] == ["200"]


def test_served_create_success_response_schema_matches_contract(served):
    pointers = assert_same_object_schema(
        served,
        response_schema_pointer(CONTRACT, *CREATE, "200"),
        response_schema_pointer(served, *CREATE, "200"),
        extensions=frozenset({"expires_at", "status"}),
    )
    assert set(pointers) == {"id", "name", "key", "key_prefix", "created_at", "last_used_at", "scopes"}


def test_served_create_unauthenticated_response_schema_matches_contract(served):
    pointers = assert_same_object_schema(
        served,
        response_schema_pointer(CONTRACT, *CREATE, "401"),
        response_schema_pointer(served, *CREATE, "401"),
    )
    assert set(pointers) == {"detail"}


def test_served_create_validation_error_response_schema_matches_contract(served):
    pointers = assert_same_object_schema(
        served,
        response_schema_pointer(CONTRACT, *CREATE, "422"),
        response_schema_pointer(served, *CREATE, "422"),
    )
    assert set(pointers) == {"detail"}
    contract_detail, served_detail = pointers["detail"]
    # The items: the contract's ValidationError.
    item_pointers = assert_same_object_schema(served, f"{contract_detail}/items", f"{served_detail}/items")
    assert set(item_pointers) == {"loc", "msg", "type"}


# === c. Fuzzing with schemathesis =====================================================

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    ignored_auth,  # a request that succeeds with the token is re-sent without it and with a bad one
]
# positive_data_acceptance stays off: neither schema encodes the name rules (1-100
# characters, no key inside) or the scope list, so schema-valid data may rightly get 422.
FUZZ_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

contract_schema = schemathesis.openapi.from_path(CONTRACT_PATH)
contract_schema.app = application  # send every request, probes included, to our WSGI app
served_schema = schemathesis.openapi.from_wsgi("/openapi.json", application)


@pytest.fixture
def wsgi_db(db):
    """The test's database transaction, visible to requests sent through the raw WSGI app.

    Django closes "old" connections when a request starts and finishes; inside the test's
    transaction that would discard it. Django's own test client detaches the same handler.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(scope="module")
def github_keys():
    """GitHub's key list served locally, so fuzzed alerts are checked against it (401 for any fuzzed signature)
    rather than waiting on api.github.com (tests/test_leaks_github.py covers it being down: 503)."""
    from .github_keys_server import GitHubKeysServer, GitHubSigner

    server = GitHubKeysServer(GitHubSigner())
    yield server
    server.stop()


@pytest.fixture
def bearer(emulator_user, wsgi_db, settings, github_keys):
    # Hundreds of creations in a row: lift the creation throttle and the active-key limit,
    # whose 429 and 409 the contract does not list (tests/test_limits.py covers them).
    settings.OMIKEYS_KEY_CREATION_RATE = (10**9, 3600)
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 10**9
    settings.OMIKEYS_GITHUB_KEYS_URL = github_keys.url
    return {"Authorization": f"Bearer {emulator_user.id_token}"}


def test_both_fuzzed_schemas_cover_the_create_operation():
    def operations(schema):
        return {(result.ok().method.upper(), result.ok().path) for result in schema.get_all_operations()}

    assert operations(contract_schema) == {("POST", URL)}
    assert operations(served_schema) == {
        ("GET", URL),
        ("POST", URL),
        ("DELETE", URL + "/{key_id}"),
        ("PATCH", URL + "/{key_id}"),
        ("POST", URL + "/{key_id}/rotate"),
        ("POST", URL + "/{key_id}/disable"),
        ("POST", URL + "/{key_id}/enable"),
        ("GET", URL + "/{key_id}/usage"),
        ("GET", "/v1/dev/key"),
        # The service API (tests/test_service_*.py); fuzzed here with a Firebase token, which it refuses (401).
        ("POST", "/v1/service/keys/verify"),
        ("GET", "/v1/service/users/{uid}/keys"),
        ("POST", "/v1/service/users/{uid}/keys/revoke"),
        ("POST", "/v1/service/users/{uid}/erase"),
        # The leak reports (tests/test_leaks_*.py): no credentials; GitHub's alerts refuse an unsigned body (401).
        ("POST", "/v1/leaks/github"),
        ("POST", "/v1/leaks/report"),
    }


@contract_schema.parametrize()
@FUZZ_SETTINGS
def test_fuzzing_from_the_contract_finds_no_server_error_or_schema_violation(case, bearer):
    case.call_and_validate(app=application, headers=bearer, checks=CHECKS)


@served_schema.parametrize()
@FUZZ_SETTINGS
def test_fuzzing_from_the_served_schema_finds_no_server_error_or_schema_violation(case, bearer):
    case.call_and_validate(app=application, headers=bearer, checks=CHECKS)


# The service API, fuzzed with a service token allowed everything (the runs above send a Firebase token,
# which it refuses at once): path parameters (uid: NUL, very long, any unicode) and bodies reach the views.
# A body over 16 KB is refused with 413 (documented) before its fields are read: a rejection of negative data too.
service_schema = schemathesis.openapi.from_wsgi(
    "/openapi.json",
    application,
    config=SchemathesisConfig.from_dict(
        {
            "checks": {
                "negative_data_rejection": {
                    "expected-statuses": [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413"],
                }
            }
        }
    ),
).include(path_regex="^/v1/service/")


@pytest.fixture
def service_bearer(wsgi_db, settings):
    from apikeys import lifecycle
    from apikeys.models import ServiceClient

    # Hundreds of failed verifications from a few fuzzed addresses: lift the failed-attempt rate.
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (10**9, 3600)
    issued = lifecycle.issue_service_client("fuzzer", permissions=ServiceClient.PERMISSIONS)
    return {"Authorization": f"Bearer {issued.plaintext}"}


def test_the_service_fuzz_covers_every_service_operation():
    assert {(result.ok().method.upper(), result.ok().path) for result in service_schema.get_all_operations()} == {
        ("POST", "/v1/service/keys/verify"),
        ("GET", "/v1/service/users/{uid}/keys"),
        ("POST", "/v1/service/users/{uid}/keys/revoke"),
        ("POST", "/v1/service/users/{uid}/erase"),
    }


@service_schema.parametrize()
@FUZZ_SETTINGS
def test_fuzzing_the_service_api_with_a_service_token_finds_no_server_error_or_schema_violation(case, service_bearer):
    case.call_and_validate(app=application, headers=service_bearer, checks=CHECKS)
