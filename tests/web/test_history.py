"""The key's history on its detail page: what happened, who did it and from where."""

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from apikeys import lifecycle
from apikeys.audit import Actor
from apikeys.models import ApiKey, KeyEvent
from apikeys.web import history

from .pages import post_new_key, post_rotate

pytestmark = pytest.mark.django_db


BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"


def history_rows(page: str) -> list[str]:
    table = re.search(r'<table class="keys events">(.*?)</table>', page, re.S).group(1)
    rows = re.findall(r"<tr class=\"event-[a-z_]+\">(.*?)</tr>", table, re.S)
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip() for row in rows]


def test_the_history_says_what_happened_who_did_it_and_from_where(person):
    where = {"REMOTE_ADDR": "203.0.113.7", "HTTP_USER_AGENT": BROWSER}
    post_new_key(person, name="Audited", expires_in="90", **where)
    api_key = ApiKey.objects.get(owner=person.user)
    post_rotate(person, api_key.pk, grace_seconds=86400, **{**where, "REMOTE_ADDR": "2001:db8::1"})
    staff = Actor(
        kind=KeyEvent.ActorKind.STAFF,
        via=KeyEvent.Via.ADMIN,
        label="ops@omi.example",
        ip_address="10.1.2.3",
        user_agent="StaffBrowser/1.0",
    )
    lifecycle.set_expiry(api_key, timezone.now() + datetime.timedelta(days=10), actor=Actor.command("setexpiry"))
    lifecycle.revoke_key(api_key, actor=staff)

    page = person.get(reverse("web:key-detail", args=[api_key.pk])).content.decode()
    rows = history_rows(page)
    assert len(rows) == 4
    revoked, expiry, rotated, created = rows  # newest first
    assert "Revoked" in revoked and "Omi staff" in revoked and "admin" in revoked
    assert "Expiry changed to" in expiry and "Omi staff, command setexpiry" in expiry and "command line" in expiry
    assert "Rotated; old secret accepted until" in rotated and "you" in rotated and "web pages" in rotated
    assert "2001:db8::1" in rotated and "Chrome 131 on Linux" in rotated
    assert "Created, expires" in created and "you" in created and "203.0.113.7" in created
    # The full user agent is there on hover; staff members' own addresses, emails and OS accounts are not shown.
    assert f'title="{BROWSER}"' in page
    assert "10.1.2.3" not in page and "StaffBrowser" not in page and "ops@omi.example" not in page
    assert "run by" not in page


def test_every_web_change_records_the_person_their_address_and_browser(person):
    where = {"REMOTE_ADDR": "198.51.100.4", "HTTP_USER_AGENT": BROWSER}
    post_new_key(person, **where)
    api_key = ApiKey.objects.get(owner=person.user)
    post_rotate(person, api_key.pk, **where)
    person.post(reverse("web:key-revoke", args=[api_key.pk]), **where)
    events = list(api_key.events.order_by("at", "id"))
    assert [e.action for e in events] == ["created", "rotated", "revoked"]
    for event in events:
        assert (event.actor_id, event.actor_kind, event.via) == (person.user.pk, "user", "web")
        assert (event.ip_address, event.user_agent, event.actor_label) == ("198.51.100.4", BROWSER, person.user.email)


def test_the_detail_page_costs_the_same_queries_however_long_the_history(person, django_assert_max_num_queries):
    issued = lifecycle.issue_key(owner=person.user, name="Busy")
    for i in range(history.HISTORY_LENGTH + 5):
        lifecycle.rotate_key(issued.api_key, grace_seconds=60 * (i % 2), actor=Actor.command("rotatekeys"))
    url = reverse("web:key-detail", args=[issued.api_key.pk])
    person.get(url)  # the periodic account check writes the session once
    # 5 for the page and its history, however long; the key's usage section adds its three reads (hours,
    # last use, addresses: tests/web/test_key_usage.py), however much the key was used.
    with django_assert_max_num_queries(8):
        page = person.get(url).content.decode()
    rows = history_rows(page)
    assert len(rows) == history.HISTORY_LENGTH
    assert all("Rotated" in row for row in rows)  # the newest; the creation is among the older ones left out
    assert f"Showing the latest {history.HISTORY_LENGTH} changes." in page


@pytest.mark.parametrize(
    "agent, short",
    [
        (BROWSER, "Chrome 131 on Linux"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox 133 on Windows"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/17.5 Mobile/15E148 Safari/604.1",
            "Safari 17 on iPhone",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
            "Safari/537.36 Edg/131.0.2903.86",
            "Edge 131 on Windows",
        ),
        ("curl/8.5.0", "curl 8"),
        ("python-requests/2.32.3", "Python requests 2"),
        (
            "MyCustomIntegration/1.0 (+https://example.com/some/very/long/path)",
            "MyCustomIntegration/1.0 (+https://examp…",
        ),
        ("", ""),
    ],
)
def test_user_agents_are_shortened_for_the_history(agent, short):
    assert history.short_user_agent(agent) == short


def test_changes_made_by_omi_itself_are_attributed_to_omi(person):
    issued = lifecycle.issue_key(owner=person.user, name="From a script")  # no request behind it
    KeyEvent.objects.create(  # as migration 0005 backfilled keys issued before the audit log
        api_key=issued.api_key,
        action="created",
        at=issued.api_key.created_at - datetime.timedelta(days=1),
        actor_kind="system",
        actor_label="recorded before the audit log existed",
        via="code",
    )
    rows = history_rows(person.get(reverse("web:key-detail", args=[issued.api_key.pk])).content.decode())
    assert len(rows) == 2
    assert " Omi Python code " in f" {rows[0]} " and "Omi (Python code)" not in rows[0]
    assert "Omi (recorded before the audit log existed)" in rows[1]
