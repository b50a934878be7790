"""GET /v1/dev/keys/{key_id}/usage: the owner's view of a key's usage, its shapes and its errors."""

import datetime

import pytest
from django.utils import timezone

from apikeys import lifecycle
from apikeys.lifecycle.usage import hour_of
from apikeys.models import KeyAddress, KeyLastUse, KeyUsageHour, User

from .helpers import issue, make_owner

pytestmark = [pytest.mark.django_db]


def url(api_key) -> str:
    return f"/v1/dev/keys/{api_key.pk}/usage"


def z(moment: datetime.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def owner(user_client):
    return User.objects.for_firebase(user_client.emulator_user.uid, user_client.emulator_user.email)


@pytest.fixture
def now():
    """The current hour, read when the test starts (ID tokens from the emulator are checked against the real clock,
    so time is not stopped here)."""
    return hour_of(timezone.now())


@pytest.fixture
def used_key(owner, now):
    """A key used yesterday and today, from two addresses, last by curl."""
    NOW = now
    key = issue(owner).api_key
    KeyUsageHour.objects.create(api_key=key, hour=NOW - datetime.timedelta(days=1), accepted=5, revoked=1)
    KeyUsageHour.objects.create(api_key=key, hour=NOW, accepted=2, insufficient_scope=1, expired=3)
    KeyUsageHour.objects.create(api_key=key, hour=NOW - datetime.timedelta(days=40), accepted=100)
    KeyLastUse.objects.create(api_key=key, at=NOW, outcome="expired", address="203.0.113.7", user_agent="curl/8.5")
    old = NOW - datetime.timedelta(days=31)
    KeyAddress.objects.create(api_key=key, address="203.0.113.7", first_seen=old, last_seen=NOW, requests=11)
    KeyAddress.objects.create(api_key=key, address="192.0.2.1", first_seen=old, last_seen=old, requests=1)
    return key


def test_the_owner_gets_days_totals_last_use_and_recent_addresses(user_client, used_key, now):
    NOW, TODAY = now, now.replace(hour=0)
    response = user_client.get(url(used_key))
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    zero = {"accepted": 0, "insufficient_scope": 0, "expired": 0, "disabled": 0, "revoked": 0, "owner_inactive": 0}
    assert (body["key_id"], body["days"], body["granularity"]) == (str(used_key.pk), 30, "day")
    assert len(body["buckets"]) == 30
    day = datetime.timedelta(days=1)
    assert body["buckets"][0] == {"start": z(TODAY - 29 * day), **zero, "total": 0}
    assert body["buckets"][-2] == {"start": z(TODAY - day), **zero, "accepted": 5, "revoked": 1, "total": 6}
    assert body["buckets"][-1] == {
        "start": z(TODAY),
        **zero,
        "accepted": 2,
        "insufficient_scope": 1,
        "expired": 3,
        "total": 6,
    }
    assert body["totals"] == {**zero, "accepted": 7, "insufficient_scope": 1, "expired": 3, "revoked": 1, "total": 12}
    assert body["last_use"] == {
        "at": z(NOW),
        "outcome": "expired",
        "address": "203.0.113.7",
        "user_agent": "curl/8.5",
    }
    assert body["addresses"] == [
        {
            "address": "203.0.113.7",
            "first_seen": z(NOW - datetime.timedelta(days=31)),
            "last_seen": z(NOW),
            "requests": 11,
        }
    ]


def test_hours_and_a_longer_window(user_client, used_key, now):
    NOW = now
    hourly = user_client.get(url(used_key), {"days": "2", "granularity": "hour"}).json()
    assert len(hourly["buckets"]) == 48
    assert hourly["buckets"][-1]["start"] == z(NOW)
    assert hourly["buckets"][-1]["total"] == 6
    assert hourly["buckets"][-25]["start"] == z(NOW - datetime.timedelta(days=1))
    assert hourly["buckets"][-25]["total"] == 6
    assert sum(bucket["total"] for bucket in hourly["buckets"]) == 12
    assert user_client.get(url(used_key), {"days": "90"}).json()["totals"]["accepted"] == 107


def test_a_key_never_used_has_zeros_and_no_last_use(user_client, owner):
    body = user_client.get(url(issue(owner).api_key), {"days": "1"}).json()
    assert body["totals"]["total"] == 0 and body["last_use"] is None and body["addresses"] == []
    assert len(body["buckets"]) == 1


def test_a_revoked_key_keeps_its_usage(user_client, used_key):
    lifecycle.revoke_key(used_key)
    assert user_client.get(url(used_key)).json()["totals"]["total"] == 12


@pytest.mark.parametrize(
    ("query", "loc", "type_"),
    [
        ({"days": "0"}, "days", "greater_than_equal"),
        ({"days": "91"}, "days", "less_than_equal"),
        ({"days": "thirty"}, "days", "int_parsing"),
        ({"days": ""}, "days", "int_parsing"),
        ({"days": "1e3"}, "days", "int_parsing"),
        ({"days": "1_0"}, "days", "int_parsing"),  # int() would take these two: only ASCII digits are
        ({"days": "\u0663\u0660"}, "days", "int_parsing"),  # Arabic-Indic "30"
        ({"days": "9" * 5000}, "days", "less_than_equal"),
        ({"days": "-" + "9" * 5000}, "days", "greater_than_equal"),
        ({"granularity": "minute"}, "granularity", "enum"),
    ],
)
def test_a_window_out_of_range_is_422_in_the_documented_shape(user_client, used_key, query, loc, type_):
    response = user_client.get(url(used_key), query)
    assert response.status_code == 422
    [entry] = response.json()["detail"]
    assert (entry["loc"], entry["type"]) == (["query", loc], type_)
    assert entry["msg"]


def test_another_users_key_and_unknown_ids_are_404(user_client):
    theirs = issue(make_owner("someone-else")).api_key
    for path in (url(theirs), "/v1/dev/keys/not-a-uuid/usage", f"/v1/dev/keys/{theirs.pk.hex[::-1]}/usage"):
        response = user_client.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "No API key with this id."}


def test_an_api_key_cannot_read_usage(owner, used_key, api):
    issued = issue(owner)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    assert api.get(url(used_key)).status_code == 401


def test_the_endpoint_is_in_the_openapi_document(api):
    document = api.get("/openapi.json").json()
    operation = document["paths"]["/v1/dev/keys/{key_id}/usage"]["get"]
    assert operation["operationId"] == "getApiKeyUsage"
    assert {p["name"] for p in operation["parameters"]} >= {"key_id", "days", "granularity"}
    assert set(operation["responses"]) >= {"200", "401", "404", "422"}
