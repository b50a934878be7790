"""GET /v1/dev/key and ApiKeyAuthentication: verifying a key, usage stamps, failed-attempt throttling."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apikeys import crypto, lifecycle
from apikeys.models import ApiKey

from .helpers import issue, key_client, make_owner

URL = "/v1/dev/key"
INVALID = {"detail": "Invalid API Key"}
READS = ("SELECT", "EXECUTE")  # on PostgreSQL the lookup runs as a prepared statement

pytestmark = [pytest.mark.django_db, pytest.mark.owner("calling-owner", "calling@example.com")]


@pytest.fixture
def issued(owner):
    return issue(owner, "calling key", ["memories:read", "goals:write"])


def assert_refused(response, detail=INVALID):
    assert response.status_code == 401, response.content
    assert response.json() == detail
    assert response["WWW-Authenticate"] == 'Bearer realm="omikeys"'


def test_a_valid_key_gets_its_own_metadata_and_scopes(issued, owner):
    response = key_client(issued.plaintext).get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(issued.api_key.pk)
    assert body["name"] == "calling key"
    assert body["key_prefix"] == issued.api_key.key_prefix
    assert body["scopes"] == ["goals:write", "memories:read"]
    assert body["uid"] == "calling-owner"
    assert body["status"] == "active"
    assert body["expires_at"] is None
    assert body["last_used_at"] is not None
    assert "key" not in body and "key_hash" not in body
    assert issued.plaintext not in response.content.decode()
    assert response["Cache-Control"] == "no-store"


def test_the_default_scopes_are_reported(owner):
    issued = issue(owner)
    body = key_client(issued.plaintext).get(URL).json()
    assert body["scopes"] == ["action_items:read", "conversations:read", "goals:read", "memories:read"]


def test_no_header_is_401_asking_for_an_api_key():
    response = APIClient().get(URL)
    assert_refused(response, {"detail": "Authentication required. Send 'Authorization: Bearer <API key>'."})


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Token omi_dev_" + "a" * 32, "Api-Key x"])
def test_another_scheme_is_401(header):
    response = APIClient().get(URL, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401


@pytest.mark.parametrize(
    "token",
    [
        "omi_dev_" + "0" * 32,  # well formed, unknown
        "omi_dev_" + "A" * 32,  # upper case
        "omi_dev_" + "a" * 31,
        "sk_live_123",
        "%00",
        "omi_dev_" + "a" * 5000,
    ],
)
def test_unknown_or_malformed_keys_are_401_and_not_echoed(token):
    assert_refused(key_client(token).get(URL))  # the body is exactly {"detail": "Invalid API Key"}


def test_an_mcp_key_is_401_naming_the_credential_wanted():
    token = "omi_mcp_" + "a" * 32
    detail = "This endpoint needs an API key (omi_dev_...), not an MCP key (omi_mcp_...)"
    response = key_client(token).get(URL)
    assert response.status_code == 401 and response.json()["detail"].startswith(detail)
    assert response["WWW-Authenticate"] == 'Bearer realm="omikeys"'
    assert token not in response.content.decode()


def test_two_bearer_parts_is_401():
    response = APIClient().get(URL, HTTP_AUTHORIZATION="Bearer omi_dev_x extra")
    assert response.status_code == 401
    assert "Malformed Authorization header" in response.json()["detail"]


def test_a_non_ascii_key_is_401_not_500():
    response = APIClient().get(URL, HTTP_AUTHORIZATION="Bearer omi_dev_é".encode().decode("latin-1"))
    assert_refused(response)


def test_a_firebase_id_token_is_refused_as_a_key_saying_which_credential_is_wanted(emulator_user):
    response = key_client(emulator_user.id_token).get(URL)
    assert response.status_code == 401
    detail = response.json()["detail"]
    assert "needs an API key" in detail and "not a Firebase ID token" in detail
    assert emulator_user.id_token not in response.content.decode()


def test_a_key_is_refused_as_a_firebase_token_on_the_management_api(issued):
    for method, path in [
        ("get", "/v1/dev/keys"),
        ("post", "/v1/dev/keys"),
        ("delete", f"/v1/dev/keys/{issued.api_key.pk}"),
    ]:
        response = getattr(key_client(issued.plaintext), method)(path)
        assert response.status_code == 401
        assert "needs a Firebase ID token, not an API key" in response.json()["detail"]
    assert ApiKey.objects.get(pk=issued.api_key.pk).revoked_at is None


def test_a_revoked_key_is_refused_at_once(issued):
    client = key_client(issued.plaintext)
    assert client.get(URL).status_code == 200
    lifecycle.revoke_key(issued.api_key)
    assert_refused(client.get(URL))


def test_a_key_of_a_deactivated_owner_is_refused(issued, owner):
    owner.is_active = False
    owner.save()
    assert_refused(key_client(issued.plaintext).get(URL))


def test_an_expired_key_is_refused_and_says_so(owner, time_machine):
    time_machine.move_to(datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC), tick=False)
    issued = issue(owner, expires_at=timezone.now() + datetime.timedelta(days=30))
    client = key_client(issued.plaintext)
    time_machine.move_to(datetime.datetime(2027, 1, 30, 23, 59, tzinfo=datetime.UTC), tick=False)
    assert client.get(URL).json()["expires_at"] == "2027-01-31T00:00:00Z"
    time_machine.move_to(datetime.datetime(2027, 1, 31, tzinfo=datetime.UTC), tick=False)
    assert_refused(client.get(URL), {"detail": "Invalid API Key: this key has expired."})


def test_a_hit_is_one_read_and_no_write_inside_the_stamping_interval(issued, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    client = key_client(issued.plaintext)
    lifecycle.verify_key("omi_dev_" + "0" * 32)  # on PostgreSQL, the connection prepares the lookup once
    with CaptureQueriesContext(connection) as first:
        assert client.get(URL).status_code == 200
    # The first use: the read, then the stamp.
    assert len(first.captured_queries) == 2
    assert first.captured_queries[1]["sql"].startswith("UPDATE")
    stamped = ApiKey.objects.get(pk=issued.api_key.pk).last_used_at
    assert stamped == timezone.now()

    time_machine.shift(59)
    with CaptureQueriesContext(connection) as later:
        assert client.get(URL).status_code == 200
    assert len(later.captured_queries) == 1
    assert later.captured_queries[0]["sql"].startswith(READS)
    assert ApiKey.objects.get(pk=issued.api_key.pk).last_used_at == stamped


def test_the_stamp_moves_once_the_interval_has_passed(issued, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    client = key_client(issued.plaintext)
    client.get(URL)
    first = ApiKey.objects.get(pk=issued.api_key.pk).last_used_at
    time_machine.shift(60)
    with CaptureQueriesContext(connection) as queries:
        body = client.get(URL).json()
    assert len(queries.captured_queries) == 2
    second = ApiKey.objects.get(pk=issued.api_key.pk).last_used_at
    assert second - first == datetime.timedelta(seconds=60)
    assert body["last_used_at"] == second.isoformat().replace("+00:00", "Z")


def test_the_stamping_interval_is_a_setting(issued, time_machine, settings):
    settings.OMIKEYS_LAST_USED_INTERVAL = 5
    time_machine.move_to(timezone.now(), tick=False)
    client = key_client(issued.plaintext)
    client.get(URL)
    first = ApiKey.objects.get(pk=issued.api_key.pk).last_used_at
    time_machine.shift(5)
    client.get(URL)
    assert ApiKey.objects.get(pk=issued.api_key.pk).last_used_at - first == datetime.timedelta(seconds=5)


def test_a_stale_copy_racing_another_process_does_not_write_twice(issued, time_machine):
    """Two processes holding the same old stamp: the guarded update lets only one write."""
    time_machine.move_to(timezone.now(), tick=False)
    here = lifecycle.verify_key(issued.plaintext).api_key
    there = lifecycle.verify_key(issued.plaintext).api_key
    assert lifecycle.mark_used(here) is True
    time_machine.shift(1)
    assert lifecycle.mark_used(there) is False
    assert ApiKey.objects.get(pk=issued.api_key.pk).last_used_at == here.last_used_at


def test_failed_verifications_do_not_write(issued):
    lifecycle.verify_key("omi_dev_" + "0" * 32)  # on PostgreSQL, the connection prepares the lookup once
    with CaptureQueriesContext(connection) as queries:
        key_client("omi_dev_" + "1" * 32).get(URL)
    assert [q["sql"].split()[0] for q in queries.captured_queries] in (["SELECT"], ["EXECUTE"])


def test_the_lookup_is_by_hash_only(issued):
    """The query carries the key's SHA-256, never the key itself."""
    with CaptureQueriesContext(connection) as queries:
        key_client(issued.plaintext).get(URL)
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert crypto.hash_key(issued.plaintext) in sql
    assert issued.plaintext not in sql


# --- throttling failed verifications per client address -------------------------------


@pytest.fixture
def strict_rate(settings):
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (3, 60)


def test_too_many_failures_from_one_address_get_429_with_retry_after(strict_rate, issued, time_machine):
    time_machine.move_to(datetime.datetime(2027, 3, 1, 12, 0, 10, tzinfo=datetime.UTC), tick=False)
    bad = key_client("omi_dev_" + "2" * 32, REMOTE_ADDR="203.0.113.7")
    assert [bad.get(URL).status_code for _ in range(3)] == [401, 401, 401]
    response = bad.get(URL)
    assert response.status_code == 429
    assert response["Retry-After"] == "61"  # the failures of 12:00:10 leave the last minute at 12:01:11
    assert response.json() == {"detail": "Too many failed API key attempts from this address. Try again in 61 seconds."}
    # While blocked, a valid key from that address is refused too: a guess that hits learns nothing.
    good_same_address = key_client(issued.plaintext, REMOTE_ADDR="203.0.113.7")
    assert good_same_address.get(URL).status_code == 429
    # Other addresses are not affected.
    assert key_client(issued.plaintext, REMOTE_ADDR="203.0.113.8").get(URL).status_code == 200
    # A new clock minute is no fresh allowance; a minute after the failures is.
    time_machine.move_to(datetime.datetime(2027, 3, 1, 12, 1, 0, tzinfo=datetime.UTC), tick=False)
    assert good_same_address.get(URL).status_code == 429
    time_machine.move_to(datetime.datetime(2027, 3, 1, 12, 1, 11, tzinfo=datetime.UTC), tick=False)
    assert good_same_address.get(URL).status_code == 200


def test_successes_do_not_count_towards_the_failure_limit(strict_rate, issued):
    client = key_client(issued.plaintext, REMOTE_ADDR="198.51.100.1")
    assert all(client.get(URL).status_code == 200 for _ in range(10))


def test_firebase_tokens_and_malformed_keys_count_as_failures(strict_rate, emulator_user):
    address = {"REMOTE_ADDR": "198.51.100.2"}
    statuses = [
        key_client(emulator_user.id_token, **address).get(URL).status_code,
        key_client("nonsense", **address).get(URL).status_code,
        APIClient(**address).get(URL, HTTP_AUTHORIZATION="Bearer a b").status_code,
        key_client("omi_dev_" + "3" * 32, **address).get(URL).status_code,
    ]
    assert statuses == [401, 401, 401, 429]


def test_behind_a_proxy_the_forwarded_client_address_is_throttled(strict_rate, settings):
    settings.OMIKEYS_NUM_PROXIES = 1
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    attacker = key_client("omi_dev_" + "4" * 32, HTTP_X_FORWARDED_FOR="203.0.113.9", **proxy)
    assert [attacker.get(URL).status_code for _ in range(4)] == [401, 401, 401, 429]
    # Another client behind the same proxy is not blocked, and a spoofed leftmost entry does not help.
    other = key_client("omi_dev_" + "4" * 32, HTTP_X_FORWARDED_FOR="203.0.113.9, 203.0.113.10", **proxy)
    assert other.get(URL).status_code == 401


def test_without_trusted_proxies_forwarded_headers_are_ignored(strict_rate):
    statuses = [
        key_client("omi_dev_" + "5" * 32, REMOTE_ADDR="192.0.2.5", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}")
        .get(URL)
        .status_code
        for n in range(4)
    ]
    assert statuses == [401, 401, 401, 429]


def test_other_methods_are_405_for_a_valid_key(issued):
    client = key_client(issued.plaintext)
    for method in ("post", "put", "patch", "delete", "options"):
        response = getattr(client, method)(URL)
        assert response.status_code == 405, method
        assert response["Allow"] == "GET, HEAD"


def test_the_fast_body_is_exactly_what_the_documented_serializer_gives(issued, time_machine):
    from apikeys.api.serializers import CallingApiKeySerializer, calling_key_body

    time_machine.move_to(timezone.now(), tick=False)
    lifecycle.set_expiry(issued.api_key, timezone.now() + datetime.timedelta(days=3))
    key_client(issued.plaintext).get(URL)  # stamps last_used_at
    verified = lifecycle.verify_key(issued.plaintext).api_key
    assert calling_key_body(verified) == CallingApiKeySerializer(verified).data
    assert None not in calling_key_body(verified).values()


def test_the_response_matches_the_served_schema(issued):
    import jsonschema

    document = APIClient().get("/openapi.json").json()
    schema = document["paths"]["/v1/dev/key"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    body = key_client(issued.plaintext).get(URL).json()
    resolver_document = {**document, **schema}
    jsonschema.validate(body, resolver_document, cls=jsonschema.Draft202012Validator)
    assert set(body) == set(document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]["properties"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("prepare", [True, False])
def test_on_postgresql_the_lookup_is_prepared_once_per_connection(settings, prepare, contract_scopes):
    settings.OMIKEYS_PREPARE_KEY_LOOKUP = prepare
    issued = issue(make_owner("prepared-owner"))
    connection.close()  # a new database session
    with CaptureQueriesContext(connection) as queries:
        assert lifecycle.verify_key(issued.plaintext).api_key is not None
        assert lifecycle.verify_key(issued.plaintext).api_key is not None
    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    if connection.vendor == "postgresql" and prepare:
        assert statements == ["SELECT", "PREPARE", "EXECUTE", "EXECUTE"]
    else:
        assert statements == ["SELECT", "SELECT"]
