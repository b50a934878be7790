"""Key hashes stay out of every admin page, search and changelist lookup."""

import pytest
from django.urls import reverse

from apikeys import lifecycle
from apikeys.models import ApiKey, KeyEvent

from ..helpers import expire, in_days, issue
from .pages import (
    EVENT_CHANGELIST,
    KEY_ADD,
    KEY_CHANGELIST,
    SCOPE_CHANGELIST,
    USER_CHANGELIST,
    event_url,
    events_of,
    expiry_fields,
    key_url,
    listed,
    rotate_data,
    rotate_url,
    scope_url,
    scopes,
    user_url,
)

pytestmark = pytest.mark.django_db


def test_the_hash_appears_on_no_admin_page(admin_client, alice):
    # One key of each kind, plus history from an admin add, change and rotation, and their events.
    active = issue(alice, "Active one", ["memories:read"]).api_key
    revoked = issue(alice, "Revoked one").api_key
    lifecycle.revoke_key(revoked)
    expired = issue(alice, "Expired one").api_key
    expire(expired)
    issued_page = admin_client.post(KEY_ADD, {"owner": alice.pk, "name": "Added here"})
    added = ApiKey.objects.get(name="Added here")
    admin_client.post(
        key_url(active),
        {"name": "Renamed", "scopes": [scope.pk for scope in scopes("goals:read")], **expiry_fields(in_days(9))},
    )
    rotated_page = admin_client.post(rotate_url(added), rotate_data(added, grace="86400"))
    lifecycle.rotate_key(active, grace_seconds=3600)  # still inside the grace period of its old secret
    (used_scope,) = scopes("memories:read")
    hashes = [value for pair in ApiKey.objects.values_list("key_hash", "previous_key_hash") for value in pair if value]
    assert len(hashes) == 6  # four current secrets and two replaced ones
    events = list(KeyEvent.objects.all())

    pages = [issued_page, rotated_page]
    for url, query in [
        (reverse("admin:index"), {}),
        (reverse("admin:app_list", args=["apikeys"]), {}),
        (KEY_CHANGELIST, {}),
        (KEY_CHANGELIST, {"status": "active"}),
        (KEY_CHANGELIST, {"status": "revoked"}),
        (KEY_CHANGELIST, {"scopes__id__exact": used_scope.pk}),
        (KEY_CHANGELIST, {"q": active.key_prefix}),
        (KEY_CHANGELIST, {"q": "alice"}),
        (KEY_ADD, {}),
        (key_url(active), {}),
        (key_url(revoked), {}),
        (key_url(added), {}),
        (key_url(expired), {}),
        (key_url(active, "history"), {}),
        (key_url(added, "history"), {}),
        (rotate_url(active), {}),
        (EVENT_CHANGELIST, {}),
        (EVENT_CHANGELIST, {"action": "rotated"}),
        (EVENT_CHANGELIST, {"q": "alice"}),
        (events_of(added), {}),
        *[(event_url(event), {}) for event in events],
        (SCOPE_CHANGELIST, {}),
        (scope_url(used_scope), {}),
        (scope_url(used_scope, "history"), {}),
        (USER_CHANGELIST, {}),
        (USER_CHANGELIST, {"q": "alice"}),
        (user_url(alice), {}),
        (user_url(alice, "history"), {}),
        (user_url(alice, "delete"), {}),
    ]:
        response = admin_client.get(url, query)
        assert response.status_code == 200, url
        pages.append(response)

    for response in pages:
        html = response.content.decode()
        for key_hash in hashes:
            assert key_hash not in html, response.request["PATH_INFO"]
            assert key_hash[:16] not in html, response.request["PATH_INFO"]


def test_searching_for_a_hash_finds_nothing(admin_client, alice):
    api_key = issue(alice).api_key
    lifecycle.rotate_key(api_key, grace_seconds=3600)
    api_key.refresh_from_db()

    for secret_hash in (api_key.key_hash, api_key.previous_key_hash):
        assert listed(admin_client.get(KEY_CHANGELIST, {"q": secret_hash})) == set()
        assert listed(admin_client.get(EVENT_CHANGELIST, {"q": secret_hash})) == set()
    assert listed(admin_client.get(KEY_CHANGELIST, {"q": api_key.key_prefix})) == {api_key.pk}  # search works


@pytest.mark.parametrize(
    ("url", "lookup"),
    [
        (KEY_CHANGELIST, "key_hash__startswith"),
        (KEY_CHANGELIST, "key_hash"),
        (KEY_CHANGELIST, "previous_key_hash__startswith"),
        (KEY_CHANGELIST, "previous_key_hash"),
        (KEY_CHANGELIST, "previous_key_hash__isnull"),
        (KEY_CHANGELIST, "scopes__api_keys__key_hash__startswith"),
        (USER_CHANGELIST, "api_keys__key_hash__startswith"),
        (USER_CHANGELIST, "api_keys__previous_key_hash__startswith"),
        (SCOPE_CHANGELIST, "api_keys__key_hash__startswith"),
        (SCOPE_CHANGELIST, "api_keys__previous_key_hash"),
        (EVENT_CHANGELIST, "api_key__key_hash__startswith"),
        (EVENT_CHANGELIST, "api_key__previous_key_hash__startswith"),
        (EVENT_CHANGELIST, "api_key__previous_key_hash"),
    ],
)
def test_the_hashes_cannot_be_probed_through_changelist_lookups(admin_client, alice, url, lookup):
    api_key = issue(alice).api_key
    lifecycle.rotate_key(api_key, grace_seconds=3600)
    api_key.refresh_from_db()
    secret_hash = api_key.previous_key_hash if "previous_key_hash" in lookup else api_key.key_hash
    if lookup.endswith("__startswith"):
        value = secret_hash[0]
    elif lookup.endswith("__isnull"):
        value = "False"
    else:
        value = secret_hash

    assert admin_client.get(url, {lookup: value}).status_code == 400
