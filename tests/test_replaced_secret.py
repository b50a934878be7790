"""A rotation's replaced secret: the caller using it is told (body and Sunset header), and no door
claims it works once it does not (key expired or revoked, rotated again)."""

import datetime
import email.utils

import pytest
from django.urls import reverse
from django.utils import timezone

from apikeys import lifecycle
from apikeys.models import ApiKey

from .helpers import expire, issue, key_client
from .web.pages import sign_in, text

pytestmark = pytest.mark.django_db

URL = "/v1/dev/key"


def sunset(response) -> datetime.datetime:
    return email.utils.parsedate_to_datetime(response["Sunset"])


def iso(moment: datetime.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def person(client):
    return sign_in(client)


def test_the_replaced_secret_is_told_so_with_a_sunset(person):
    old = issue(person.user, "graced")
    new = lifecycle.rotate_key(old.api_key, grace_seconds=3600)
    grace_ends = ApiKey.objects.get(pk=old.api_key.pk).previous_key_expires_at

    response = key_client(old.plaintext).get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["secret"] == "replaced"
    assert body["secret_expires_at"] == iso(grace_ends)
    assert body["key_prefix"] == new.api_key.key_prefix  # the secret to move to
    assert response["Sunset"].endswith(" GMT")
    assert sunset(response) == grace_ends.replace(microsecond=0)

    current = key_client(new.plaintext).get(URL)
    assert current.json()["secret"] == "current" and current.json()["secret_expires_at"] is None
    assert "Sunset" not in current


def test_a_key_with_an_expiry_sends_its_sunset_for_the_current_secret(person):
    expires = timezone.now().replace(microsecond=0) + datetime.timedelta(days=3)
    issued = issue(person.user, "expiring", expires_at=expires)

    response = key_client(issued.plaintext).get(URL)

    assert response.json()["secret"] == "current"
    assert response.json()["secret_expires_at"] == iso(expires)
    assert sunset(response) == expires


def test_a_grace_period_never_outlasts_the_key(person, client_for):
    expires = timezone.now().replace(microsecond=0) + datetime.timedelta(minutes=30)
    issued = issue(person.user, "short-lived", expires_at=expires)

    response = client_for(person.account).post(
        f"/v1/dev/keys/{issued.api_key.pk}/rotate", {"grace_seconds": 3600}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["previous_key_expires_at"] == iso(expires)
    assert ApiKey.objects.get(pk=issued.api_key.pk).previous_key_expires_at == expires
    old = key_client(issued.plaintext).get(URL)
    assert old.json()["secret_expires_at"] == iso(expires) and sunset(old) == expires


def test_a_rotation_without_grace_says_the_old_secret_stopped(person, client_for):
    issued = issue(person.user)
    response = client_for(person.account).post(f"/v1/dev/keys/{issued.api_key.pk}/rotate")
    assert response.json()["previous_key_expires_at"] is None
    assert key_client(issued.plaintext).get(URL).status_code == 401


def shown(moment: datetime.datetime) -> str:
    """A moment as the pages show it, to the minute: "30 Nov 2026, 06:09"."""
    return f"{moment.day} {moment:%b %Y, %H:%M}"


def test_after_the_key_expired_no_page_claims_the_old_secret_works(person, admin_client, time_machine):
    expires = timezone.now() + datetime.timedelta(hours=2)
    issued = issue(person.user, "expires soon", expires_at=expires)
    lifecycle.rotate_key(issued.api_key, grace_seconds=24 * 3600)
    detail = reverse("web:key-detail", args=[issued.api_key.pk])
    admin_page = reverse("admin:apikeys_apikey_change", args=[issued.api_key.pk])
    assert "still works until" in text(person.get(detail))  # during the grace period it does
    assert "replaced secret works until" in text(admin_client.get(admin_page)).lower()

    time_machine.move_to(expires + datetime.timedelta(minutes=1), tick=False)

    assert key_client(issued.plaintext).get(URL).status_code == 401
    page = text(person.get(detail))
    assert "still works until" not in page and "Old secret" not in page
    assert "replaced secret works until" not in text(admin_client.get(admin_page)).lower()
    rotation_row = page.split("Rotated;")[1].split("Created")[0]
    asked_end = ApiKey.objects.get(pk=issued.api_key.pk).rotated_at + datetime.timedelta(hours=24)
    assert shown(asked_end) not in rotation_row
    assert shown(expires) in rotation_row


def test_after_revocation_no_page_claims_the_old_secret_works(person, admin_client):
    issued = issue(person.user, "revoked later")
    lifecycle.rotate_key(issued.api_key, grace_seconds=7 * 24 * 3600)
    grace_ends = ApiKey.objects.get(pk=issued.api_key.pk).previous_key_expires_at
    lifecycle.revoke_key(ApiKey.objects.get(pk=issued.api_key.pk))

    page = person.get(reverse("web:key-detail", args=[issued.api_key.pk]))
    assert "still works until" not in text(page)
    revoked_at = ApiKey.objects.get(pk=issued.api_key.pk).revoked_at
    rotation_row = text(page).split("Rotated;")[1].split("Created")[0]
    assert shown(grace_ends) not in rotation_row and shown(revoked_at) in rotation_row
    admin_page = admin_client.get(reverse("admin:apikeys_apikey_change", args=[issued.api_key.pk]))
    assert "replaced secret works until" not in text(admin_page).lower()


def test_the_history_ends_a_grace_period_at_the_next_rotation(person):
    issued = issue(person.user, "rotated twice")
    lifecycle.rotate_key(issued.api_key, grace_seconds=7 * 24 * 3600)
    grace_ends = ApiKey.objects.get(pk=issued.api_key.pk).previous_key_expires_at
    lifecycle.rotate_key(ApiKey.objects.get(pk=issued.api_key.pk), grace_seconds=0)

    page = text(person.get(reverse("web:key-detail", args=[issued.api_key.pk])))

    newest, first_rotation = page.split("Rotated;")[1:3]
    assert newest.startswith(" old secret stopped at once")
    assert first_rotation.startswith(" old secret accepted until")
    second_rotation_at = ApiKey.objects.get(pk=issued.api_key.pk).rotated_at
    assert shown(grace_ends) not in first_rotation.split("Created")[0]
    assert shown(second_rotation_at) in first_rotation.split("Created")[0]


def test_an_expired_key_during_its_grace_shows_no_grace_in_the_rotate_result_of_the_admin(admin_client, person):
    expires = timezone.now().replace(microsecond=0) + datetime.timedelta(minutes=10)
    issued = issue(person.user, "admin rotated", expires_at=expires)
    response = admin_client.post(
        reverse("admin:apikeys_apikey_rotate", args=[issued.api_key.pk]),
        {"grace_seconds": "86400", "expected_prefix": issued.api_key.key_prefix},
    )
    assert response.status_code == 200
    assert response.context["previous_secret_until"] == expires


def test_an_expired_key_is_refused_with_either_secret(person):
    issued = issue(person.user)
    new = lifecycle.rotate_key(issued.api_key, grace_seconds=3600)
    expire(issued.api_key)
    for plaintext in (issued.plaintext, new.plaintext):
        response = key_client(plaintext).get(URL)
        assert response.status_code == 401 and "Sunset" not in response
