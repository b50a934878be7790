"""The admin's key change form: only the name and scopes change, audited, and never on a revoked key."""

import pytest

from apikeys import lifecycle
from apikeys.models import ApiKey, KeyEvent

from ..helpers import issue
from .pages import FROM_STAFF, KEY_CHANGELIST, assert_made_by_staff, change_data, key_url, listed, scopes, the_event

pytestmark = pytest.mark.django_db


def test_changing_a_key_edits_only_its_name_and_scopes(admin_client, alice, bob):
    issued = issue(alice, "Before", ["memories:read"])
    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    page = admin_client.get(key_url(api_key))
    assert set(page.context["adminform"].form.fields) == {"name", "scopes", "expires_at"}
    (goals_write,) = scopes("goals:write")

    response = admin_client.post(
        key_url(api_key),
        {
            "name": "After",
            "scopes": [goals_write.pk],
            "owner": bob.pk,
            "key_prefix": "omi_dev_0000...0000",
            "key_hash": "0" * 64,
            "created_at": "2000-01-01 00:00:00",
            "last_used_at": "2000-01-01 00:00:00",
            "revoked_at": "2000-01-01 00:00:00",
            "rotated_at": "2000-01-01 00:00:00",
            "previous_key_hash": "0" * 64,
            "previous_key_expires_at": "2100-01-01 00:00:00",
        },
    )

    assert response.status_code == 302
    after = ApiKey.objects.get(pk=api_key.pk)
    assert after.name == "After"
    assert list(after.scopes.values_list("code", flat=True)) == ["goals:write"]
    assert (after.owner, after.key_prefix, after.key_hash) == (alice, api_key.key_prefix, api_key.key_hash)
    assert (after.created_at, after.last_used_at, after.revoked_at) == (api_key.created_at, None, None)
    assert (after.rotated_at, after.previous_key_hash, after.previous_key_expires_at) == (None, None, None)
    assert after.expires_at is None
    assert lifecycle.verify_key(issued.plaintext).api_key == after
    assert not KeyEvent.objects.filter(api_key=api_key, action="expiry_changed").exists()


def test_changing_a_key_still_applies_the_name_rules_and_needs_a_scope(admin_client, alice):
    api_key = issue(alice, "Before", ["memories:read"]).api_key

    response = admin_client.post(key_url(api_key), {"name": "omi_dev_" + "cd" * 16, "scopes": []})

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"name", "scopes"}
    assert ApiKey.objects.get(pk=api_key.pk).name == "Before"


def test_a_revoked_key_can_be_viewed_but_not_changed(admin_client, alice):
    api_key = issue(alice, "Gone").api_key
    lifecycle.revoke_key(api_key)

    page = admin_client.get(key_url(api_key))

    assert page.status_code == 200
    html = page.content.decode()
    assert "Gone" in html
    assert 'name="name"' not in html
    assert 'name="_save"' not in html
    assert admin_client.post(key_url(api_key), {"name": "Back", "scopes": []}).status_code == 403
    assert ApiKey.objects.get(pk=api_key.pk).name == "Gone"
    changelist = admin_client.get(KEY_CHANGELIST)
    assert listed(changelist) == {api_key.pk}


def test_renaming_and_rescoping_are_audited_with_old_and_new_values(admin_client, admin_user, alice):
    api_key = ApiKey.objects.get(pk=issue(alice, "Reporting", ["memories:read"]).api_key.pk)
    data = change_data(api_key, name="Reporting v2", scopes=[s.pk for s in scopes("memories:read", "memories:write")])

    assert admin_client.post(key_url(api_key), data, **FROM_STAFF).status_code == 302

    renamed, rescoped = the_event(api_key, "renamed"), the_event(api_key, "scopes_changed")
    assert_made_by_staff(renamed, admin_user)
    assert_made_by_staff(rescoped, admin_user)
    assert renamed.details == {"name": "Reporting v2", "previous_name": "Reporting"}
    assert rescoped.details == {"scopes": ["memories:read", "memories:write"], "previous_scopes": ["memories:read"]}
    assert sorted(ApiKey.objects.get(pk=api_key.pk).scopes.values_list("code", flat=True)) == [
        "memories:read",
        "memories:write",
    ]
    # Saving the page again unchanged records nothing more.
    admin_client.post(key_url(api_key), change_data(ApiKey.objects.get(pk=api_key.pk)), **FROM_STAFF)
    assert KeyEvent.objects.filter(api_key=api_key).count() == 3
