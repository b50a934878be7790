"""The add form puts each refusal of lifecycle.issue_key beside the field the core names."""

import pytest
from django.contrib.admin.models import LogEntry
from django.core.exceptions import ValidationError

from apikeys import lifecycle
from apikeys.models import ApiKey

from .pages import KEY_ADD

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("expires_at", "The expiry must be in the future."),
        ("scopes", "The core refused these scopes."),
        ("name", "The core refused this name."),
    ],
)
def test_a_field_error_of_the_core_appears_beside_that_field(admin_client, alice, monkeypatch, field, message):
    def refuse(**kwargs):
        raise ValidationError({field: ValidationError(message, code="refused")})

    monkeypatch.setattr(lifecycle, "issue_key", refuse)

    response = admin_client.post(KEY_ADD, {"owner": alice.pk, "name": "Looks fine"})

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors == {field: [message]}
    assert not LogEntry.objects.exists()


def test_an_owner_deactivated_after_the_form_was_checked_gets_an_owner_error(admin_client, alice, monkeypatch):
    real_issue_key = lifecycle.issue_key

    def deactivate_first(**kwargs):
        kwargs["owner"].is_active = False  # as if an administrator had just deactivated them
        return real_issue_key(**kwargs)

    monkeypatch.setattr(lifecycle, "issue_key", deactivate_first)

    response = admin_client.post(KEY_ADD, {"owner": alice.pk, "name": "Too late"})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["owner"] == [
        "This account has been deactivated; it cannot hold API keys."
    ]
    assert not ApiKey.objects.exists()
    assert not LogEntry.objects.exists()
