"""Key page URLs take a key id the way the API does (any case, hyphens optional), and pages are never cached."""

import pytest
from django.test import Client
from django.urls import reverse

from apikeys import lifecycle
from apikeys.models import ApiKey

from .pages import KEY_RE, post_new_key, post_rotate, rotate_form_prefix

pytestmark = pytest.mark.django_db

PAGES = ["web:key-detail", "web:key-edit", "web:key-rotate", "web:key-revoke"]


@pytest.fixture
def key(person):
    return lifecycle.issue_key(owner=person.user, name="Case test").api_key


def spellings(key_id) -> dict[str, str]:
    text = str(key_id)
    return {"upper": text.upper(), "mixed": text[:18].upper() + text[18:], "hyphenless": text.replace("-", "")}


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("spelling", ["upper", "mixed", "hyphenless"])
def test_a_get_with_the_id_spelt_otherwise_redirects_to_the_lowercase_url(person, key, page, spelling):
    canonical = reverse(page, args=[key.pk])
    other = canonical.replace(str(key.pk), spellings(key.pk)[spelling])

    response = person.get(other + "?from=bookmark")

    assert response.status_code == 301
    assert response["Location"] == canonical + "?from=bookmark"
    assert person.get(response["Location"]).status_code == 200


def test_the_api_and_the_pages_find_the_same_key_by_an_uppercase_id(person, key, client_for):
    upper = str(key.pk).upper()
    page = person.get(f"/keys/{upper}/", follow=True)
    assert page.status_code == 200 and "Case test" in page.content.decode()
    api = client_for(person.account).post(f"/v1/dev/keys/{upper}/rotate")
    assert api.status_code == 200


def test_a_rotate_form_posted_to_an_uppercase_url_rotates(person, key):
    prefix = rotate_form_prefix(person, key.pk)
    response = person.post(f"/keys/{str(key.pk).upper()}/rotate/", {"grace_seconds": 0, "expected_prefix": prefix})

    assert response.status_code == 200
    assert KEY_RE.search(response.content.decode())
    assert ApiKey.objects.get(pk=key.pk).key_prefix != prefix


def test_a_revoke_form_posted_to_an_uppercase_url_revokes(person, key):
    response = person.post(f"/keys/{str(key.pk).upper()}/revoke/")

    assert response.status_code == 302
    assert ApiKey.objects.get(pk=key.pk).is_revoked


@pytest.mark.parametrize(
    "bad",
    ["0000", "g" * 32, "00000000-0000-4000-8000-0000000000000", "{00000000-0000-4000-8000-000000000000}"],
)
def test_ids_that_are_not_uuids_are_404(person, bad):
    assert person.get(f"/keys/{bad}/").status_code == 404


def test_another_users_key_is_404_in_any_case(key):
    from .pages import sign_in

    stranger = sign_in(Client())
    response = stranger.get(f"/keys/{str(key.pk).upper()}/", follow=True)
    assert response.status_code == 404


def test_every_key_page_is_no_store(person, key):
    responses = [
        person.get(reverse("web:key-list")),
        person.get(reverse("web:key-create")),
        post_new_key(person),  # the page showing a new secret
        person.get(reverse("web:key-detail", args=[key.pk])),
        person.get(reverse("web:key-rotate", args=[key.pk])),
        post_rotate(person, key.pk, grace_seconds=3600),  # the page showing the new secret
        person.get(reverse("web:key-revoke", args=[key.pk])),
    ]
    for response in responses:
        assert "no-store" in response["Cache-Control"], response.status_code
