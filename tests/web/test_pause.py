"""Disabling and enabling a key from its page: it stops working at once, keeps its secret, and works again."""

import re

import pytest
from django.urls import reverse

from apikeys import lifecycle
from apikeys.audit import Actor
from apikeys.models import ApiKey, KeyEvent

from ..helpers import expire, in_days, key_client
from .pages import post_rotate, text

pytestmark = pytest.mark.django_db

DISABLED_DETAIL = {"detail": "Invalid API Key: this key is disabled."}


def detail_url(api_key) -> str:
    return reverse("web:key-detail", args=[api_key.pk])


def forms_on(page: str) -> list[str]:
    """The actions of the forms in a page's main content (the header's sign-out form left out)."""
    return re.findall(r'<form method="post" action="([^"]+)"', page.split("<main", 1)[1])


def test_disabling_stops_the_key_at_once_and_enabling_restores_it(person):
    issued = lifecycle.issue_key(owner=person.user, name="Nightly export")
    api_key = issued.api_key
    assert key_client(issued.plaintext).get("/v1/dev/key").status_code == 200
    detail = person.get(detail_url(api_key))
    page = detail.content.decode()
    assert forms_on(page) == [reverse("web:key-disable", args=[api_key.pk])]
    assert "It stops working at once and keeps its secret; enable it again any time." in text(detail)
    assert re.search(r'<button type="submit" class="button" aria-describedby="disable-help">Disable key</button>', page)

    response = person.post(reverse("web:key-disable", args=[api_key.pk]))

    assert response["Location"] == detail_url(api_key)
    refused = key_client(issued.plaintext).get("/v1/dev/key")
    assert refused.status_code == 401 and refused.json() == DISABLED_DETAIL
    detail = person.get(response["Location"])
    words = text(detail)
    assert f"Disabled “Nightly export” ({api_key.key_prefix}). It no longer works" in words
    assert "This key is disabled: requests with it are refused" in words
    assert '<span class="status status-disabled"' in detail.content.decode()
    assert forms_on(detail.content.decode()) == [reverse("web:key-enable", args=[api_key.pk])]
    assert "Rotate key…" in words and "Revoke key…" in words  # still possible while paused
    listing = person.get(reverse("web:key-list")).content.decode()
    row = re.search(r'<tr class="is-disabled">(.*?)</tr>', listing, re.S).group(1)
    assert "Nightly export" in row and "Disabled" in row

    response = person.post(reverse("web:key-enable", args=[api_key.pk]))

    assert response["Location"] == detail_url(api_key)
    assert key_client(issued.plaintext).get("/v1/dev/key").status_code == 200
    words = text(person.get(response["Location"]))
    assert "Enabled “Nightly export”" in words and "It works again." in words
    assert "Active" in words and "This key is disabled" not in words
    events = list(ApiKey.objects.get(pk=api_key.pk).events.values_list("action", "actor_id", "via"))
    assert events[:2] == [
        (KeyEvent.Action.ENABLED, person.user.pk, KeyEvent.Via.WEB),
        (KeyEvent.Action.DISABLED, person.user.pk, KeyEvent.Via.WEB),
    ]


def test_disabling_or_enabling_twice_says_so_and_changes_nothing_more(person):
    issued = lifecycle.issue_key(owner=person.user, name="n")
    url = reverse("web:key-disable", args=[issued.api_key.pk])
    person.post(url)
    person.get(detail_url(issued.api_key))  # shows, and so clears, the first message
    assert "This key was already disabled." in text(person.get(person.post(url)["Location"]))
    enable = reverse("web:key-enable", args=[issued.api_key.pk])
    person.post(enable)
    person.get(detail_url(issued.api_key))
    assert "This key was not disabled." in text(person.get(person.post(enable)["Location"]))
    actions = list(issued.api_key.events.values_list("action", flat=True))
    assert actions == [KeyEvent.Action.ENABLED, KeyEvent.Action.DISABLED, KeyEvent.Action.CREATED]


def test_a_get_changes_nothing_and_leads_to_the_key(person):
    issued = lifecycle.issue_key(owner=person.user, name="n")
    response = person.get(reverse("web:key-disable", args=[issued.api_key.pk]))
    assert response.status_code == 302 and response["Location"] == detail_url(issued.api_key)
    assert lifecycle.verify_key(issued.plaintext).api_key is not None


def by_owner(person) -> Actor:
    """The person themselves, as the key page's Disable button acts (a pause they may lift again)."""
    return Actor(kind=KeyEvent.ActorKind.USER, via=KeyEvent.Via.WEB, user=person.user, label=person.user.label)


def test_a_rotated_disabled_key_stays_disabled(person):
    issued = lifecycle.issue_key(owner=person.user, name="n")
    lifecycle.disable_key(issued.api_key, actor=by_owner(person))
    response = post_rotate(person, issued.api_key.pk)
    assert response.status_code == 200
    new_secret = re.search(r"omi_dev_(?:[0-9A-Za-z]{36}|[0-9a-f]{32})", response.content.decode()).group(0)
    refused = key_client(new_secret).get("/v1/dev/key")
    assert refused.status_code == 401 and refused.json() == DISABLED_DETAIL
    person.post(reverse("web:key-enable", args=[issued.api_key.pk]))
    assert key_client(new_secret).get("/v1/dev/key").status_code == 200


def test_a_revoked_key_offers_neither_button_and_refuses_both(person):
    issued = lifecycle.issue_key(owner=person.user, name="n")
    lifecycle.disable_key(issued.api_key)
    lifecycle.revoke_key(issued.api_key)
    page = person.get(detail_url(issued.api_key)).content.decode()
    assert forms_on(page) == [] and "Disable key" not in page and "Enable key" not in page
    enabled = person.post(reverse("web:key-enable", args=[issued.api_key.pk]))
    assert "This key has been revoked, so it cannot be enabled." in text(person.get(enabled["Location"]))
    disabled = person.post(reverse("web:key-disable", args=[issued.api_key.pk]))
    assert "This key has been revoked, so it cannot be disabled." in text(person.get(disabled["Location"]))
    assert list(issued.api_key.events.values_list("action", flat=True))[0] == KeyEvent.Action.REVOKED


def test_an_expired_key_offers_no_disable_and_enabling_it_says_it_still_does_not_work(person):
    issued = lifecycle.issue_key(owner=person.user, name="Old", expires_at=in_days(1))
    expire(issued.api_key)
    page = person.get(detail_url(issued.api_key)).content.decode()
    assert "Disable key" not in page and "Enable key" not in page

    lifecycle.disable_key(issued.api_key, actor=by_owner(person))  # as through the API, which pauses expired keys
    words = text(person.get(detail_url(issued.api_key)))
    assert "Expired" in words and "(also disabled)" in words and "It is also disabled." in words
    response = person.post(reverse("web:key-enable", args=[issued.api_key.pk]))
    assert "but it has expired, so it still does not work" in text(person.get(response["Location"]))
    assert not ApiKey.objects.get(pk=issued.api_key.pk).is_disabled
