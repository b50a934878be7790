"""The revoke page: it asks first, then the key stops at once."""

import pytest
from django.urls import reverse

from apikeys import lifecycle

pytestmark = pytest.mark.django_db


def test_revoking_asks_first_then_takes_effect_at_once(person):
    issued = lifecycle.issue_key(owner=person.user, name="Old integration")
    confirm = person.get(reverse("web:key-revoke", args=[issued.api_key.pk]))
    assert "stops working immediately" in confirm.content.decode()
    assert lifecycle.verify_key(issued.plaintext).api_key is not None
    response = person.post(reverse("web:key-revoke", args=[issued.api_key.pk]))
    assert response["Location"] == reverse("web:key-list")
    assert lifecycle.verify_key(issued.plaintext).api_key is None
    listing = person.get(response["Location"]).content.decode()
    assert "Revoked “Old integration”" in listing
    assert "No keys yet" in listing


def test_a_revoked_key_page_says_so_and_offers_no_revoke(person):
    issued = lifecycle.issue_key(owner=person.user, name="n")
    lifecycle.revoke_key(issued.api_key)
    page = person.get(reverse("web:key-detail", args=[issued.api_key.pk])).content.decode()
    assert "Revoked" in page and "Revoke key" not in page
    assert person.get(reverse("web:key-revoke", args=[issued.api_key.pk]))["Location"] == reverse(
        "web:key-detail", args=[issued.api_key.pk]
    )
