"""Expiry on the pages: the choices on the create form, and how expired keys are shown."""

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from apikeys import lifecycle
from apikeys.models import ApiKey

from ..helpers import expire, in_days
from .pages import post_new_key, radios

pytestmark = pytest.mark.django_db


def test_the_expiry_choices_default_to_never(person):
    before = timezone.now()
    page = person.get(reverse("web:key-create")).content.decode()
    after = timezone.now()
    assert radios(page, "expires_in") == {"never": True, "30": False, "90": False, "365": False}
    assert "<legend>Expires</legend>" in page
    # The page reads the clock once, between these two readings (which straddle midnight, now and then).
    dates = {f"until {moment + datetime.timedelta(days=30):%-d %b %Y}" for moment in (before, after)}
    assert any(date in page for date in dates), dates


def test_expiry_choices_beyond_the_longest_lifetime_are_hidden_and_refused(person, settings):
    settings.OMIKEYS_MAX_KEY_LIFETIME_DAYS = 90
    page = person.get(reverse("web:key-create")).content.decode()
    assert list(radios(page, "expires_in")) == ["never", "30", "90"]
    response = post_new_key(person, expires_in="365")
    assert response.status_code == 422
    page = response.content.decode()
    assert "Choose one of the expiry options." in page
    assert re.search(r'name="expires_in" value="never"[^>]*autofocus', page)  # the first error has the focus
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("days", [30, 90, 365])
def test_a_chosen_expiry_is_counted_from_now_and_shown(person, days):
    before = timezone.now()
    response = post_new_key(person, name="Temporary", expires_in=str(days))
    assert response.status_code == 200
    api_key = ApiKey.objects.get(owner=person.user)
    expected = datetime.timedelta(days=days)
    assert before + expected <= api_key.expires_at <= timezone.now() + expected
    shown = f"{api_key.expires_at:%-d %b %Y}"
    assert shown in response.content.decode()
    assert shown in person.get(reverse("web:key-list")).content.decode()
    assert shown in person.get(reverse("web:key-detail", args=[api_key.pk])).content.decode()
    event = api_key.events.get()
    assert event.details["expires_at"] == api_key.expires_at.isoformat()


def test_without_an_expiry_choice_a_key_never_expires(person):
    assert post_new_key(person).status_code == 200  # an older form, without the field
    assert post_new_key(person, name="Chosen", expires_in="never").status_code == 200
    assert list(ApiKey.objects.values_list("expires_at", flat=True)) == [None, None]
    page = person.get(reverse("web:key-list")).content.decode()
    expires_cells = re.findall(r'<td data-label="Expires">(.*?)</td>', page, re.S)
    assert len(expires_cells) == 2 and all("never" in cell for cell in expires_cells)


def test_an_expired_key_is_listed_as_expired_and_can_still_be_revoked(person):
    issued = lifecycle.issue_key(owner=person.user, name="Old job", expires_at=in_days(1))
    lifecycle.issue_key(owner=person.user, name="Fresh")
    expire(issued.api_key)
    assert lifecycle.verify_key(issued.plaintext).api_key is None
    page = person.get(reverse("web:key-list")).content.decode()
    expired_row = re.search(r'<tr class="is-expired">(.*?)</tr>', page, re.S).group(1)
    assert "Old job" in expired_row and "Expired" in expired_row and "no longer works" in expired_row
    assert page.count('class="is-expired"') == 1  # "Fresh" is not marked

    detail = person.get(reverse("web:key-detail", args=[issued.api_key.pk])).content.decode()
    assert "expired on" in detail and "no longer works" in detail
    assert "Rotate key" not in detail and "An expired key cannot be rotated" in detail
    assert "Revoke key…" in detail

    confirm = person.get(reverse("web:key-revoke", args=[issued.api_key.pk]))
    assert confirm.status_code == 200 and "already no longer works" in confirm.content.decode()
    response = person.post(reverse("web:key-revoke", args=[issued.api_key.pk]))
    assert response["Location"] == reverse("web:key-list")
    assert ApiKey.objects.get(pk=issued.api_key.pk).revoked_at is not None
    listing = person.get(response["Location"]).content.decode()
    assert "Revoked “Old job”" in listing
    assert 'class="is-expired"' not in listing and "Fresh" in listing


def test_expired_keys_do_not_count_against_the_active_key_limit(person, settings):
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 1
    issued = lifecycle.issue_key(owner=person.user, name="Old", expires_at=in_days(1))
    assert post_new_key(person).status_code == 409
    expire(issued.api_key)
    assert post_new_key(person).status_code == 200
