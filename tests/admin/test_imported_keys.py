"""Keys imported from Omi in the admin: the Omi document id on the key's page, and found by it."""

import uuid

import pytest
from django.utils import timezone

from apikeys import lifecycle
from apikeys.models import ApiKey

from ..helpers import issue, scopes
from ..omi_exports import omi_key
from .pages import KEY_CHANGELIST, key_url

pytestmark = pytest.mark.django_db


def imported(owner, document_id: str) -> ApiKey:
    key = omi_key()
    (result,) = lifecycle.import_keys(
        [
            lifecycle.ImportedKey(
                key_id=uuid.uuid5(uuid.NAMESPACE_URL, document_id),
                source_id=document_id,
                owner=owner,
                name="From Omi",
                key_prefix=key.key_prefix,
                key_hash=key.hashed_key,
                scopes=scopes("memories:read"),
                created_at=timezone.now(),
            )
        ]
    )
    assert result.outcome == "created"
    return ApiKey.objects.get(omi_document_id=document_id)


def test_an_imported_keys_page_shows_its_omi_document_id(admin_client, alice):
    api_key = imported(alice, "LegacyFirestoreId42")
    page = admin_client.get(key_url(api_key))
    assert page.status_code == 200
    assert "Omi document id" in page.content.decode()
    assert "LegacyFirestoreId42" in page.content.decode()


def test_a_key_issued_here_has_no_omi_document_id_row(admin_client, alice):
    issued = issue(alice, "native")
    page = admin_client.get(key_url(issued.api_key))
    assert "Omi document id" not in page.content.decode()


def test_staff_find_an_imported_key_by_its_omi_document_id(admin_client, alice):
    api_key = imported(alice, "FindMeById")
    imported(alice, "FindMeByIdToo")
    listing = admin_client.get(KEY_CHANGELIST, {"q": "FindMeById"})
    assert [key.pk for key in listing.context["cl"].result_list] == [api_key.pk]
