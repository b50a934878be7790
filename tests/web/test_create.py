"""The create form and the show-once page."""

import json
import re

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from apikeys import lifecycle
from apikeys.models import ApiKey, Scope
from apikeys.web.forms import expiry_choices

from .pages import KEY_RE, controls, create_form_token, described_by, post_new_key, sign_in

pytestmark = pytest.mark.django_db


def test_the_form_groups_scopes_and_checks_the_read_only_default(person):
    page = person.get(reverse("web:key-create")).content.decode()
    for scope in Scope.objects.all():
        checkbox = re.search(rf'<input[^>]*value="{re.escape(scope.code)}"[^>]*>', page).group(0)
        assert ("checked" in checkbox) == scope.is_default
    assert "<legend>Memories</legend>" in page and "<legend>Action items</legend>" in page
    # Each scope's description is visible text tied to its checkbox.
    memories_write = re.search(r'<input[^>]*value="memories:write"[^>]*>', page).group(0)
    described_by = re.search(r'aria-describedby="([^"]+)"', memories_write).group(1)
    assert re.search(rf'id="{described_by}">Create, update and delete memories<', page)


def test_creating_a_key_shows_it_once_and_stores_only_its_hash(person):
    response = post_new_key(person, name="  Zapier sync ", scopes=["memories:read", "memories:write"])
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    plaintext = KEY_RE.search(page).group(0)
    assert page.count(plaintext) == 1
    api_key = lifecycle.verify_key(plaintext).api_key
    assert api_key.owner == person.user and api_key.name == "Zapier sync"
    assert sorted(api_key.scopes.values_list("code", flat=True)) == ["memories:read", "memories:write"]
    assert "will not be shown again" in page
    # Nowhere but that page: not in a cookie, the session store, or any later page.
    assert plaintext not in str(response.cookies)
    assert all(plaintext not in json.dumps(s.get_decoded()) for s in Session.objects.all())
    for url in [reverse("web:key-list"), reverse("web:key-detail", args=[api_key.pk])]:
        assert plaintext not in person.get(url).content.decode()


def test_sending_the_create_form_again_does_not_show_or_make_another_key(person):
    token = create_form_token(person)
    first = post_new_key(person, token=token)
    plaintext = KEY_RE.search(first.content.decode()).group(0)
    again = post_new_key(person, token=token)
    api_key = ApiKey.objects.get(owner=person.user)
    assert again.status_code == 302
    assert again["Location"] == reverse("web:key-detail", args=[api_key.pk])
    followed = person.get(again["Location"]).content.decode()
    assert "shown once and cannot be shown again" in followed
    assert plaintext not in followed
    assert ApiKey.objects.filter(owner=person.user).count() == 1


@pytest.mark.parametrize("token", ["", "short", "has spaces in it and is long enough"])
def test_a_missing_or_malformed_form_token_is_refused_with_input_kept(person, token):
    response = person.post(
        reverse("web:key-create"), {"name": "Kept name", "scopes": ["memories:read"], "form_token": token}
    )
    assert response.status_code == 422
    page = response.content.decode()
    assert "The form was incomplete" in page or "Enter a valid value" in page
    assert 'value="Kept name"' in page
    assert not ApiKey.objects.exists()
    # The re-rendered form carries a fresh, working token.
    fresh = re.search(r'name="form_token" value="([^"]+)"', page).group(1)
    assert post_new_key(person, token=fresh).status_code == 200


def test_the_same_form_token_serves_two_people_independently():
    token = "shared-token-0123456789"
    for _ in range(2):
        client = sign_in(Client())
        assert post_new_key(client, token=token).status_code == 200
    assert ApiKey.objects.filter(request_token=token).count() == 2


@pytest.mark.parametrize(
    "name, scopes, message",
    [
        ("   ", ["memories:read"], "The name must not be empty."),
        ("x" * 101, ["memories:read"], "at most 100 characters"),
        ("bad\nname", ["memories:read"], "control characters"),
        ("omi_dev_" + "a" * 32, ["memories:read"], "looks like it contains an API key"),
        ("Fine", [], "Choose at least one scope."),
        ("Fine", ["memories:delete"], "Unknown scope memories:delete."),
    ],
)
def test_invalid_input_is_explained_beside_the_field_and_kept(person, name, scopes, message):
    response = post_new_key(person, name=name, scopes=scopes)
    assert response.status_code == 422
    page = response.content.decode()
    assert message in page
    assert 'class="field-error"' in page
    if scopes == ["memories:read"]:
        assert re.search(r'value="memories:read"[^>]*checked', page)
    assert not ApiKey.objects.exists()


def test_a_rejected_name_is_put_back_in_the_field(person):
    page = post_new_key(person, name="x" * 101).content.decode()
    assert f'value="{"x" * 101}"' in page


def test_each_error_is_tied_to_every_control_of_its_field(person):
    page = post_new_key(person, name="", scopes=[], expires_in="12").content.decode()

    fields = (
        ("name", "name-error", 1),
        ("scopes", "scopes-error", Scope.objects.count()),
        ("expires_in", "expiry-error", len(expiry_choices())),
    )
    for field, error_id, count in fields:
        assert re.search(rf'<p id="{error_id}" class="field-error"', page), error_id
        tags = controls(page, field)
        assert len(tags) == count
        for tag in tags:
            assert 'aria-invalid="true"' in tag, tag
            assert described_by(tag)[-1] == error_id, tag  # after the field's own help
    (name,) = controls(page, "name")
    assert described_by(name) == ["name-help", "name-error"]


def test_a_form_without_errors_marks_nothing_invalid(person):
    page = person.get(reverse("web:key-create")).content.decode()
    assert "aria-invalid" not in page
    assert not any(id_.endswith("-error") for tag in controls(page, "scopes") for id_ in described_by(tag))
