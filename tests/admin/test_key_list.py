"""The key list in the admin: columns, search, filters, bounded queries, and no deleting."""

import datetime

import pytest
from django.utils import timezone

from apikeys import lifecycle
from apikeys.models import ApiKey, User

from ..helpers import expire, in_days, issue
from .pages import KEY_CHANGELIST, action_names, key_url, listed, messages_of, row_of, scopes, shown

pytestmark = pytest.mark.django_db


def test_changelist_lists_keys_with_owner_prefix_scopes_and_status(admin_client, alice, bob):
    active = issue(alice, "Reporting", ["memories:read", "goals:write"]).api_key
    revoked = issue(bob, "Backups", ["conversations:read"]).api_key
    lifecycle.revoke_key(revoked)

    response = admin_client.get(KEY_CHANGELIST)

    assert listed(response) == {active.pk, revoked.pk}
    html = response.content.decode()
    active_row = row_of(html, "Reporting")
    for text in ("alice@example.com", "uid-alice", active.key_prefix, "goals:write, memories:read", "never", "Active"):
        assert text in active_row
    assert "Revoked" not in active_row
    revoked_row = row_of(html, "Backups")
    for text in ("bob@example.com", "uid-bob", revoked.key_prefix, "conversations:read", "Revoked"):
        assert text in revoked_row


@pytest.mark.parametrize(
    "term",
    [
        pytest.param(lambda key: "Backups", id="name"),
        pytest.param(lambda key: key.key_prefix, id="prefix"),
        pytest.param(lambda key: "bob@example.com", id="owner-email"),
        pytest.param(lambda key: "uid-bob", id="owner-firebase-uid"),
    ],
)
def test_search_finds_keys_by_name_prefix_owner_email_and_uid(admin_client, alice, bob, term):
    issue(alice, "Reporting")
    wanted = issue(bob, "Backups").api_key

    response = admin_client.get(KEY_CHANGELIST, {"q": term(wanted)})

    assert listed(response) == {wanted.pk}


def test_status_filter_separates_active_expired_and_revoked_keys(admin_client, alice):
    active = issue(alice, "Active one").api_key
    expiring = lifecycle.issue_key(owner=alice, name="Expires later", expires_at=in_days(3)).api_key
    expired = issue(alice, "Expired one").api_key
    expire(expired)
    revoked = issue(alice, "Revoked one").api_key
    lifecycle.revoke_key(revoked)
    expired_then_revoked = issue(alice, "Expired, then revoked").api_key
    expire(expired_then_revoked)
    lifecycle.revoke_key(expired_then_revoked)

    changelist = admin_client.get(KEY_CHANGELIST)
    status_filter = next(spec for spec in changelist.context["cl"].filter_specs if spec.title == "status")
    assert [label for _, label in status_filter.lookup_choices] == ["Active", "Disabled", "Expired", "Revoked"]
    assert listed(admin_client.get(KEY_CHANGELIST, {"status": "active"})) == {active.pk, expiring.pk}
    assert listed(admin_client.get(KEY_CHANGELIST, {"status": "expired"})) == {expired.pk}
    assert listed(admin_client.get(KEY_CHANGELIST, {"status": "revoked"})) == {revoked.pk, expired_then_revoked.pk}
    assert len(listed(changelist)) == 5


def test_changelist_shows_when_each_key_expires_and_which_have_expired(admin_client, alice):
    issue(alice, "Forever")
    moment = in_days(30)
    lifecycle.issue_key(owner=alice, name="Thirty days", expires_at=moment)
    expired = issue(alice, "Ran out")
    expire(expired.api_key)

    html = admin_client.get(KEY_CHANGELIST).content.decode()

    forever = row_of(html, "Forever")
    assert '<td class="field-expires"><span class="nowrap">never</span></td>' in forever
    assert "Active" in forever
    thirty = row_of(html, "Thirty days")
    assert f'<td class="field-expires"><span class="nowrap">{shown(moment)}</span></td>' in thirty
    assert "Active" in thirty
    ran_out = row_of(html, "Ran out")
    expired_at = shown(ApiKey.objects.get(pk=expired.api_key.pk).expires_at)
    assert f'<td class="field-expires"><span class="nowrap">{expired_at}</span></td>' in ran_out
    assert "Expired" in ran_out and "Active" not in ran_out
    assert lifecycle.verify_key(expired.plaintext).api_key is None


def test_scope_filter_shows_only_keys_carrying_that_scope(admin_client, alice):
    writer = issue(alice, "Writer", ["memories:write", "memories:read"]).api_key
    issue(alice, "Reader", ["memories:read"])
    (memories_write,) = scopes("memories:write")

    response = admin_client.get(KEY_CHANGELIST, {"scopes__id__exact": memories_write.pk})

    assert listed(response) == {writer.pk}


def test_created_filter_narrows_keys_by_creation_date(admin_client, alice):
    recent = issue(alice, "Recent").api_key
    old = issue(alice, "Old").api_key
    ApiKey.objects.filter(pk=old.pk).update(created_at=timezone.now() - datetime.timedelta(days=40))
    date_filter = next(
        spec for spec in admin_client.get(KEY_CHANGELIST).context["cl"].filter_specs if spec.title == "created at"
    )
    past_week = dict(date_filter.links)["Past 7 days"]

    assert listed(admin_client.get(KEY_CHANGELIST, past_week)) == {recent.pk}


def test_keys_cannot_be_deleted_from_anywhere_in_the_admin(admin_client, alice):
    api_key = issue(alice).api_key

    assert admin_client.get(key_url(api_key, "delete")).status_code == 403
    assert admin_client.post(key_url(api_key, "delete"), {"post": "yes"}).status_code == 403
    changelist = admin_client.get(KEY_CHANGELIST)
    assert action_names(changelist) == {"revoke_selected", "disable_selected", "enable_selected"}
    bulk_delete = admin_client.post(
        KEY_CHANGELIST, {"action": "delete_selected", "_selected_action": [str(api_key.pk)], "post": "yes"}, follow=True
    )
    assert messages_of(bulk_delete) == ["No action selected."]
    change_page = admin_client.get(key_url(api_key)).content.decode()
    assert key_url(api_key, "delete") not in change_page
    assert 'class="deletelink"' not in change_page
    assert ApiKey.objects.filter(pk=api_key.pk).exists()


@pytest.mark.parametrize("query", [{}, {"status": "active"}, {"status": "expired"}, {"status": "revoked"}])
def test_key_changelist_queries_do_not_grow_with_the_number_of_keys(admin_client, django_assert_max_num_queries, query):
    for n in range(12):
        owner = User.objects.for_firebase(f"uid-{n % 4}", f"user{n % 4}@example.com")
        api_key = lifecycle.issue_key(
            owner=owner,
            name=f"Key {n}",
            scopes=scopes("memories:read", "goals:read", "conversations:write"),
            expires_at=in_days(n + 1) if n % 2 else None,
        ).api_key
        if n % 3 == 0:
            lifecycle.rotate_key(api_key, grace_seconds=3600)
        if n % 4 == 1:
            expire(api_key)
        if n % 4 == 2:
            lifecycle.revoke_key(api_key)

    with django_assert_max_num_queries(8):
        response = admin_client.get(KEY_CHANGELIST, query)

    assert len(listed(response)) == {"active": 6, "expired": 3, "revoked": 3}.get(query.get("status"), 12)
