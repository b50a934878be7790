"""The notification settings page: which email notices a user wants, saved, and the one that cannot be turned off."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from apikeys.models import NotificationSettings, User

from .pages import controls, sign_in, text

pytestmark = pytest.mark.django_db

URL = reverse("web:notification-settings")
FIELDS = ["changes_by_others", "expiry_reminders", "expired"]


def checked(page: str) -> dict[str, bool]:
    """Each settings checkbox (by name) -> whether it is ticked."""
    return {name: " checked" in controls(page, name)[0] for name in FIELDS}


def test_the_page_is_linked_next_to_sign_out_and_starts_with_every_notice_on(person):
    header = person.get(reverse("web:key-list")).content.decode().split("</header>", 1)[0]
    next_to_sign_out = rf'<li><a href="{URL}">Notifications</a></li>\s*<li>\s*<form method="post" action="/signout/"'
    assert re.search(next_to_sign_out, header)

    response = person.get(URL)

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    page = response.content.decode()
    assert checked(page) == dict.fromkeys(FIELDS, True)
    assert f'href="{URL}" aria-current="page"' in page
    words = text(response)
    assert f"Notices about your keys go to {person.user.email}" in words
    created = re.search(r'<input type="checkbox" id="id_key_created"[^>]*>', page).group(0)
    assert " checked" in created and " disabled" in created and "name=" not in created
    assert "A key was created on my account" in words and "Always sent; it cannot be turned off." in words
    assert not NotificationSettings.objects.filter(user=person.user).exists()  # looking saves nothing


def test_the_choices_are_saved_and_shown_again(person):
    response = person.post(URL, {"expired": "on"})  # unticked boxes are not sent

    assert response["Location"] == URL
    saved = NotificationSettings.objects.get(user=person.user)
    assert (saved.changes_by_others, saved.expiry_reminders, saved.expired) == (False, False, True)
    page = person.get(URL)
    assert "Notification settings saved." in text(page)
    assert checked(page.content.decode()) == {"changes_by_others": False, "expiry_reminders": False, "expired": True}

    person.post(URL, {"changes_by_others": "on", "expiry_reminders": "on"})  # saved again: the same row changes
    saved = NotificationSettings.objects.get(user=person.user)
    assert (saved.changes_by_others, saved.expiry_reminders, saved.expired) == (True, True, False)
    assert NotificationSettings.objects.count() == 1


def test_a_crafted_post_cannot_turn_off_the_created_notice(person):
    crafted = {"key_created": "", "created": "off", "key_created_notice": "false", "expired": "on"}
    response = person.post(URL, crafted)
    assert response.status_code == 302
    saved = NotificationSettings.objects.get(user=person.user)
    assert not hasattr(saved, "key_created") and saved.expired
    page = person.get(URL).content.decode()
    created = re.search(r'<input type="checkbox" id="id_key_created"[^>]*>', page).group(0)
    assert " checked" in created and " disabled" in created


def test_without_an_email_address_the_page_says_notices_cannot_be_sent(person):
    User.objects.filter(pk=person.user.pk).update(email="")
    words = text(person.get(URL))
    assert "Notices cannot be sent: your Omi account has no email address" in words
    assert "go to" not in words
    assert person.post(URL, {"expired": "on"}).status_code == 302  # the choice is kept for later


def test_anonymous_visitors_are_sent_to_sign_in(client):
    assert client.get(URL)["Location"] == f"{reverse('web:signin')}?next={URL}"
    assert client.post(URL, {})["Location"].startswith(reverse("web:signin"))
    assert not NotificationSettings.objects.exists()


def test_each_user_sees_and_saves_only_their_own_settings(person):
    other = sign_in(Client())
    other.post(URL, {})
    person.post(URL, {"expired": "on", "expiry_reminders": "on"})
    assert not NotificationSettings.objects.get(user=other.user).expired
    assert checked(other.get(URL).content.decode()) == dict.fromkeys(FIELDS, False)
    assert checked(person.get(URL).content.decode())["expired"]
