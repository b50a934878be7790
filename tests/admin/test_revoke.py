"""The key list's revoke action: it revokes through the core and records the staff member."""

import pytest
from django.contrib.admin.models import CHANGE, LogEntry

from apikeys import lifecycle
from apikeys.models import ApiKey, KeyEvent

from ..helpers import issue
from .pages import FROM_STAFF, KEY_CHANGELIST, assert_made_by_staff, messages_of, the_event

pytestmark = pytest.mark.django_db


def test_revoke_action_revokes_and_reports_counts(admin_client, alice, bob):
    first = issue(alice, "First")
    second = issue(bob, "Second")
    earlier = issue(alice, "Earlier")
    lifecycle.revoke_key(earlier.api_key)
    first_revocation = ApiKey.objects.get(pk=earlier.api_key.pk).revoked_at

    response = admin_client.post(
        KEY_CHANGELIST,
        {
            "action": "revoke_selected",
            "_selected_action": [str(issued.api_key.pk) for issued in (first, second, earlier)],
        },
        follow=True,
    )

    assert response.status_code == 200
    assert messages_of(response) == ["Revoked 2 keys.", "1 key was already revoked."]
    for issued in (first, second, earlier):
        assert lifecycle.verify_key(issued.plaintext).api_key is None
    assert ApiKey.objects.active().count() == 0
    assert ApiKey.objects.get(pk=earlier.api_key.pk).revoked_at == first_revocation


def test_revoke_action_on_one_key_leaves_the_others_active(admin_client, alice):
    target = issue(alice, "Target")
    bystander = issue(alice, "Bystander")

    response = admin_client.post(
        KEY_CHANGELIST, {"action": "revoke_selected", "_selected_action": [str(target.api_key.pk)]}, follow=True
    )

    assert messages_of(response) == ["Revoked 1 key."]
    assert lifecycle.verify_key(target.plaintext).api_key is None
    assert lifecycle.verify_key(bystander.plaintext).api_key == bystander.api_key


def test_the_revoke_action_records_the_staff_member(admin_client, admin_user, alice):
    api_key = issue(alice, "Leaked").api_key

    admin_client.post(
        KEY_CHANGELIST, {"action": "revoke_selected", "_selected_action": [str(api_key.pk)]}, **FROM_STAFF
    )

    assert_made_by_staff(the_event(api_key, "revoked"), admin_user)
    log = LogEntry.objects.get()
    assert (log.action_flag, log.object_id, log.get_change_message()) == (CHANGE, str(api_key.pk), "Revoked the key.")
    admin_client.post(KEY_CHANGELIST, {"action": "revoke_selected", "_selected_action": [str(api_key.pk)]})
    assert KeyEvent.objects.filter(action="revoked").count() == 1  # revoking again records nothing
    assert LogEntry.objects.count() == 1
