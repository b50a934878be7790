"""The create page puts each refusal of lifecycle.issue_key beside the field the core names."""

import pytest
from django.core.exceptions import ValidationError

from apikeys import lifecycle
from apikeys.models import ApiKey

from .pages import post_new_key

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("field", "error_id"),
    [("expires_at", "expiry-error"), ("name", "name-error"), ("scopes", "scopes-error")],
)
def test_a_field_error_of_the_core_appears_beside_the_pages_field(person, monkeypatch, field, error_id):
    def refuse(**kwargs):
        raise ValidationError({field: ValidationError("The core refused this.", code="refused")})

    monkeypatch.setattr(lifecycle, "issue_key", refuse)

    response = post_new_key(person)

    assert response.status_code == 422
    page = response.content.decode()
    assert f'id="{error_id}"' in page
    assert "The core refused this." in page
    assert not ApiKey.objects.exists()


def test_an_owner_who_may_no_longer_hold_keys_is_signed_out(person, monkeypatch):
    def refuse(**kwargs):
        raise lifecycle.OwnerNotEligible(kwargs["owner"], lifecycle.OwnerNotEligible.INACTIVE)

    monkeypatch.setattr(lifecycle, "issue_key", refuse)

    response = post_new_key(person)

    assert response.status_code == 302
    assert response["Location"].startswith("/signin/")
    assert "_auth_user_id" not in person.session


def test_a_scope_code_with_a_null_character_is_refused_and_never_echoed(person):
    response = post_new_key(person, scopes=["memories:read\x00"])

    assert response.status_code == 422
    page = response.content.decode()
    assert "Null characters are not allowed." in page
    assert "\x00" not in page
    assert not ApiKey.objects.exists()
