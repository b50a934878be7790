"""POST /v1/dev/keys: a refusal of lifecycle.issue_key after the serializer accepted the request."""

import json

import pytest
from django.core.exceptions import ValidationError

from apikeys import lifecycle
from apikeys.models import ApiKey, Scope

pytestmark = pytest.mark.django_db

URL = "/v1/dev/keys"


def post(client, body):
    return client.post(URL, data=json.dumps(body), content_type="application/json")


def test_a_field_error_of_the_core_is_a_422_at_that_field(user_client, monkeypatch):
    def refuse(**kwargs):
        raise ValidationError(
            {"expires_at": ValidationError("The expiry must be in the future.", code="datetime_future")}
        )

    monkeypatch.setattr(lifecycle, "issue_key", refuse)

    response = post(user_client, {"name": "n"})

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {"loc": ["body", "expires_at"], "msg": "The expiry must be in the future.", "type": "datetime_future"}
        ]
    }


def test_an_owner_who_may_no_longer_hold_keys_is_401(user_client, monkeypatch):
    def refuse(**kwargs):
        raise lifecycle.OwnerNotEligible(kwargs["owner"], lifecycle.OwnerNotEligible.INACTIVE)

    monkeypatch.setattr(lifecycle, "issue_key", refuse)

    response = post(user_client, {"name": "n"})

    assert response.status_code == 401
    assert response.json() == {"detail": "This account has been deactivated; it cannot hold API keys."}
    assert not ApiKey.objects.exists()


def test_with_no_default_scope_a_key_asked_for_without_scopes_is_a_422_at_scopes(user_client):
    Scope.objects.update(is_default=False)

    response = post(user_client, {"name": "n"})

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "loc": ["body", "scopes"],
                "msg": "There is no read-only default at present: choose at least one scope.",
                "type": "scopes_empty",
            }
        ]
    }
    assert not ApiKey.objects.exists()
