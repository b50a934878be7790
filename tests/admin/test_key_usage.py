"""A key's usage on its admin page, read-only, for staff who may view key events (it holds addresses)."""

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from apikeys import lifecycle
from apikeys.lifecycle.usage import hour_of
from apikeys.models import ApiKey, KeyAddress, KeyLastUse, KeyUsageHour

from .pages import key_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def used_key(alice):
    key = lifecycle.issue_key(owner=alice, name="Reporting").api_key
    now = hour_of(timezone.now())
    KeyUsageHour.objects.create(api_key=key, hour=now, accepted=3, disabled=1)
    KeyLastUse.objects.create(api_key=key, at=now, outcome="accepted", address="198.51.100.5", user_agent="sdk/1")
    KeyAddress.objects.create(api_key=key, address="198.51.100.5", first_seen=now, last_seen=now, requests=4)
    return key


def test_staff_see_the_usage_on_the_key_page(admin_client, used_key):
    page = admin_client.get(key_url(used_key)).content.decode()
    section = page.split('id="key-usage"')[1]
    assert "4 requests: 3 accepted, 1 refused" in section
    assert "<svg" in section and "198.51.100.5" in section and "sdk/1" in section
    assert "<dt>Outcome</dt><dd>Accepted</dd>" in section
    assert 'name="accepted"' not in section  # read-only: no form fields


def test_a_revoked_key_page_shows_its_usage_too(admin_client, used_key):
    lifecycle.revoke_key(used_key)
    assert "4 requests" in admin_client.get(key_url(used_key)).content.decode()


def test_staff_who_may_not_view_events_do_not_see_addresses(client, staff, used_key):
    staff.user_permissions.add(Permission.objects.get(codename="view_apikey"))
    client.force_login(staff)
    page = client.get(key_url(used_key)).content.decode()
    assert 'id="key-usage"' not in page and "198.51.100.5" not in page


def test_a_key_stamped_used_but_without_written_usage_is_not_called_never_used(admin_client, alice):
    key = lifecycle.issue_key(owner=alice, name="Stamped").api_key
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())

    page = admin_client.get(key_url(key)).content.decode()

    section = page.split('id="key-usage"')[1]
    assert "Never used." not in section
    assert "Its address and client are not recorded yet" in section
