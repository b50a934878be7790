"""Limits on the forms: the active-key limit and the creation rate."""

import re

import pytest

from apikeys import lifecycle
from apikeys.models import ApiKey

from .pages import create_form_token, post_new_key, post_rotate, radios

pytestmark = pytest.mark.django_db


def test_too_many_active_keys_is_explained_on_the_form(person, settings):
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 2
    first = lifecycle.issue_key(owner=person.user, name="one")
    lifecycle.issue_key(owner=person.user, name="two")
    token = create_form_token(person)
    response = post_new_key(person, name="Third", token=token, expires_in="30")
    assert response.status_code == 409
    page = response.content.decode()
    assert "You already have 2 active API keys, the most allowed." in page
    assert re.search(r'class="notice notice-error" role="alert" tabindex="-1" autofocus', page)
    assert 'value="Third"' in page and f'name="form_token" value="{token}"' in page
    assert radios(page, "expires_in")["30"]
    assert ApiKey.objects.filter(owner=person.user).count() == 2
    lifecycle.revoke_key(first.api_key)
    assert post_new_key(person, name="Third", token=token).status_code == 200  # the same form, sent again


def test_creating_keys_too_fast_is_429_with_retry_after(person, settings):
    settings.OMIKEYS_KEY_CREATION_RATE = (2, 3600)
    assert post_new_key(person, name="one").status_code == 200
    assert post_new_key(person, name="two").status_code == 200
    response = post_new_key(person, name="three")
    assert response.status_code == 429
    assert 3600 <= int(response["Retry-After"]) <= 3660  # an hour after the first, in one-minute slots
    page = response.content.decode()
    assert "Too many keys created or rotated recently. Try again in" in page
    assert 'value="three"' in page
    assert ApiKey.objects.filter(owner=person.user).count() == 2


def test_rotations_share_the_creation_rate_and_are_429_with_retry_after(person, settings):
    settings.OMIKEYS_KEY_CREATION_RATE = (1, 60)
    assert post_new_key(person).status_code == 200
    api_key = ApiKey.objects.get(owner=person.user)
    response = post_rotate(person, api_key.pk, grace_seconds=3600)
    assert response.status_code == 429
    assert 60 <= int(response["Retry-After"]) <= 61  # a minute after the creation, in one-second slots
    page = response.content.decode()
    assert re.search(r"Try again in \d+ seconds?\.", page)
    assert radios(page, "grace_seconds")["3600"]  # the choice is kept
    assert ApiKey.objects.get(pk=api_key.pk).rotated_at is None
