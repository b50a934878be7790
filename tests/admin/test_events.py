"""The audit log of key events in the admin: list, filters, search, read-only, and on each key's page."""

import datetime
import re

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from apikeys import audit, lifecycle
from apikeys.models import KeyEvent, User

from ..helpers import in_days, issue
from .pages import (
    EVENT_ADD,
    EVENT_CHANGELIST,
    FROM_STAFF,
    STAFF_AGENT,
    STAFF_IP,
    change_data,
    event_url,
    events_of,
    expiry_fields,
    key_url,
    listed,
    rotate_data,
    rotate_url,
    row_of,
    the_event,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(admin_client, alice, bob):
    """Events of every kind: a command issues, staff rotate and change the expiry, the owner revokes."""
    reporting = lifecycle.issue_key(owner=alice, name="Reporting", actor=audit.Actor.command("createapikey")).api_key
    backups = lifecycle.issue_key(owner=bob, name="Backups").api_key  # Python code
    admin_client.post(rotate_url(reporting), rotate_data(reporting, grace="3600"), **FROM_STAFF)
    reporting.refresh_from_db()
    admin_client.post(key_url(backups), change_data(backups, **expiry_fields(in_days(30))), **FROM_STAFF)
    owner = audit.Actor(kind="user", via="api", user=bob, label=bob.label, ip_address="198.51.100.4")
    lifecycle.revoke_key(backups, actor=owner)
    return {"reporting": reporting, "backups": backups}


def test_the_event_list_shows_each_change_with_its_key_owner_and_actor(admin_client, admin_user, history):
    response = admin_client.get(EVENT_CHANGELIST)

    events = KeyEvent.objects.all()
    assert listed(response) == {event.pk for event in events}
    assert len(events) == 5
    html = response.content.decode()
    rotated = the_event(history["reporting"], "rotated")
    row = row_of(html, event_url(rotated))
    assert f'<a href="{key_url(history["reporting"])}">{history["reporting"].key_prefix}</a>' in row
    for text in ("rotated", "alice@example.com", "a staff member", admin_user.label, "admin", STAFF_IP):
        assert text in row
    row = row_of(html, event_url(the_event(history["backups"], "revoked")))
    for text in ("revoked", "bob@example.com", "the key&#x27;s owner", "JSON API", "198.51.100.4"):
        assert text in row
    row = row_of(html, event_url(the_event(history["reporting"], "created")))
    assert "a management command" in row and "createapikey (run by " in row and "command line" in row


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"action": "rotated"}, [("reporting", "rotated")]),
        ({"action": "expiry_changed"}, [("backups", "expiry_changed")]),
        ({"actor_kind": "command"}, [("reporting", "created")]),
        ({"actor_kind": "staff"}, [("reporting", "rotated"), ("backups", "expiry_changed")]),
        ({"via": "api"}, [("backups", "revoked")]),
        ({"via": "code"}, [("backups", "created")]),
    ],
)
def test_the_event_list_filters_by_action_actor_and_door(admin_client, history, query, expected):
    wanted = {the_event(history[key], action).pk for key, action in expected}
    assert listed(admin_client.get(EVENT_CHANGELIST, query)) == wanted


def test_the_event_list_filters_by_date(admin_client, history):
    old = the_event(history["backups"], "created")
    KeyEvent.objects.filter(pk=old.pk).update(at=timezone.now() - datetime.timedelta(days=40))
    date_filter = next(
        spec for spec in admin_client.get(EVENT_CHANGELIST).context["cl"].filter_specs if spec.title == "date"
    )
    past_week = dict(date_filter.links)["Past 7 days"]

    assert listed(admin_client.get(EVENT_CHANGELIST, past_week)) == set(
        KeyEvent.objects.exclude(pk=old.pk).values_list("pk", flat=True)
    )


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        (lambda keys: keys["reporting"].key_prefix, {("reporting", "created"), ("reporting", "rotated")}),
        (
            lambda keys: "bob@example.com",
            {("backups", "created"), ("backups", "expiry_changed"), ("backups", "revoked")},
        ),
        (lambda keys: "uid-alice", {("reporting", "created"), ("reporting", "rotated")}),
        (lambda keys: "createapikey", {("reporting", "created")}),
        (lambda keys: "admin@example.com", {("reporting", "rotated"), ("backups", "expiry_changed")}),
        (lambda keys: "198.51.100.4", {("backups", "revoked")}),
        (lambda keys: STAFF_IP, {("reporting", "rotated"), ("backups", "expiry_changed")}),
    ],
    ids=["key-prefix", "owner-email", "owner-uid", "actor-label-command", "actor-label-staff", "ip", "staff-ip"],
)
def test_the_event_list_searches_prefix_owner_actor_and_address(admin_client, history, term, expected):
    wanted = {the_event(history[key], action).pk for key, action in expected}
    assert listed(admin_client.get(EVENT_CHANGELIST, {"q": term(history)})) == wanted


def test_the_event_admin_refuses_add_change_and_delete_even_to_a_superuser(admin_client, history):
    event = the_event(history["reporting"], "rotated")
    before = KeyEvent.objects.values().get(pk=event.pk)

    assert admin_client.get(EVENT_ADD).status_code == 403
    assert admin_client.post(EVENT_ADD, {"action": "created", "api_key": history["reporting"].pk}).status_code == 403
    assert admin_client.post(event_url(event), {"action": "revoked", "actor_label": "someone else"}).status_code == 403
    assert admin_client.get(event_url(event, "delete")).status_code == 403
    assert admin_client.post(event_url(event, "delete"), {"post": "yes"}).status_code == 403
    changelist = admin_client.get(EVENT_CHANGELIST)
    assert changelist.context["action_form"] is None  # no bulk delete
    assert 'class="addlink"' not in changelist.content.decode()
    admin_client.post(
        EVENT_CHANGELIST, {"action": "delete_selected", "_selected_action": [str(event.pk)], "post": "yes"}
    )
    assert KeyEvent.objects.values().get(pk=event.pk) == before
    assert KeyEvent.objects.count() == 5

    page = admin_client.get(event_url(event))  # viewing is fine, read-only
    assert page.status_code == 200
    html = page.content.decode()
    assert not re.search(r'<(input|select|textarea)[^>]+name="(?!csrfmiddlewaretoken)', html)
    assert 'name="_save"' not in html and 'class="deletelink"' not in html
    for text in (STAFF_AGENT, STAFF_IP, "grace_seconds", "3600", history["reporting"].key_prefix):
        assert text in html


def test_staff_need_the_view_permission_to_see_events(client, staff, history):
    event = the_event(history["reporting"], "rotated")
    client.force_login(staff)
    for url in (EVENT_CHANGELIST, event_url(event)):
        assert client.get(url).status_code == 403

    staff.user_permissions.add(Permission.objects.get(codename="view_keyevent"))
    staff = User.objects.get(pk=staff.pk)
    client.force_login(staff)
    assert len(listed(client.get(EVENT_CHANGELIST))) == 5
    assert client.get(event_url(event)).status_code == 200
    assert client.post(event_url(event), {"action": "revoked"}).status_code == 403
    assert client.get(EVENT_ADD).status_code == 403


def test_the_event_list_queries_stay_bounded(admin_client, django_assert_max_num_queries):
    for n in range(6):
        owner = User.objects.for_firebase(f"uid-{n}", f"user{n}@example.com")
        api_key = lifecycle.issue_key(owner=owner, name=f"Key {n}", actor=audit.Actor.command("createapikey")).api_key
        lifecycle.rotate_key(api_key, grace_seconds=60)
        lifecycle.set_expiry(api_key, in_days(n + 1))
        lifecycle.revoke_key(api_key)

    with django_assert_max_num_queries(6):
        response = admin_client.get(EVENT_CHANGELIST)
    assert len(listed(response)) == 24
    with django_assert_max_num_queries(6):
        assert len(listed(admin_client.get(EVENT_CHANGELIST, {"q": "user3", "action": "rotated"}))) == 1


def test_the_key_page_lists_its_latest_events_and_links_to_all_of_them(
    admin_client, alice, bob, django_assert_max_num_queries
):
    api_key = issue(alice, "Busy").api_key
    for day in range(1, 25):
        lifecycle.set_expiry(api_key, in_days(day))
    other = issue(bob, "Quiet").api_key
    newest_first = list(KeyEvent.objects.filter(api_key=api_key))
    assert len(newest_first) == 25

    # The page and its events, however many, took at most 8; the key's usage added three reads (its hours, its
    # last use, its addresses: tests/admin/test_key_usage.py), the bound two.
    with django_assert_max_num_queries(10):
        response = admin_client.get(key_url(api_key))

    assert [event.pk for event in response.context["key_events"]] == [event.pk for event in newest_first[:20]]
    html = response.content.decode()
    assert "Events (the latest 20)" in html
    assert html.count("expiry changed") == 20 and "created" not in html.split('id="key-events"')[1]
    link = events_of(api_key).replace("&", "&amp;")
    assert f'<a href="{link}">All events of this key</a>' in html
    assert listed(admin_client.get(events_of(api_key))) == {event.pk for event in newest_first}
    assert listed(admin_client.get(events_of(other))) == {the_event(other, "created").pk}

    quiet = admin_client.get(key_url(other)).content.decode()
    assert "Events</h2>" in quiet and "Python code" in quiet


def test_staff_who_cannot_see_the_event_log_do_not_see_a_keys_events(client, staff, alice):
    """Events carry the owner's addresses and user agents: they need the event log's view permission."""
    api_key = issue(alice, "Viewed").api_key
    staff.user_permissions.add(Permission.objects.get(codename="view_apikey"))
    client.force_login(staff)

    response = client.get(key_url(api_key))

    assert response.status_code == 200
    assert response.context["key_events"] == []
    page = response.content.decode()
    assert 'id="key-events"' not in page and "All events of this key" not in page
