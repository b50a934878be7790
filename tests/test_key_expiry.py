"""Expiry: expires_at on create, how lists show it, and when a key stops verifying."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apikeys import lifecycle
from apikeys.models import ApiKey

from .helpers import NOW, issue, key_client, make_owner

pytestmark = pytest.mark.django_db


def create(client, **body):
    return client.post("/v1/dev/keys", {"name": "expiring", **body}, format="json")


def test_a_key_can_be_created_with_an_expiry(user_client, clock):
    response = create(user_client, expires_at="2027-07-01T12:00:00Z")
    assert response.status_code == 200
    assert response.json()["expires_at"] == "2027-07-01T12:00:00Z"
    assert user_client.get("/v1/dev/keys").json()[0]["expires_at"] == "2027-07-01T12:00:00Z"


def test_offsets_are_converted_and_a_time_without_zone_is_utc(user_client, clock):
    assert create(user_client, expires_at="2027-07-01T14:00:00+02:00").json()["expires_at"] == "2027-07-01T12:00:00Z"
    assert create(user_client, expires_at="2027-07-01T12:00:00").json()["expires_at"] == "2027-07-01T12:00:00Z"


def test_null_or_omitted_means_never(user_client, clock):
    assert create(user_client, expires_at=None).json()["expires_at"] is None
    assert create(user_client).json()["expires_at"] is None


def test_a_year_ahead_is_the_longest_by_default(user_client, clock):
    assert create(user_client, expires_at="2028-05-31T12:00:00Z").status_code == 200  # 365 days


@pytest.mark.parametrize(
    ("value", "error_type"),
    [
        ("2027-06-01T12:00:00Z", "datetime_future"),  # now is not the future
        ("2020-01-01T00:00:00Z", "datetime_future"),
        ("2028-05-31T12:00:01Z", "datetime_too_late"),
        ("tomorrow", "datetime_parsing"),
        ("2027-13-01T00:00:00Z", "datetime_parsing"),
        (1798761600, "datetime_type"),
        (True, "datetime_type"),
        ({"at": "2027-07-01"}, "datetime_type"),
    ],
)
def test_bad_expiries_are_422_and_issue_nothing(user_client, clock, value, error_type):
    response = create(user_client, expires_at=value)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "expires_at"]
    assert error["type"] == error_type
    assert ApiKey.objects.count() == 0


def test_the_longest_lifetime_is_a_setting(user_client, clock, settings):
    settings.OMIKEYS_MAX_KEY_LIFETIME_DAYS = 30
    response = create(user_client, expires_at="2027-07-02T00:00:00Z")
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == "The expiry must be at most 30 days from now."


def test_an_expired_key_is_listed_as_expired_and_stops_verifying(user_client, clock):
    body = create(user_client, expires_at="2027-06-01T13:00:00Z").json()
    client = key_client(body["key"])
    assert client.get("/v1/dev/key").status_code == 200
    clock.move_to(NOW + datetime.timedelta(hours=1), tick=False)
    assert client.get("/v1/dev/key").json() == {"detail": "Invalid API Key: this key has expired."}
    [listed] = user_client.get("/v1/dev/keys").json()
    assert listed["status"] == "expired"
    assert ApiKey.objects.get(pk=body["id"]).status == "expired"
    # Still revocable, and then gone from the list.
    assert user_client.delete(f"/v1/dev/keys/{body['id']}").status_code == 204
    assert user_client.get("/v1/dev/keys").json() == []


def test_the_grace_of_a_rotation_never_outlives_the_key(clock):
    owner = make_owner()
    issued = issue(owner, expires_at=NOW + datetime.timedelta(minutes=10))
    lifecycle.rotate_key(issued.api_key, grace_seconds=3600)
    clock.move_to(NOW + datetime.timedelta(minutes=10), tick=False)
    assert lifecycle.verify_key(issued.plaintext).rejection == lifecycle.Rejection.EXPIRED


def test_set_expiry_validates_and_is_audited(clock):
    owner = make_owner()
    issued = issue(owner)
    with pytest.raises(ValidationError):
        lifecycle.set_expiry(issued.api_key, NOW - datetime.timedelta(days=1))
    assert lifecycle.set_expiry(issued.api_key, NOW + datetime.timedelta(days=7)) is True
    assert lifecycle.set_expiry(issued.api_key, NOW + datetime.timedelta(days=7)) is False
    assert lifecycle.set_expiry(issued.api_key, None) is True
    events = list(issued.api_key.events.filter(action="expiry_changed").order_by("id"))
    assert [e.details for e in events] == [
        {"expires_at": "2027-06-08T12:00:00+00:00", "previous_expires_at": None},
        {"expires_at": None, "previous_expires_at": "2027-06-08T12:00:00+00:00"},
    ]
    assert ApiKey.objects.get(pk=issued.api_key.pk).expires_at is None


def test_a_naive_expiry_is_refused_by_the_core(clock):
    with pytest.raises(ValidationError):
        lifecycle.validate_expiry(datetime.datetime(2027, 7, 1))
    assert timezone.now() == NOW
