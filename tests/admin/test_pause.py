"""Disabling and enabling keys in the admin: the list's actions, the key page's buttons, the status filter and column,
and the change form applying name, scopes and expiry all or nothing."""

import datetime

import pytest
from django.contrib.admin.models import LogEntry
from django.utils import timezone

from apikeys import lifecycle
from apikeys.audit import Actor
from apikeys.models import ApiKey, KeyEvent

from ..helpers import issue
from .pages import (
    FROM_STAFF,
    KEY_CHANGELIST,
    action_names,
    assert_made_by_staff,
    change_data,
    expiry_fields,
    key_url,
    listed,
    messages_of,
    pause_url,
    row_of,
    scopes,
    the_event,
)

pytestmark = pytest.mark.django_db

DISABLED = "Invalid API Key: this key is disabled."


def act(client, action, *keys, **extra):
    return client.post(
        KEY_CHANGELIST, {"action": action, "_selected_action": [str(k.pk) for k in keys]}, follow=True, **extra
    )


def test_the_list_offers_disable_and_enable(admin_client):
    assert {"disable_selected", "enable_selected"} <= action_names(admin_client.get(KEY_CHANGELIST))


def test_disable_action_pauses_each_key_and_counts_what_it_skipped(admin_client, admin_user, alice, bob):
    first, second, already, gone = (issue(alice, "First"), issue(bob, "Second"), issue(alice, "Already"), issue(bob))
    lifecycle.disable_key(already.api_key)
    lifecycle.revoke_key(gone.api_key)

    response = act(admin_client, "disable_selected", *(i.api_key for i in (first, second, already, gone)), **FROM_STAFF)

    assert messages_of(response) == [
        "Disabled 2 keys.",
        "1 key was already disabled.",
        "1 key was skipped: it is revoked, and cannot change.",
    ]
    for issued in (first, second):
        assert lifecycle.verify_key(issued.plaintext).rejection == DISABLED
        assert_made_by_staff(the_event(issued.api_key, "disabled"), admin_user)
    assert KeyEvent.objects.filter(action="disabled").count() == 3  # the two, and the one disabled before
    assert ApiKey.objects.get(pk=gone.api_key.pk).disabled_at is None
    assert LogEntry.objects.filter(change_message="Disabled the key.").count() == 2


def test_enable_action_resumes_disabled_keys(admin_client, admin_user, alice):
    paused, working = issue(alice, "Paused"), issue(alice, "Working")
    lifecycle.disable_key(paused.api_key)

    response = act(admin_client, "enable_selected", paused.api_key, working.api_key, **FROM_STAFF)

    assert messages_of(response) == ["Enabled 1 key.", "1 key was not disabled."]
    assert lifecycle.verify_key(paused.plaintext).api_key == paused.api_key
    assert_made_by_staff(the_event(paused.api_key, "enabled"), admin_user)
    assert not KeyEvent.objects.filter(api_key=working.api_key, action="enabled").exists()


def test_the_status_column_and_filter_know_disabled(admin_client, alice):
    working, paused, lapsed = issue(alice, "Working"), issue(alice, "Paused"), issue(alice, "Lapsed paused")
    lifecycle.disable_key(paused.api_key)
    lifecycle.disable_key(lapsed.api_key)
    ApiKey.objects.filter(pk=lapsed.api_key.pk).update(expires_at=timezone.now() - datetime.timedelta(days=1))

    html = admin_client.get(KEY_CHANGELIST).content.decode()
    assert ">Disabled<" in row_of(html, "Paused<")
    assert ">Expired<" in row_of(html, "Lapsed paused")

    assert listed(admin_client.get(KEY_CHANGELIST, {"status": "active"})) == {working.api_key.pk}
    assert listed(admin_client.get(KEY_CHANGELIST, {"status": "disabled"})) == {paused.api_key.pk}
    assert listed(admin_client.get(KEY_CHANGELIST, {"status": "expired"})) == {lapsed.api_key.pk}
    filters = admin_client.get(KEY_CHANGELIST).content.decode()
    assert "?status=disabled" in filters


def test_the_key_page_links_to_disable_and_then_to_enable(admin_client, alice):
    api_key = issue(alice, "Page").api_key

    page = admin_client.get(key_url(api_key)).content.decode()
    assert pause_url(api_key, "disable") in page and pause_url(api_key, "enable") not in page

    lifecycle.disable_key(api_key)
    page = admin_client.get(key_url(api_key)).content.decode()
    assert pause_url(api_key, "enable") in page and pause_url(api_key, "disable") not in page
    assert "Disabled" in page
    assert "Disabled at:" in page  # when, on a disabled key's page only
    lifecycle.enable_key(api_key)
    assert "Disabled at:" not in admin_client.get(key_url(api_key)).content.decode()


def test_the_disable_page_confirms_then_pauses_with_the_reason(admin_client, admin_user, alice):
    issued = issue(alice, "Leaked?")
    api_key = issued.api_key

    confirm = admin_client.get(pause_url(api_key, "disable"))
    assert confirm.status_code == 200
    assert 'name="reason"' in confirm.content.decode()
    assert api_key.key_prefix in confirm.content.decode()
    assert ApiKey.objects.get(pk=api_key.pk).disabled_at is None  # a GET changes nothing

    response = admin_client.post(
        pause_url(api_key, "disable"), {"reason": "checking a leak"}, follow=True, **FROM_STAFF
    )

    assert response.redirect_chain[-1][0] == key_url(api_key)
    assert messages_of(response) == [
        "The key is disabled: it does not verify until it is enabled again. Its secret is kept."
    ]
    assert lifecycle.verify_key(issued.plaintext).rejection == DISABLED
    event = the_event(api_key, "disabled")
    assert_made_by_staff(event, admin_user)
    assert event.details == {"reason": "checking a leak"}
    assert LogEntry.objects.get().change_message == "Disabled the key: checking a leak"

    again = admin_client.post(pause_url(api_key, "disable"), {"reason": ""}, follow=True)
    assert messages_of(again) == ["The key was already disabled; nothing changed."]
    assert KeyEvent.objects.filter(action="disabled").count() == 1


def test_the_enable_page_resumes_the_key(admin_client, admin_user, alice):
    issued = issue(alice, "Resumed")
    lifecycle.disable_key(issued.api_key)

    assert admin_client.get(pause_url(issued.api_key, "enable")).status_code == 200
    response = admin_client.post(pause_url(issued.api_key, "enable"), follow=True, **FROM_STAFF)

    assert messages_of(response) == ["The key is enabled: its secret verifies again."]
    assert lifecycle.verify_key(issued.plaintext).api_key == issued.api_key
    assert_made_by_staff(the_event(issued.api_key, "enabled"), admin_user)


def test_a_reason_on_two_lines_is_refused(admin_client, alice):
    api_key = issue(alice).api_key
    response = admin_client.post(pause_url(api_key, "disable"), {"reason": "one\ntwo"})
    assert response.status_code == 200
    assert "one line of printable text" in response.content.decode()
    assert ApiKey.objects.get(pk=api_key.pk).disabled_at is None


def test_a_revoked_key_cannot_be_disabled_or_enabled(admin_client, alice):
    api_key = issue(alice).api_key
    lifecycle.revoke_key(api_key)
    for view in ("disable", "enable"):
        response = admin_client.post(pause_url(api_key, view), follow=True)
        assert messages_of(response) == ["This key has been revoked; it cannot change."]
    assert ApiKey.objects.get(pk=api_key.pk).disabled_at is None
    page = admin_client.get(key_url(api_key)).content.decode()
    assert pause_url(api_key, "disable") not in page and pause_url(api_key, "enable") not in page


def test_staff_without_change_permission_cannot_pause(client, staff, alice):
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(Permission.objects.get(codename="view_apikey"))
    client.force_login(staff)
    api_key = issue(alice).api_key

    assert client.post(pause_url(api_key, "disable")).status_code == 403
    assert client.get(KEY_CHANGELIST).context["action_form"] is None  # no action this staff member may use
    assert ApiKey.objects.get(pk=api_key.pk).disabled_at is None


def test_an_unknown_key_is_404(admin_client):
    assert admin_client.get("/admin/apikeys/apikey/3dc2cbf1-fe55-4fa1-b347-8a87ee718c87/disable/").status_code == 404


# --- the change form: all or nothing, through lifecycle.change_key ---------------------------


def test_a_refused_expiry_leaves_the_name_and_scopes_unchanged(admin_client, alice, settings):
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 1
    lapsed = issue(alice, "Lapsed", scopes=["memories:read"]).api_key
    ApiKey.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - datetime.timedelta(days=1))
    issue(alice, "Current")
    lapsed = ApiKey.objects.get(pk=lapsed.pk)
    (goals,) = scopes("goals:write")
    data = change_data(
        lapsed, name="Renamed", scopes=[goals.pk], **expiry_fields(timezone.now() + datetime.timedelta(days=10))
    )

    response = admin_client.post(key_url(lapsed), data, follow=True)

    assert messages_of(response)[0].startswith("Nothing was saved: You already have 1 active API key")
    after = ApiKey.objects.get(pk=lapsed.pk)
    assert after.name == "Lapsed" and after.is_expired()
    assert list(after.scopes.values_list("code", flat=True)) == ["memories:read"]
    assert not KeyEvent.objects.filter(api_key=lapsed).exclude(action="created").exists()


def test_name_scopes_and_expiry_change_in_one_save(admin_client, admin_user, alice):
    api_key = issue(alice, "Before", scopes=["memories:read"]).api_key
    (goals,) = scopes("goals:read")
    moment = (timezone.now() + datetime.timedelta(days=3)).replace(microsecond=0)

    response = admin_client.post(
        key_url(api_key), change_data(api_key, name="After", scopes=[goals.pk], **expiry_fields(moment)), **FROM_STAFF
    )

    assert response.status_code == 302
    after = ApiKey.objects.get(pk=api_key.pk)
    assert (after.name, after.expires_at) == ("After", moment)
    assert list(after.scopes.values_list("code", flat=True)) == ["goals:read"]
    for action in ("renamed", "scopes_changed", "expiry_changed"):
        assert_made_by_staff(the_event(api_key, action), admin_user)


def test_a_disabled_key_can_be_edited_and_stays_disabled(admin_client, alice):
    api_key = issue(alice, "Paused").api_key
    lifecycle.disable_key(api_key)

    response = admin_client.post(key_url(api_key), change_data(api_key, name="Paused, renamed"))

    assert response.status_code == 302
    after = ApiKey.objects.get(pk=api_key.pk)
    assert (after.name, after.status) == ("Paused, renamed", "disabled")


def test_disabling_in_the_admin_sends_key_disabled_with_the_staff_member(admin_client, admin_user, alice):
    from apikeys import webhooks
    from apikeys.models import Event

    webhooks.register_endpoint("http://127.0.0.1:9/hooks", ["key.disabled", "key.enabled"])
    api_key = issue(alice).api_key

    act(admin_client, "disable_selected", api_key)
    admin_client.post(pause_url(api_key, "enable"))

    payloads = [event.payload for event in Event.objects.order_by("created_at")]
    assert [payload["type"] for payload in payloads] == ["key.disabled", "key.enabled"]
    for payload in payloads:
        assert payload["data"]["actor"] == {"kind": "staff", "via": "admin", "staff_id": admin_user.pk}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["disable_selected", "enable_selected", "revoke_selected"])
def test_a_bulk_action_queues_one_notice_mail_per_owner_not_one_per_key(admin_client, alice, bob, settings, action):
    from django_q.models import OrmQ

    settings.OMIKEYS_SEND_EMAIL = True
    keys = [issue(alice, f"alice {n}").api_key for n in range(3)] + [issue(bob, "bob").api_key]
    if action == "enable_selected":
        for api_key in keys:
            lifecycle.disable_key(api_key)
    OrmQ.objects.all().delete()

    act(admin_client, action, *keys)

    assert KeyEvent.objects.filter(action__in=["disabled", "enabled", "revoked"], actor_kind="staff").count() == 4
    assert OrmQ.objects.count() == 2  # one sending task for each of the two owners


def test_a_reason_holding_a_key_is_refused_and_not_echoed(admin_client, alice):
    api_key = issue(alice).api_key
    secret = issue(alice).plaintext
    for reason in (f"found {secret} in a public gist", "token omi_svc_" + "0f" * 16):
        response = admin_client.post(pause_url(api_key, "disable"), {"reason": reason})
        page = response.content.decode()
        assert response.status_code == 200
        assert "The reason looks like it contains an API key; describe where it was found instead." in page
        assert reason.split()[1] not in page
    assert ApiKey.objects.get(pk=api_key.pk).disabled_at is None


def test_the_reason_field_says_the_owner_is_shown_it(admin_client, alice):
    page = admin_client.get(pause_url(issue(alice).api_key, "disable")).content.decode()
    assert "Shown to the key&#x27;s owner in the email notice and kept in the audit record" in page


def test_a_key_disabled_here_is_held_against_its_owner_and_staff_can_enable_it(admin_client, alice):
    api_key = issue(alice).api_key
    admin_client.post(pause_url(api_key, "disable"), {"reason": "checking a leak"})
    owner = Actor(kind="user", via="api", user=alice, label=alice.label)

    with pytest.raises(lifecycle.DisabledByStaff):
        lifecycle.enable_key(api_key, actor=owner)

    admin_client.post(pause_url(api_key, "enable"))
    assert ApiKey.objects.get(pk=api_key.pk).disabled_at is None
