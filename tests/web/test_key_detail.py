"""The key detail page: metadata, never the hash."""

import pytest
from django.urls import reverse

from apikeys import lifecycle

pytestmark = pytest.mark.django_db


def test_the_detail_page_shows_metadata_but_never_the_hash(person):
    issued = lifecycle.issue_key(owner=person.user, name="Reporting")
    page = person.get(reverse("web:key-detail", args=[issued.api_key.pk])).content.decode()
    assert "Reporting" in page and issued.api_key.key_prefix in page and "never" in page
    assert issued.api_key.key_hash not in page
    assert "Revoke key" in page
