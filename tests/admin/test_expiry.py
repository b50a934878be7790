"""Expiry on the admin's add and change forms, always set through the core."""

import datetime
import re

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.utils import timezone

from apikeys import lifecycle
from apikeys.models import ApiKey, KeyEvent

from ..helpers import expire, in_days, issue
from .pages import (
    FROM_STAFF,
    KEY_ADD,
    PLAINTEXT_RE,
    assert_made_by_staff,
    change_data,
    expiry_fields,
    key_url,
    messages_of,
    shown,
    the_event,
)

pytestmark = pytest.mark.django_db


def test_adding_a_key_with_an_expiry_records_the_staff_member(admin_client, admin_user, alice):
    moment = in_days(10)

    data = {"owner": alice.pk, "name": "Temporary", **expiry_fields(moment)}

    response = admin_client.post(KEY_ADD, data, **FROM_STAFF)

    assert response.status_code == 200
    (plaintext,) = PLAINTEXT_RE.findall(response.content.decode())
    api_key = lifecycle.verify_key(plaintext).api_key
    assert api_key.expires_at == moment
    event = the_event(api_key, "created")
    assert_made_by_staff(event, admin_user)
    assert event.details["expires_at"] == moment.isoformat()


def test_adding_a_key_without_an_expiry_gives_one_that_never_expires(admin_client, alice):
    add_page = admin_client.get(KEY_ADD).content.decode()
    assert 'name="expires_at_0"' in add_page and 'name="expires_at_1"' in add_page
    assert "never expires. At most 365 days ahead" in add_page

    response = admin_client.post(KEY_ADD, {"owner": alice.pk, "name": "Forever", **expiry_fields(None)})

    assert response.status_code == 200
    assert ApiKey.objects.get().expires_at is None


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        (lambda: expiry_fields(timezone.now() - datetime.timedelta(hours=1)), "must be in the future"),
        (lambda: expiry_fields(in_days(366)), "at most 365 days from now"),
        (lambda: {"expires_at_0": "next tuesday", "expires_at_1": "noon"}, "Enter a valid date"),
        (lambda: {"expires_at_0": in_days(3).strftime("%Y-%m-%d"), "expires_at_1": ""}, "Enter a valid time"),
    ],
    ids=["past", "too-far", "not-a-date", "no-time"],
)
def test_adding_a_key_with_a_bad_expiry_shows_the_error_beside_it(admin_client, alice, fields, complaint):
    response = admin_client.post(KEY_ADD, {"owner": alice.pk, "name": "Bad expiry", **fields()})

    assert response.status_code == 200
    assert complaint in " ".join(response.context["adminform"].form.errors["expires_at"])
    assert not ApiKey.objects.exists()
    assert not KeyEvent.objects.exists()
    assert not LogEntry.objects.exists()


def test_the_longest_lifetime_follows_the_setting(admin_client, alice, settings):
    settings.OMIKEYS_MAX_KEY_LIFETIME_DAYS = 7

    refused = admin_client.post(KEY_ADD, {"owner": alice.pk, "name": "Too long", **expiry_fields(in_days(8))})
    assert "at most 7 days from now" in " ".join(refused.context["adminform"].form.errors["expires_at"])
    accepted = admin_client.post(KEY_ADD, {"owner": alice.pk, "name": "Fine", **expiry_fields(in_days(6))})
    assert accepted.status_code == 200
    assert ApiKey.objects.get().name == "Fine"


def test_changing_the_expiry_goes_through_the_core_and_records_the_staff_member(admin_client, admin_user, alice):
    issued = issue(alice, "Reporting", ["memories:read"])
    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    moment = in_days(20)

    response = admin_client.post(key_url(api_key), change_data(api_key, **expiry_fields(moment)), **FROM_STAFF)

    assert response.status_code == 302
    assert ApiKey.objects.get(pk=api_key.pk).expires_at == moment
    event = the_event(api_key, "expiry_changed")
    assert_made_by_staff(event, admin_user)
    assert event.details == {"expires_at": moment.isoformat(), "previous_expires_at": None}
    log = LogEntry.objects.get()
    assert log.action_flag == CHANGE and "Expires" in log.get_change_message()
    assert lifecycle.verify_key(issued.plaintext).api_key == api_key


def test_clearing_the_expiry_makes_the_key_never_expire(admin_client, admin_user, alice):
    moment = in_days(5)
    api_key = lifecycle.issue_key(owner=alice, name="Temporary", expires_at=moment).api_key

    response = admin_client.post(key_url(api_key), change_data(api_key, **expiry_fields(None)), **FROM_STAFF)

    assert response.status_code == 302
    assert ApiKey.objects.get(pk=api_key.pk).expires_at is None
    event = the_event(api_key, "expiry_changed")
    assert_made_by_staff(event, admin_user)
    assert event.details == {"expires_at": None, "previous_expires_at": moment.isoformat()}


def test_saving_a_key_without_touching_its_expiry_keeps_it_to_the_microsecond(admin_client, alice):
    moment = timezone.now() + datetime.timedelta(days=5, microseconds=123457)
    api_key = lifecycle.issue_key(owner=alice, name="Before", expires_at=moment).api_key
    html = admin_client.get(key_url(api_key)).content.decode()
    date = re.search(r'name="expires_at_0" value="([^"]+)"', html).group(1)
    time = re.search(r'name="expires_at_1" value="([^"]+)"', html).group(1)

    response = admin_client.post(
        key_url(api_key), change_data(api_key, name="After", expires_at_0=date, expires_at_1=time)
    )

    assert response.status_code == 302
    after = ApiKey.objects.get(pk=api_key.pk)
    assert (after.name, after.expires_at) == ("After", moment)
    assert not KeyEvent.objects.filter(action="expiry_changed").exists()
    assert "Expires" not in LogEntry.objects.get().get_change_message()


@pytest.mark.parametrize(
    ("moment", "complaint"),
    [
        (lambda: timezone.now() - datetime.timedelta(minutes=5), "must be in the future"),
        (lambda: in_days(400), "at most 365 days from now"),
    ],
    ids=["past", "too-far"],
)
def test_a_bad_expiry_on_the_change_form_is_refused_and_nothing_changes(admin_client, alice, moment, complaint):
    api_key = lifecycle.issue_key(owner=alice, name="Before", expires_at=in_days(3)).api_key
    before = ApiKey.objects.get(pk=api_key.pk).expires_at

    response = admin_client.post(key_url(api_key), change_data(api_key, name="After", **expiry_fields(moment())))

    assert response.status_code == 200
    assert complaint in " ".join(response.context["adminform"].form.errors["expires_at"])
    after = ApiKey.objects.get(pk=api_key.pk)
    assert (after.name, after.expires_at) == ("Before", before)
    assert not KeyEvent.objects.filter(action="expiry_changed").exists()


def test_an_expired_key_can_be_renamed_and_given_a_later_expiry(admin_client, admin_user, alice):
    issued = lifecycle.issue_key(owner=alice, name="Lapsed", expires_at=in_days(1))
    expire(issued.api_key)
    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert lifecycle.verify_key(issued.plaintext).api_key is None

    renamed = admin_client.post(key_url(api_key), change_data(api_key, name="Still lapsed"), follow=True)
    assert not messages_of(renamed)[0].startswith("Nothing was saved")
    after = ApiKey.objects.get(pk=api_key.pk)
    assert (after.name, after.expires_at) == ("Still lapsed", api_key.expires_at)  # a past expiry sent back as it was
    assert not KeyEvent.objects.filter(action="expiry_changed").exists()

    moment = in_days(30)
    extended = admin_client.post(key_url(api_key), change_data(api_key, **expiry_fields(moment)), **FROM_STAFF)

    assert extended.status_code == 302
    assert lifecycle.verify_key(issued.plaintext).api_key == api_key
    assert_made_by_staff(the_event(api_key, "expiry_changed"), admin_user)


def test_a_revoked_keys_expiry_is_shown_but_cannot_be_changed(admin_client, alice):
    moment = in_days(4)
    api_key = lifecycle.issue_key(owner=alice, name="Gone", expires_at=moment).api_key
    lifecycle.revoke_key(api_key)

    html = admin_client.get(key_url(api_key)).content.decode()

    assert 'name="expires_at_0"' not in html
    assert shown(moment) in html
    response = admin_client.post(key_url(api_key), change_data(api_key, **expiry_fields(in_days(9))))
    assert response.status_code == 403
    assert ApiKey.objects.get(pk=api_key.pk).expires_at == moment


def test_giving_an_expired_key_a_later_expiry_respects_the_active_key_limit(admin_client, alice, settings):
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 1
    lapsed = issue(alice, "Lapsed").api_key
    ApiKey.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - datetime.timedelta(days=1))
    issue(alice, "Current")
    lapsed = ApiKey.objects.get(pk=lapsed.pk)

    response = admin_client.post(key_url(lapsed), change_data(lapsed, **expiry_fields(in_days(10))), follow=True)

    assert "the most allowed" in response.content.decode()
    assert ApiKey.objects.get(pk=lapsed.pk).is_expired()
    assert not KeyEvent.objects.filter(api_key=lapsed, action="expiry_changed").exists()
