"""A key Omi staff disabled, on its owner's page: who disabled it and why, no Enable button, and a form sent
anyway leaves it disabled; a key the owner disabled keeps its Enable button."""

import pytest
from django.urls import reverse

from apikeys import lifecycle
from apikeys.audit import Actor
from apikeys.models import ApiKey, KeyEvent

from .pages import text

pytestmark = pytest.mark.django_db

HELD = "This key was disabled by Omi staff; only they can enable it. Contact support."


def staff(admin_user) -> Actor:
    return Actor(kind=KeyEvent.ActorKind.STAFF, via=KeyEvent.Via.ADMIN, user=admin_user, label=admin_user.label)


def test_the_page_of_a_key_staff_disabled_says_so_with_the_reason_and_offers_no_enable(person, admin_user):
    api_key = lifecycle.issue_key(owner=person.user, name="Nightly export").api_key
    lifecycle.disable_key(api_key, actor=staff(admin_user), reason="checking whether it leaked")

    response = person.get(reverse("web:key-detail", args=[api_key.pk]))

    page = response.content.decode()
    words = text(response)
    assert "Disabled by Omi staff: “checking whether it leaked”." in words
    assert "Only Omi staff can enable it again: contact support." in words
    assert reverse("web:key-enable", args=[api_key.pk]) not in page
    for still_offered in ("web:key-edit", "web:key-rotate", "web:key-revoke"):
        assert reverse(still_offered, args=[api_key.pk]) in page


def test_without_a_reason_it_says_who_only(person):
    api_key = lifecycle.issue_key(owner=person.user, name="Nightly export").api_key
    lifecycle.disable_key(api_key, actor=Actor.command("disableapikey"))

    words = text(person.get(reverse("web:key-detail", args=[api_key.pk])))

    assert "Disabled by Omi staff. Requests with this key are refused" in words


def test_an_enable_form_sent_anyway_leaves_the_key_disabled_and_says_why(person, admin_user):
    api_key = lifecycle.issue_key(owner=person.user, name="Nightly export").api_key
    lifecycle.disable_key(api_key, actor=staff(admin_user))

    response = person.post(reverse("web:key-enable", args=[api_key.pk]), follow=True)

    assert response.status_code == 200
    assert HELD in text(response)
    assert ApiKey.objects.get(pk=api_key.pk).disabled_at is not None
    assert not KeyEvent.objects.filter(api_key=api_key, action="enabled").exists()


def test_a_key_the_owner_disabled_keeps_its_enable_button(person):
    api_key = lifecycle.issue_key(owner=person.user, name="Nightly export").api_key
    person.post(reverse("web:key-disable", args=[api_key.pk]))

    response = person.get(reverse("web:key-detail", args=[api_key.pk]))

    assert reverse("web:key-enable", args=[api_key.pk]) in response.content.decode()
    assert "Omi staff" not in text(response)
    person.post(reverse("web:key-enable", args=[api_key.pk]))
    assert ApiKey.objects.get(pk=api_key.pk).disabled_at is None
