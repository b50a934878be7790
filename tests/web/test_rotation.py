"""The rotate page: grace choices, the new secret shown once, refusals."""

import datetime
import json
import re

import pytest
from django.contrib.sessions.models import Session
from django.urls import reverse
from firebase_admin import auth

from apikeys import firebase, lifecycle
from apikeys.models import ApiKey, KeyEvent, Scope
from apikeys.web.forms import GRACE_HELP

from ..helpers import expire, in_days
from .pages import KEY_RE, controls, described_by, post_rotate, radios, rotate_form_prefix, text

pytestmark = pytest.mark.django_db


def test_rotating_asks_first_with_grace_choices(person):
    issued = lifecycle.issue_key(owner=person.user, name="CI deploy")
    detail = person.get(reverse("web:key-detail", args=[issued.api_key.pk])).content.decode()
    assert f'href="{reverse("web:key-rotate", args=[issued.api_key.pk])}">Rotate key…</a>' in detail
    response = person.get(reverse("web:key-rotate", args=[issued.api_key.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert radios(page, "grace_seconds") == {"0": True, "3600": False, "86400": False, "604800": False}
    for label in ["Immediately", "After 1 hour", "After 24 hours", "After 7 days"]:
        assert label in page
    assert "stops working the moment you rotate" in page and "keeps working for a week" in page
    assert f'name="expected_prefix" value="{issued.api_key.key_prefix}"' in page
    assert re.search(r'<form method="post" action="[^"]+/rotate/" class="form" novalidate data-submit-once>', page)
    # Asking is not rotating.
    assert lifecycle.verify_key(issued.plaintext).api_key is not None
    assert ApiKey.objects.get(pk=issued.api_key.pk).rotated_at is None


def test_rotating_shows_the_new_secret_once_and_stops_the_old_one(person):
    issued = lifecycle.issue_key(owner=person.user, name="CI deploy", scopes=Scope.objects.filter(code="goals:write"))
    response = post_rotate(person, issued.api_key.pk)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    plaintext = KEY_RE.search(page).group(0)
    assert plaintext != issued.plaintext and page.count(plaintext) == 1
    assert "The new secret for “CI deploy”" in page and "will not be shown again" in page
    assert "The old key stopped working just now." in page
    assert "goals:write" in page
    api_key = lifecycle.verify_key(plaintext).api_key
    assert api_key.pk == issued.api_key.pk and api_key.name == "CI deploy"
    assert lifecycle.verify_key(issued.plaintext).api_key is None
    # Nowhere but that page: not a cookie, the session store, a message, or a later page.
    assert plaintext not in str(response.cookies) and plaintext not in str(person.cookies)
    assert all(plaintext not in json.dumps(s.get_decoded()) for s in Session.objects.all())
    for url in [
        reverse("web:key-list"),
        reverse("web:key-detail", args=[api_key.pk]),
        reverse("web:key-rotate", args=[api_key.pk]),
    ]:
        later = person.get(url)
        assert plaintext not in later.content.decode() and plaintext not in str(later.cookies)
    assert not KEY_RE.search(json.dumps(list(KeyEvent.objects.values("details", "actor_label", "user_agent"))))


@pytest.mark.parametrize("grace_seconds", [3600, 86400, 604800])
def test_each_grace_choice_keeps_the_old_secret_working_that_long(person, grace_seconds):
    issued = lifecycle.issue_key(owner=person.user, name="n")
    response = post_rotate(person, issued.api_key.pk, grace_seconds=grace_seconds)
    assert response.status_code == 200
    new_plaintext = KEY_RE.search(response.content.decode()).group(0)
    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert api_key.previous_key_expires_at - api_key.rotated_at == datetime.timedelta(seconds=grace_seconds)
    assert f"keeps working until {api_key.previous_key_expires_at:%-d %b %Y, %H:%M}" in text(response)
    assert (
        lifecycle.verify_key(issued.plaintext).api_key is not None
        and lifecycle.verify_key(new_plaintext).api_key is not None
    )
    event = api_key.events.get(action=KeyEvent.Action.ROTATED)
    assert event.details["grace_seconds"] == grace_seconds
    detail = person.get(reverse("web:key-detail", args=[api_key.pk])).content.decode()
    assert "Old secret" in detail and "still works until" in detail


@pytest.mark.parametrize("data", [{"grace_seconds": "999"}, {"grace_seconds": "-1"}, {}])
def test_an_unknown_grace_period_is_refused_without_rotating(person, data):
    issued = lifecycle.issue_key(owner=person.user, name="n")
    data = {"expected_prefix": issued.api_key.key_prefix, **data}
    response = person.post(reverse("web:key-rotate", args=[issued.api_key.pk]), data)
    assert response.status_code == 422
    page = response.content.decode()
    assert "Choose" in page and 'class="field-error"' in page
    assert re.search(r'name="grace_seconds" value="0"[^>]*autofocus', page)
    assert ApiKey.objects.get(pk=issued.api_key.pk).rotated_at is None
    # The message is tied to every radio button, after each one's own help.
    for tag in controls(page, "grace_seconds"):
        assert 'aria-invalid="true"' in tag and described_by(tag)[-1] == "grace-error", tag
        assert described_by(tag)[0].endswith("-help")


def test_a_rotate_form_without_its_prefix_rotates_nothing(person):
    issued = lifecycle.issue_key(owner=person.user, name="n")
    response = person.post(reverse("web:key-rotate", args=[issued.api_key.pk]), {"grace_seconds": 0})
    assert response.status_code == 422
    assert "The form was incomplete" in response.content.decode()
    assert ApiKey.objects.get(pk=issued.api_key.pk).rotated_at is None


def test_sending_the_rotate_form_again_rotates_once(person, settings):
    settings.OMIKEYS_KEY_CREATION_RATE = (1, 3600)  # a repeat must not count against the rate either
    issued = lifecycle.issue_key(owner=person.user, name="n")
    prefix = rotate_form_prefix(person, issued.api_key.pk)
    first = post_rotate(person, issued.api_key.pk, prefix=prefix)
    new_plaintext = KEY_RE.search(first.content.decode()).group(0)
    again = post_rotate(person, issued.api_key.pk, prefix=prefix)  # a reload, or a second click
    assert again.status_code == 302
    assert again["Location"] == reverse("web:key-detail", args=[issued.api_key.pk])
    followed = person.get(again["Location"]).content.decode()
    assert "The new key was shown when it was rotated and cannot be shown again." in followed
    assert new_plaintext not in followed
    assert lifecycle.verify_key(new_plaintext).api_key is not None
    assert KeyEvent.objects.filter(api_key=issued.api_key, action=KeyEvent.Action.ROTATED).count() == 1


@pytest.mark.parametrize("state", ["expired", "revoked"])
def test_an_expired_or_revoked_key_cannot_be_rotated(person, state):
    issued = lifecycle.issue_key(owner=person.user, name="n", expires_at=in_days(1))
    if state == "expired":
        expire(issued.api_key)
    else:
        lifecycle.revoke_key(issued.api_key)
    url = reverse("web:key-rotate", args=[issued.api_key.pk])
    detail = reverse("web:key-detail", args=[issued.api_key.pk])
    assert person.get(url)["Location"] == detail
    response = post_rotate(person, issued.api_key.pk, prefix=issued.api_key.key_prefix)
    assert response.status_code == 302 and response["Location"] == detail
    page = person.get(detail).content.decode()
    said = {"expired": "This key has expired", "revoked": "This key has been revoked"}[state]
    assert said in page and "cannot be rotated" in page
    assert not KeyEvent.objects.filter(action=KeyEvent.Action.ROTATED).exists()
    assert ApiKey.objects.get(pk=issued.api_key.pk).key_prefix == issued.api_key.key_prefix


def test_rotating_checks_the_account_first(person):
    issued = lifecycle.issue_key(owner=person.user, name="n")
    prefix = rotate_form_prefix(person, issued.api_key.pk)
    auth.update_user(person.account.uid, disabled=True, app=firebase.get_app())
    response = post_rotate(person, issued.api_key.pk, prefix=prefix)
    assert response.status_code == 302 and response["Location"].startswith(reverse("web:signin"))
    assert ApiKey.objects.get(pk=issued.api_key.pk).rotated_at is None


def test_every_grace_period_of_the_core_has_its_explanation_on_the_page():
    assert set(GRACE_HELP) == set(lifecycle.GRACE_PERIODS)
