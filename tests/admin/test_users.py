"""The user admin: a user's keys read-only, Firebase identities untouched, owners of keys kept."""

import pytest

from apikeys import lifecycle
from apikeys.models import ApiKey, User

from ..helpers import issue
from .pages import USER_CHANGELIST, key_url, user_url

pytestmark = pytest.mark.django_db


def test_user_page_lists_the_users_keys_read_only(admin_client, alice, bob):
    active = issue(alice, "Reporting", ["memories:read", "goals:read"]).api_key
    revoked = issue(alice, "Retired").api_key
    lifecycle.revoke_key(revoked)
    others = issue(bob, "Not alices").api_key

    response = admin_client.get(user_url(alice))

    assert response.status_code == 200
    html = response.content.decode()
    assert "uid-alice" in html
    (inline,) = response.context["inline_admin_formsets"]
    assert {form.original.pk for form in inline} == {active.pk, revoked.pk}
    assert not inline.has_add_permission
    assert not inline.has_change_permission
    assert not inline.has_delete_permission
    for text in ("goals:read, memories:read", "Active", "Revoked", active.key_prefix, revoked.key_prefix):
        assert text in html
    for api_key in (active, revoked):
        assert f'href="{key_url(api_key)}"' in html
    assert others.key_prefix not in html
    assert 'name="api_keys-0-name"' not in html
    assert "api_keys-0-DELETE" not in html


def test_saving_a_firebase_user_leaves_their_keys_uid_and_username_untouched(admin_client, alice):
    issued = issue(alice, "Kept", ["memories:read"])
    api_key = issued.api_key

    response = admin_client.post(
        user_url(alice),
        {
            "username": "renamed",
            "email": "alice@new.example.com",
            "firebase_uid": "uid-mallory",
            "is_active": "on",
            "date_joined_0": "2025-01-01",
            "date_joined_1": "00:00:00",
            "api_keys-TOTAL_FORMS": "1",
            "api_keys-INITIAL_FORMS": "1",
            "api_keys-MIN_NUM_FORMS": "0",
            "api_keys-MAX_NUM_FORMS": "1000",
            "api_keys-0-id": str(api_key.pk),
            "api_keys-0-owner": str(alice.pk),
            "api_keys-0-name": "Changed through the inline",
            "api_keys-0-DELETE": "on",
        },
    )

    assert response.status_code == 302
    saved = User.objects.get(pk=alice.pk)
    assert saved.email == "alice@new.example.com"
    assert (saved.username, saved.firebase_uid) == ("firebase:uid-alice", "uid-alice")  # both come from Firebase
    after = ApiKey.objects.get(pk=api_key.pk)
    assert (after.name, after.owner_id, after.revoked_at) == ("Kept", alice.pk, None)
    assert lifecycle.verify_key(issued.plaintext).api_key == after


def test_a_user_who_owns_keys_cannot_be_deleted(admin_client, alice, bob):
    api_key = issue(alice, "Protects").api_key
    lifecycle.revoke_key(api_key)  # revoked keys are kept for audit, so they protect too

    page = admin_client.get(user_url(alice, "delete"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "would require deleting the following protected related objects" in html
    assert key_url(api_key) in html

    assert admin_client.post(user_url(alice, "delete"), {"post": "yes"}).status_code == 200
    bulk = admin_client.post(
        USER_CHANGELIST, {"action": "delete_selected", "_selected_action": [str(alice.pk)], "post": "yes"}
    )
    assert bulk.status_code == 200
    assert User.objects.filter(pk=alice.pk).exists()
    assert ApiKey.objects.filter(pk=api_key.pk).exists()

    assert admin_client.post(user_url(bob, "delete"), {"post": "yes"}).status_code == 302
    assert not User.objects.filter(pk=bob.pk).exists()


def test_staff_cannot_bind_a_firebase_uid_or_give_firebase_users_staff_rights(admin_client, admin_user, alice):
    page = admin_client.get(user_url(admin_user)).content.decode()
    assert 'name="firebase_uid"' not in page
    page = admin_client.get(user_url(alice)).content.decode()
    for field in ("firebase_uid", "is_staff", "is_superuser", "username"):
        assert f'name="{field}"' not in page
