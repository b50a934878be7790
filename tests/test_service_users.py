"""The service API on users: list a user's keys, revoke them all, erase the user; each needs its permission."""

import json

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.contrib.admin.models import CHANGE, LogEntry

from apikeys import lifecycle
from apikeys.audit import Actor
from apikeys.models import ApiKey, KeyEvent, ServiceClient, User

from .helpers import expire, issue, key_client, make_owner, service
from .test_secrets import every_stored_value

pytestmark = pytest.mark.django_db

ENDPOINTS = {
    "verify_keys": ("post", "/v1/service/keys/verify", {"key": "x", "client_ip": "192.0.2.1"}),
    "read_user_keys": ("get", "/v1/service/users/key-owner/keys", None),
    "act_on_users": ("post", "/v1/service/users/key-owner/keys/revoke", {"reason": "banned"}),
}
ERASE = ("post", "/v1/service/users/key-owner/erase", {})
ALL_PERMISSIONS = [flag.removeprefix("can_") for flag in ServiceClient.PERMISSIONS]
ENDPOINTS_ON_A_USER = [
    ("get", "/v1/service/users/{uid}/keys", None),
    ("post", "/v1/service/users/{uid}/keys/revoke", {"reason": "deleted"}),
    ("post", "/v1/service/users/{uid}/erase", {}),
]


def call(client, method, url, body):
    return getattr(client, method)(url, data=body, format="json") if body is not None else getattr(client, method)(url)


@pytest.mark.parametrize(("permission", "endpoint"), [*((p, e) for p, e in ENDPOINTS.items()), ("act_on_users", ERASE)])
def test_each_endpoint_needs_its_permission_and_only_it(owner, permission, endpoint):
    others = [p for p in ALL_PERMISSIONS if p != permission]
    refused = call(service(*others), *endpoint)
    allowed = call(service(permission), *endpoint)

    assert refused.status_code == 403
    assert "may not" in refused.json()["detail"]
    assert allowed.status_code == 200


def test_a_client_allowed_nothing_is_refused_everywhere(owner):
    nothing = service()

    assert [call(nothing, *endpoint).status_code for endpoint in [*ENDPOINTS.values(), ERASE]] == [403] * 4


def test_a_users_keys_are_listed_with_their_status(owner):
    active = issue(owner, name="active", scopes=["memories:read"])
    expired = issue(owner, name="expired")
    expire(expired.api_key)
    revoked = issue(owner, name="revoked")
    lifecycle.revoke_key(revoked.api_key)

    response = service("read_user_keys").get(f"/v1/service/users/{owner.firebase_uid}/keys")

    assert response.status_code == 200
    body = response.json()
    assert (body["uid"], body["is_active"], body["active_key_count"]) == (owner.firebase_uid, True, 1)
    statuses = {key["name"]: key["status"] for key in body["keys"]}
    assert statuses == {"active": "active", "expired": "expired", "revoked": "revoked"}
    listed = next(key for key in body["keys"] if key["name"] == "active")
    assert listed["id"] == str(active.api_key.pk) and listed["scopes"] == ["memories:read"]
    assert active.plaintext not in json.dumps(body)
    assert "key_hash" not in listed


@pytest.mark.parametrize(
    "endpoint",
    [
        ("get", "/v1/service/users/nobody/keys", None),
        ("post", "/v1/service/users/nobody/keys/revoke", {"reason": "deleted"}),
        ("post", "/v1/service/users/nobody/erase", {}),
    ],
)
def test_an_unknown_uid_is_404(endpoint):
    response = call(service(*ALL_PERMISSIONS), *endpoint)

    assert response.status_code == 404
    assert response.json() == {"detail": "omikeys knows no user with this uid."}


@pytest.mark.parametrize(
    "uid",
    [
        "a%00b",  # NUL: PostgreSQL cannot compare it with a text column
        "x" * 129,  # longer than any Firebase uid
        "x" * 5000,
        "%C3%A9t%C3%A9",  # unicode
        "%FF",  # not UTF-8
        "a%0Ab",
        "%20",
        "..",
        "a%2Fb",  # an encoded slash: not one path segment
    ],
)
@pytest.mark.parametrize("endpoint", ENDPOINTS_ON_A_USER)
def test_a_uid_no_user_can_have_is_404_never_a_500(owner, uid, endpoint):
    method, template, body = endpoint

    response = call(service(*ALL_PERMISSIONS), method, template.format(uid=uid), body)

    assert response.status_code == 404
    assert response.json()["detail"]


def test_revoking_all_keys_revokes_each_audited_with_the_service_as_actor(owner):
    keys = [issue(owner, name=f"k{n}").api_key for n in range(3)]
    lifecycle.revoke_key(keys[0])
    other = issue(make_owner("someone-else")).api_key
    client = service("act_on_users", name="omi-backend")

    response = client.post(
        f"/v1/service/users/{owner.firebase_uid}/keys/revoke",
        data={"reason": "account deleted"},
        format="json",
        HTTP_USER_AGENT="omi-backend/2.1",
        REMOTE_ADDR="192.0.2.10",
    )

    assert response.status_code == 200
    body = response.json()
    assert body["revoked_count"] == 2
    assert sorted(body["revoked_key_ids"]) == sorted(str(key.pk) for key in keys[1:])
    assert not ApiKey.objects.for_owner(owner).unrevoked().exists()
    assert ApiKey.objects.get(pk=other.pk).revoked_at is None
    events = KeyEvent.objects.filter(api_key__in=keys[1:], action="revoked")
    assert events.count() == 2
    for event in events:
        assert (event.actor_kind, event.via, event.service_client, event.actor) == (
            "service",
            "service",
            client.service_client,
            None,
        )
        assert event.actor_label == "service omi-backend"
        assert (event.ip_address, event.user_agent) == ("192.0.2.10", "omi-backend/2.1")
        assert event.details == {"reason": "account deleted"}


def test_revoking_all_keys_again_revokes_nothing_more(owner):
    issue(owner)
    client = service("act_on_users")
    url = f"/v1/service/users/{owner.firebase_uid}/keys/revoke"

    first = client.post(url, data={"reason": "banned"}, format="json").json()
    second = client.post(url, data={"reason": "banned"}, format="json").json()

    assert (first["revoked_count"], second["revoked_count"], second["revoked_key_ids"]) == (1, 0, [])
    assert KeyEvent.objects.filter(action="revoked").count() == 1
    assert User.objects.get(pk=owner.pk).is_active  # only the keys stop


@pytest.mark.parametrize(
    ("body", "type_"),
    [
        ({}, "missing"),
        ({"reason": ""}, "string_too_short"),
        ({"reason": "a\nb"}, "string_pattern"),
        ({"reason": "x" * 201}, "string_too_long"),
        ({"reason": "x", "why": "y"}, "extra_forbidden"),
    ],
)
def test_a_bad_reason_is_422(owner, body, type_):
    response = service("act_on_users").post(
        f"/v1/service/users/{owner.firebase_uid}/keys/revoke", data=body, format="json"
    )

    assert response.status_code == 422
    assert type_ in [entry["type"] for entry in response.json()["detail"]]


def test_erase_takes_no_fields(owner):
    response = service("act_on_users").post(
        f"/v1/service/users/{owner.firebase_uid}/erase", data={"x": 1}, format="json"
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "extra_forbidden"


def test_erasing_leaves_no_email_ip_or_user_agent_of_the_user_anywhere(user_client, emulator_user):
    person = {"REMOTE_ADDR": "198.51.100.77", "HTTP_USER_AGENT": "ErasureTestAgent/1.0"}
    created = user_client.post("/v1/dev/keys", data={"name": "mine"}, format="json", **person).json()
    rotated = user_client.post(f"/v1/dev/keys/{created['id']}/rotate", data={}, format="json", **person).json()
    second = user_client.post("/v1/dev/keys", data={"name": "second"}, format="json", **person).json()
    user_client.delete(f"/v1/dev/keys/{second['id']}", **person)
    # The key's usage records the address and user agent of its last use and the addresses it was used from.
    assert key_client(rotated["key"]).get("/v1/dev/key", **person).status_code == 200
    assert lifecycle.flush_usage() == 0
    user = User.objects.get(firebase_uid=emulator_user.uid)
    values = list(every_stored_value())
    assert any(emulator_user.email in value for value in values)  # the scan sees what it looks for
    assert "198.51.100.77" in values and "ErasureTestAgent/1.0" in values

    response = service("act_on_users").post(
        f"/v1/service/users/{emulator_user.uid}/erase", REMOTE_ADDR="192.0.2.99", HTTP_USER_AGENT="backend/1"
    )

    assert response.status_code == 200
    assert response.json() == {
        "uid": emulator_user.uid,
        "revoked_key_ids": [created["id"]],
        "deactivated": True,
        "email_erased": True,
        "names_erased": False,
        "events_scrubbed": 5,  # created twice, rotated, revoked by the user; revoked by the erasure
        "ip_addresses_erased": 5,
        "user_agents_erased": 5,
        "key_names_scrubbed": 0,
        "admin_records_scrubbed": 0,
        "usage_records_erased": 2,  # the address the key was used from, and its last use's address and agent
    }
    values = list(every_stored_value())
    for personal in (emulator_user.email, "198.51.100.77", "ErasureTestAgent/1.0"):
        assert not [value for value in values if personal in value], personal
    # The anonymous skeleton stays: the user, both keys and all five events.
    user.refresh_from_db()
    assert (user.is_active, user.email, user.deactivation_reason) == (False, "", "erased")
    assert ApiKey.objects.for_owner(user).count() == 2
    assert KeyEvent.objects.filter(api_key__owner=user).count() == 5
    assert set(KeyEvent.objects.filter(actor=user).values_list("actor_label", flat=True)) == {"(erased user)"}


def test_erasing_leaves_the_email_nowhere_it_was_written_down(owner):
    email = "Key.Owner@Example.com"
    owner.email, owner.username, owner.first_name = email, email, "Key"
    owner.save()
    named = issue(owner, name=f"laptop of {email.lower()}").api_key
    lifecycle.update_key(named, name=f"{email} desktop", actor=Actor.command("renamekey"))
    staff = User.objects.create_user("admin-person", "admin@example.org", "x", is_staff=True)
    for obj, message in ((owner, f"Changed email from {email}."), (named, "Changed name.")):
        LogEntry.objects.log_actions(staff.pk, [obj], CHANGE, change_message=message, single_object=True)
    AccessAttempt.objects.create(
        username=email, ip_address="203.0.113.9", user_agent="LoginAgent/1", failures_since_start=1
    )
    AccessFailureLog.objects.create(username=email.upper(), ip_address="203.0.113.9", user_agent="LoginAgent/1")
    assert any(email.lower() in value.lower() for value in every_stored_value())  # the scan sees what it looks for

    response = service("act_on_users").post(f"/v1/service/users/{owner.firebase_uid}/erase")

    assert response.status_code == 200
    body = response.json()
    assert (body["names_erased"], body["key_names_scrubbed"], body["admin_records_scrubbed"]) == (True, 1, 4)
    assert not [value for value in every_stored_value() if email.lower() in value.lower()]
    assert "203.0.113.9" not in list(every_stored_value())
    owner.refresh_from_db()
    assert owner.username == f"firebase:{owner.firebase_uid}"
    named.refresh_from_db()
    assert named.name == "(erased) desktop"
    renamed = KeyEvent.objects.get(api_key=named, action="renamed")
    assert renamed.details == {"name": "(erased) desktop", "previous_name": "laptop of (erased)"}
    again = service("act_on_users").post(f"/v1/service/users/{owner.firebase_uid}/erase").json()
    assert (again["names_erased"], again["key_names_scrubbed"], again["admin_records_scrubbed"]) == (False, 0, 0)


def test_an_erased_user_signing_in_again_gets_no_email_back_and_no_access(user_client, emulator_user):
    user_client.post("/v1/dev/keys", data={"name": "mine"}, format="json")
    service("act_on_users").post(f"/v1/service/users/{emulator_user.uid}/erase")

    response = user_client.get("/v1/dev/keys")

    assert response.status_code == 401
    assert User.objects.get(firebase_uid=emulator_user.uid).email == ""


def test_erasing_again_erases_nothing_more(owner):
    issue(owner)
    client = service("act_on_users")
    url = f"/v1/service/users/{owner.firebase_uid}/erase"

    client.post(url)
    again = client.post(url).json()

    assert again["revoked_key_ids"] == [] and not again["deactivated"] and not again["email_erased"]


def test_an_erased_users_keys_verify_as_revoked(owner):
    issued = issue(owner)
    service("act_on_users").post(f"/v1/service/users/{owner.firebase_uid}/erase")

    verdict = service("verify_keys").post(
        "/v1/service/keys/verify", data={"key": issued.plaintext, "client_ip": "192.0.2.1"}, format="json"
    )

    assert verdict.json()["code"] == "REVOKED"


@pytest.mark.parametrize("flag", ["is_staff", "is_superuser"])
def test_a_staff_account_is_not_erased(owner, flag):
    issued = issue(owner)
    setattr(owner, flag, True)
    owner.save()

    response = service("act_on_users").post(f"/v1/service/users/{owner.firebase_uid}/erase")

    assert response.status_code == 409
    assert "staff account" in response.json()["detail"]
    owner.refresh_from_db()
    assert (owner.is_active, owner.email, owner.deactivation_reason) == (True, "key-owner@example.com", "")
    assert ApiKey.objects.get(pk=issued.api_key.pk).revoked_at is None
    assert not KeyEvent.objects.filter(action="revoked").exists()
