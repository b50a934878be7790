"""POST /v1/service/keys/verify: the verdict on a key a service's client presented, throttled per end client."""

import datetime

import pytest
from django.utils import timezone

from apikeys import lifecycle
from apikeys.models import ApiKey, User

from .helpers import expire, issue, key_client, make_owner, service

pytestmark = pytest.mark.django_db

URL = "/v1/service/keys/verify"
CLIENT_IP = "203.0.113.7"


def verify(client, key, **fields):
    body = {"key": key, "client_ip": CLIENT_IP, **fields}
    return client.post(URL, data=body, format="json")


@pytest.fixture
def verifier():
    return service("verify_keys")


def test_a_valid_key_is_valid_with_its_owner_scopes_and_secret(verifier, owner):
    issued = issue(owner, scopes=["memories:read", "goals:read"])

    response = verify(verifier, issued.plaintext)

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body == {
        "valid": True,
        "code": "VALID",
        "detail": "The key is valid.",
        "key_id": str(issued.api_key.pk),
        "uid": owner.firebase_uid,
        "scopes": ["goals:read", "memories:read"],
        "expires_at": None,
        "secret": "current",
        "secret_expires_at": None,
        "missing_scopes": [],
        "retry_after": None,
    }


def test_a_valid_key_is_stamped_used_as_get_dev_key_stamps_it(verifier, owner):
    issued = issue(owner)
    assert issued.api_key.last_used_at is None

    verify(verifier, issued.plaintext)

    issued.api_key.refresh_from_db()
    assert issued.api_key.last_used_at is not None


@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("", "MALFORMED"),
        ("omi_dev_123", "MALFORMED"),
        ("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "MALFORMED"),
        ("omi_svc_" + "0" * 32, "MALFORMED"),
        (" omi_dev_" + "0" * 32, "MALFORMED"),
        ("omi_dev_" + "0" * 32 + "\n", "MALFORMED"),
        ("omi_dev_" + "0" * 32, "NOT_FOUND"),
    ],
)
def test_keys_that_match_nothing_carry_no_key_facts(verifier, key, code):
    body = verify(verifier, key).json()

    assert (body["valid"], body["code"]) == (False, code)
    assert [body[field] for field in ("key_id", "uid", "scopes", "expires_at", "secret", "secret_expires_at")] == [
        None
    ] * 6


def test_a_revoked_key_is_revoked_with_its_facts(verifier, owner):
    issued = issue(owner)
    lifecycle.revoke_key(issued.api_key)

    body = verify(verifier, issued.plaintext).json()

    assert (body["valid"], body["code"], body["key_id"], body["uid"]) == (
        False,
        "REVOKED",
        str(issued.api_key.pk),
        owner.firebase_uid,
    )


def test_an_expired_key_is_expired(verifier, owner):
    issued = issue(owner)
    expire(issued.api_key)

    body = verify(verifier, issued.plaintext).json()

    assert (body["valid"], body["code"], body["secret"]) == (False, "EXPIRED", "current")
    assert body["expires_at"] is not None and body["expires_at"] == body["secret_expires_at"]


def test_a_key_of_a_deactivated_owner_is_owner_inactive(verifier, owner):
    issued = issue(owner)
    User.objects.filter(pk=owner.pk).update(is_active=False)

    body = verify(verifier, issued.plaintext).json()

    assert (body["valid"], body["code"], body["key_id"]) == (False, "OWNER_INACTIVE", str(issued.api_key.pk))


def test_the_replaced_secret_is_previous_during_the_grace_period_and_expired_after(verifier, owner, clock):
    issued = issue(owner)
    old = issued.plaintext
    new = lifecycle.rotate_key(issued.api_key, grace_seconds=3600).plaintext

    during = verify(verifier, old).json()
    current = verify(verifier, new).json()
    clock.move_to(timezone.now() + datetime.timedelta(seconds=3601))
    after = verify(verifier, old).json()

    assert (during["code"], during["secret"]) == ("VALID", "previous")
    grace_end = ApiKey.objects.get(pk=issued.api_key.pk).previous_key_expires_at
    assert during["secret_expires_at"] == grace_end.isoformat().replace("+00:00", "Z")
    assert (current["code"], current["secret"], current["secret_expires_at"]) == ("VALID", "current", None)
    assert (after["valid"], after["code"], after["secret"]) == (False, "EXPIRED", "previous")


def test_a_key_without_a_required_scope_is_insufficient_scope(verifier, owner):
    issued = issue(owner, scopes=["memories:read"])

    enough = verify(verifier, issued.plaintext, required_scopes=["memories:read"]).json()
    lacking = verify(verifier, issued.plaintext, required_scopes=["memories:read", "memories:write"]).json()

    assert (enough["valid"], enough["code"]) == (True, "VALID")
    assert (lacking["valid"], lacking["code"], lacking["missing_scopes"]) == (
        False,
        "INSUFFICIENT_SCOPE",
        ["memories:write"],
    )
    assert lacking["detail"] == "Insufficient permissions. Required scope: memories:write"
    assert lacking["key_id"] == str(issued.api_key.pk)


def test_the_verdict_is_the_one_get_dev_key_gives(verifier, owner):
    """One code path: every kind of key, judged by both doors, gets the same yes or no."""
    valid = issue(owner, name="valid").plaintext
    revoked = issue(owner, name="revoked")
    lifecycle.revoke_key(revoked.api_key)
    expired = issue(owner, name="expired")
    expire(expired.api_key)
    keys = [valid, revoked.plaintext, expired.plaintext, "omi_dev_" + "1" * 32, "nonsense"]

    for key in keys:
        api_answer = key_client(key).get("/v1/dev/key").status_code
        service_answer = verify(verifier, key).json()["valid"]
        assert (api_answer == 200) == service_answer, key


def test_every_key_state_gets_the_same_verdict_and_words_from_both_doors(verifier, owner, clock):
    """The verify endpoint and GET /v1/dev/key agree on every kind of key, and the reason the client is told."""
    valid = issue(owner, name="valid").plaintext
    revoked = issue(owner, name="revoked")
    lifecycle.revoke_key(revoked.api_key)
    expired = issue(owner, name="expired")
    expire(expired.api_key)
    rotated = issue(owner, name="rotated")
    replaced_in_grace = rotated.plaintext
    rotated_now = lifecycle.rotate_key(rotated.api_key, grace_seconds=3600).plaintext
    ended = issue(owner, name="ended")
    replaced_after_grace = ended.plaintext
    lifecycle.rotate_key(ended.api_key, grace_seconds=60)
    inactive_owner = make_owner("inactive-owner")
    inactive = issue(inactive_owner, name="inactive").plaintext
    User.objects.filter(pk=inactive_owner.pk).update(is_active=False)
    clock.move_to(timezone.now() + datetime.timedelta(seconds=120))  # past the 60 s grace, within the hour
    keys = {
        valid: "VALID",
        rotated_now: "VALID",
        replaced_in_grace: "VALID",
        revoked.plaintext: "REVOKED",
        expired.plaintext: "EXPIRED",
        replaced_after_grace: "EXPIRED",
        inactive: "OWNER_INACTIVE",
        "omi_dev_" + "1" * 32: "NOT_FOUND",
        valid.upper(): "MALFORMED",
        f'"{valid}"': "MALFORMED",
        "omi_mcp_" + "1" * 32: "MALFORMED",
        "omi_svc_" + "1" * 32: "MALFORMED",
        "nonsense": "MALFORMED",
    }

    for key, code in keys.items():
        api_answer = key_client(key).get("/v1/dev/key")
        verdict = verify(verifier, key).json()
        assert verdict["code"] == code, key
        assert (api_answer.status_code == 200) == verdict["valid"], key
        if code in ("REVOKED", "EXPIRED", "OWNER_INACTIVE", "NOT_FOUND"):
            assert api_answer.json()["detail"] == verdict["detail"], key


def test_an_ipv4_mapped_ipv6_client_ip_shares_its_ipv4_addresses_limit(verifier, settings):
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (2, 60)
    bad = "omi_dev_" + "0" * 32

    verify(verifier, bad, client_ip="198.51.100.9")
    verify(verifier, bad, client_ip="::ffff:198.51.100.9")  # the same client: fills the limit
    mapped_again = verify(verifier, bad, client_ip="::FFFF:c633:6409").json()  # 198.51.100.9, another spelling

    assert mapped_again["code"] == "RATE_LIMITED"


def test_failed_attempts_are_throttled_per_client_ip_not_per_service(verifier, owner, settings):
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (3, 60)
    good = issue(owner).plaintext
    bad = "omi_dev_" + "0" * 32

    answers = [verify(verifier, bad, client_ip="198.51.100.1").json()["code"] for _ in range(4)]
    throttled = verify(verifier, good, client_ip="198.51.100.1").json()
    other_client = verify(verifier, good, client_ip="198.51.100.2").json()
    # The service's own address (the test client's, 127.0.0.1) is not throttled on GET /v1/dev/key either.
    own_address = key_client(good).get("/v1/dev/key").status_code

    assert answers == ["NOT_FOUND", "NOT_FOUND", "NOT_FOUND", "RATE_LIMITED"]  # the third fills the limit
    assert (throttled["valid"], throttled["code"], throttled["key_id"]) == (False, "RATE_LIMITED", None)
    assert throttled["retry_after"] >= 1
    assert other_client["code"] == "VALID"
    assert own_address == 200


def test_a_failure_over_a_lowered_rate_is_rate_limited_with_its_wait(verifier, clock, settings):
    """Failures counted under a higher rate still count when an operator lowers it: the next one is refused."""
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (5, 60)
    bad = "omi_dev_" + "0" * 32
    codes = [verify(verifier, bad).json()["code"] for _ in range(3)]
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (2, 60)

    over = verify(verifier, bad)

    assert codes == ["NOT_FOUND"] * 3
    assert over.status_code == 200
    body = over.json()
    assert (body["valid"], body["code"], body["key_id"]) == (False, "RATE_LIMITED", None)
    assert body["detail"] == "Too many failed API key attempts from this address."
    assert body["retry_after"] == 61  # the failures of NOW's one-second slot leave the minute 61 s on


def test_ipv6_clients_are_throttled_per_64_network(verifier, settings):
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (2, 60)
    bad = "omi_dev_" + "0" * 32

    verify(verifier, bad, client_ip="2001:db8:1:2::1")
    verify(verifier, bad, client_ip="2001:db8:1:2::2")  # fills the limit of the /64
    same_network = verify(verifier, bad, client_ip="2001:db8:1:2::3").json()
    other_network = verify(verifier, bad, client_ip="2001:db8:1:3::1").json()

    assert (same_network["code"], other_network["code"]) == ("RATE_LIMITED", "NOT_FOUND")


def test_insufficient_scope_is_not_a_failed_attempt(verifier, owner, settings):
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (2, 60)
    key = issue(owner, scopes=["memories:read"]).plaintext

    codes = [verify(verifier, key, required_scopes=["goals:write"]).json()["code"] for _ in range(4)]

    assert codes == ["INSUFFICIENT_SCOPE"] * 4


@pytest.mark.parametrize(
    ("body", "loc", "type_"),
    [
        ({"key": "k"}, ["body", "client_ip"], "missing"),
        ({"key": "k", "client_ip": "not-an-ip"}, ["body", "client_ip"], "ip_address"),
        ({"key": "k", "client_ip": "10.0.0.1/8"}, ["body", "client_ip"], "ip_address"),
        ({"key": "k", "client_ip": 17}, ["body", "client_ip"], "string_type"),
        ({"client_ip": CLIENT_IP}, ["body", "key"], "missing"),
        ({"key": 5, "client_ip": CLIENT_IP}, ["body", "key"], "string_type"),
        (
            {"key": "k", "client_ip": CLIENT_IP, "required_scopes": "memories:read"},
            ["body", "required_scopes"],
            "list_type",
        ),
        (
            {"key": "k", "client_ip": CLIENT_IP, "required_scopes": ["nope:nope"]},
            ["body", "required_scopes", 0],
            "enum",
        ),
        ({"key": "k", "client_ip": CLIENT_IP, "user_agent": ["x"]}, ["body", "user_agent"], "string_type"),
        ({"key": "k", "client_ip": CLIENT_IP, "clientIp": "x"}, ["body", "clientIp"], "extra_forbidden"),
    ],
)
def test_bad_requests_are_422_in_the_validation_shape(verifier, body, loc, type_):
    response = verifier.post(URL, data=body, format="json")

    assert response.status_code == 422
    entries = response.json()["detail"]
    assert {"loc": loc, "type": type_} in [{"loc": entry["loc"], "type": entry["type"]} for entry in entries]


def test_a_body_that_is_not_an_object_is_422(verifier):
    response = verifier.post(URL, data="[1]", content_type="application/json")

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "model_attributes_type"


def test_other_methods_are_405_with_allow(verifier):
    response = verifier.get(URL)

    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_a_client_not_allowed_to_verify_is_403_and_nothing_is_judged(owner):
    reader = service("read_user_keys", "act_on_users", "receive_events", name="no-verify")
    issued = issue(owner)

    response = verify(reader, issued.plaintext)

    assert response.status_code == 403
    assert "may not verify keys" in response.json()["detail"]
    issued.api_key.refresh_from_db()
    assert issued.api_key.last_used_at is None


def test_a_second_owner_key_is_told_apart(verifier):
    other = make_owner("another-owner")
    issued = issue(other)

    assert verify(verifier, issued.plaintext).json()["uid"] == "another-owner"
