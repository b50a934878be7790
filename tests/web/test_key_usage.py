"""The usage section of a key's page: a chart drawn on the server, its numbers as a table, last use and addresses."""

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from apikeys import lifecycle
from apikeys.lifecycle.usage import hour_of
from apikeys.models import KeyAddress, KeyLastUse, KeyUsageHour

pytestmark = pytest.mark.django_db


def test_the_key_page_shows_the_chart_table_last_use_and_addresses(person):
    key = lifecycle.issue_key(owner=person.user, name="Reporting").api_key
    now = hour_of(timezone.now())
    KeyUsageHour.objects.create(api_key=key, hour=now, accepted=8, revoked=2)
    KeyUsageHour.objects.create(api_key=key, hour=now - datetime.timedelta(days=3), accepted=4)
    KeyLastUse.objects.create(api_key=key, at=now, outcome="revoked", address="203.0.113.9", user_agent="<b>agent</b>")
    KeyAddress.objects.create(api_key=key, address="203.0.113.9", first_seen=now, last_seen=now, requests=10)
    response = person.get(reverse("web:key-detail", args=[key.pk]))
    page = response.content.decode()
    assert "14 requests: 12 accepted, 2 refused" in page
    svg = re.search(r"<svg .*?</svg>", page, re.S).group(0)
    assert 'role="img"' in svg and "<title" in svg and "style=" not in svg  # no inline style: the CSP allows none
    # The busiest day fills the chart's height (100): 8 accepted and 2 refused; 3 days ago 4 of 10.
    assert 'height="80.00"' in svg and 'height="20.00"' in svg and 'height="40.00"' in svg
    assert svg.count('class="usage-bar-accepted"') == 2
    table = page.split('class="keys usage-days"')[1].split("</table>")[0]
    rows = re.findall(r"<tr><th scope=\"row\">.*?</tr>", table, re.S)
    assert len(rows) == 2
    assert "<code>203.0.113.9</code>" in page
    assert "&lt;b&gt;agent&lt;/b&gt;" in page and "<b>agent</b>" not in page
    assert "<script" not in page.split('id="usage-title"')[1].split("</section>")[0]


def test_a_key_never_used_says_so(person):
    key = lifecycle.issue_key(owner=person.user, name="Idle").api_key
    page = person.get(reverse("web:key-detail", args=[key.pk])).content.decode()
    assert "No requests with this key in the last 30 days." in page
    assert "Never used." in page
    assert "<svg" not in page.split('id="usage-title"')[1].split("</section>")[0]


def test_a_key_used_before_its_use_was_written_shows_its_stamp_not_never_used(person):
    key = lifecycle.issue_key(owner=person.user, name="Busy").api_key
    stamped = timezone.now() - datetime.timedelta(minutes=5)
    type(key).objects.filter(pk=key.pk).update(last_used_at=stamped)  # stamped, no usage written yet

    page = person.get(reverse("web:key-detail", args=[key.pk])).content.decode()

    section = page.split('id="usage-title"')[1].split("</section>")[0]
    assert "Never used." not in section
    assert "Its address and client are not recorded yet" in section
    assert f'title="{stamped:%Y-%m-%d %H:%M:%S} UTC"' in section  # the stamp itself


@pytest.mark.parametrize(
    ("outcome", "label"),
    [
        ("accepted", "Accepted"),
        ("insufficient_scope", "Refused: missing scope"),
        ("expired", "Refused: expired"),
        ("disabled", "Refused: disabled"),
        ("revoked", "Refused: revoked"),
        ("owner_inactive", "Refused: owner inactive"),
    ],
)
def test_the_last_uses_outcome_is_shown_in_words(person, outcome, label):
    key = lifecycle.issue_key(owner=person.user, name="Labelled").api_key
    KeyLastUse.objects.create(api_key=key, at=timezone.now(), outcome=outcome)
    page = person.get(reverse("web:key-detail", args=[key.pk])).content.decode()
    last = page.split("<dt>Outcome</dt>")[1].split("</dd>")[0]
    assert last == f"<dd>{label}"


def test_the_page_says_how_recent_counts_may_be_missing(person, settings):
    settings.OMIKEYS_LAST_USED_INTERVAL = 60
    key = lifecycle.issue_key(owner=person.user, name="Delayed").api_key
    KeyUsageHour.objects.create(api_key=key, hour=hour_of(timezone.now()), accepted=1)
    page = person.get(reverse("web:key-detail", args=[key.pk])).content.decode()
    assert "requests of the last 70 seconds or so may not be counted yet" in page
