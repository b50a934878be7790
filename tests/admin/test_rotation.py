"""The admin's rotate page: confirmation, grace periods, the new secret shown once, refusals."""

import datetime
import io
import re

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apikeys import lifecycle
from apikeys.models import ApiKey, KeyEvent, User

from ..helpers import expire, issue
from .pages import (
    EVENT_CHANGELIST,
    FROM_STAFF,
    GRACE_CHOICES,
    KEY_CHANGELIST,
    PLAINTEXT_RE,
    assert_made_by_staff,
    key_url,
    login_url,
    messages_of,
    rotate_data,
    rotate_url,
    shown,
    the_event,
)

pytestmark = pytest.mark.django_db


def test_the_key_page_shows_when_it_was_rotated_and_until_when_the_old_secret_works(admin_client, alice):
    api_key = issue(alice, "Rotating").api_key
    page = admin_client.get(key_url(api_key)).content.decode()
    assert re.search(r"Last rotated:</label>\s*<div class=\"readonly\">never</div>", page)
    assert "Replaced secret works until:" not in page

    lifecycle.rotate_key(api_key, grace_seconds=3600)
    api_key.refresh_from_db()
    page = admin_client.get(key_url(api_key)).content.decode()
    assert shown(api_key.rotated_at) in page
    assert "Replaced secret works until:" in page
    assert shown(api_key.previous_key_expires_at) in page

    lifecycle.rotate_key(api_key)  # no grace: the older secret stops now
    page = admin_client.get(key_url(api_key)).content.decode()
    assert "Replaced secret works until:" not in page


def test_only_an_active_keys_page_offers_rotation_to_staff_who_may_change_it(admin_client, client, staff, alice):
    active = issue(alice, "Active").api_key
    expired = issue(alice, "Expired").api_key
    expire(expired)
    revoked = issue(alice, "Revoked").api_key
    lifecycle.revoke_key(revoked)

    page = admin_client.get(key_url(active)).content.decode()
    assert f'<a href="{rotate_url(active)}" id="rotate-key-link">Rotate key…</a>' in page
    for api_key in (expired, revoked):
        assert "Rotate key" not in admin_client.get(key_url(api_key)).content.decode()
    staff.user_permissions.add(Permission.objects.get(codename="view_apikey"))
    client.force_login(staff)
    assert "Rotate key" not in client.get(key_url(active)).content.decode()


def test_the_rotate_page_asks_for_confirmation_and_changes_nothing(admin_client, alice):
    issued = issue(alice, "Reporting")
    api_key = issued.api_key

    response = admin_client.get(rotate_url(api_key))

    assert response.status_code == 200
    assert [template.name for template in response.templates][0] == "admin/apikeys/apikey/rotate.html"
    html = response.content.decode()
    assert set(re.findall(r'name="grace_seconds" value="(\d+)"', html)) == GRACE_CHOICES
    assert re.search(r'name="grace_seconds" value="0"[^>]*checked', html)
    assert f'name="expected_prefix" value="{api_key.key_prefix}"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert not PLAINTEXT_RE.search(html)
    after = ApiKey.objects.get(pk=api_key.pk)
    assert (after.key_prefix, after.key_hash, after.rotated_at) == (api_key.key_prefix, api_key.key_hash, None)
    assert lifecycle.verify_key(issued.plaintext).api_key == api_key


def test_rotating_shows_the_new_secret_once_and_the_old_one_stops_at_once(admin_client, admin_user, alice):
    issued = issue(alice, "Reporting", ["memories:read"])
    api_key = issued.api_key

    response = admin_client.post(rotate_url(api_key), rotate_data(api_key), **FROM_STAFF)

    assert response.status_code == 200
    assert [template.name for template in response.templates][0] == "admin/apikeys/apikey/issued.html"
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    (plaintext,) = PLAINTEXT_RE.findall(html)
    assert lifecycle.verify_key(plaintext).api_key == api_key
    assert lifecycle.verify_key(issued.plaintext).api_key is None
    assert "has a new secret" in html and "The replaced secret has stopped working." in html
    after = ApiKey.objects.get(pk=api_key.pk)
    assert after.key_prefix in html and after.key_prefix != api_key.key_prefix
    assert (after.name, list(after.scopes.values_list("code", flat=True))) == ("Reporting", ["memories:read"])
    event = the_event(api_key, "rotated")
    assert_made_by_staff(event, admin_user)
    assert event.details == {
        "grace_seconds": 0,
        "previous_key_expires_at": None,
        "previous_key_prefix": api_key.key_prefix,
    }
    log = LogEntry.objects.get()
    assert (log.action_flag, log.object_id) == (CHANGE, str(api_key.pk))
    assert log.get_change_message() == "Rotated the key; the replaced secret stopped working at once."


def test_rotating_with_a_grace_period_keeps_the_old_secret_working_until_it_ends(admin_client, alice):
    issued = issue(alice, "Reporting")
    api_key = issued.api_key
    before = timezone.now()

    response = admin_client.post(rotate_url(api_key), rotate_data(api_key, grace="86400"))

    (plaintext,) = PLAINTEXT_RE.findall(response.content.decode())
    after = ApiKey.objects.get(pk=api_key.pk)
    day = datetime.timedelta(days=1)
    assert before + day <= after.previous_key_expires_at <= timezone.now() + day
    until = timezone.localtime(after.previous_key_expires_at).strftime("%Y-%m-%d %H:%M:%S")
    assert f"The replaced secret keeps working until {until} UTC" in response.content.decode()
    assert lifecycle.verify_key(plaintext).api_key == api_key
    assert lifecycle.verify_key(issued.plaintext).api_key == api_key  # both work during the grace period
    assert the_event(api_key, "rotated").details["grace_seconds"] == 86400
    assert LogEntry.objects.get().get_change_message().endswith("stops working in 24 hours.")
    ApiKey.objects.filter(pk=api_key.pk).update(previous_key_expires_at=timezone.now())  # the day has passed
    assert lifecycle.verify_key(issued.plaintext).api_key is None
    assert lifecycle.verify_key(plaintext).api_key == api_key


def test_sending_the_rotate_form_twice_rotates_once(admin_client, alice):
    api_key = issue(alice, "Double click").api_key
    data = rotate_data(api_key)

    first = admin_client.post(rotate_url(api_key), data)
    (plaintext,) = PLAINTEXT_RE.findall(first.content.decode())
    again = admin_client.post(rotate_url(api_key), data)

    assert again.status_code == 302 and again["Location"] == key_url(api_key)
    followed = admin_client.get(again["Location"])
    assert messages_of(followed) == [
        "This key was already rotated; its new secret was shown once and cannot be shown again."
    ]
    assert plaintext not in followed.content.decode()
    assert KeyEvent.objects.filter(api_key=api_key, action="rotated").count() == 1
    assert lifecycle.verify_key(plaintext).api_key == api_key
    assert LogEntry.objects.count() == 1


def test_a_rotated_secret_is_stored_nowhere_and_never_shown_again(admin_client, alice):
    api_key = issue(alice, "Once").api_key
    response = admin_client.post(rotate_url(api_key), rotate_data(api_key, grace="3600"))
    (plaintext,) = PLAINTEXT_RE.findall(response.content.decode())

    for morsel in response.cookies.values():
        assert plaintext not in morsel.value
    assert plaintext not in response.get("Location", "")
    for session in Session.objects.all():
        assert plaintext not in session.session_data
        assert plaintext not in repr(session.get_decoded())
    database = io.StringIO()
    call_command("dumpdata", stdout=database)
    assert plaintext not in database.getvalue()
    for page in (KEY_CHANGELIST, key_url(api_key), key_url(api_key, "history"), rotate_url(api_key), EVENT_CHANGELIST):
        later = admin_client.get(page)
        assert later.status_code == 200
        assert plaintext not in later.content.decode()
        assert not messages_of(later)


@pytest.mark.parametrize("state", ["revoked", "expired"])
def test_revoked_and_expired_keys_cannot_be_rotated(admin_client, alice, state):
    issued = issue(alice, "Finished")
    api_key = issued.api_key
    data = rotate_data(api_key)
    if state == "revoked":
        lifecycle.revoke_key(api_key)
    else:
        expire(api_key)

    page = admin_client.get(rotate_url(api_key), follow=True)
    assert page.redirect_chain == [(key_url(api_key), 302)]
    assert messages_of(page) == [f"This key is {state}; only an active key can be rotated."]
    sent = admin_client.post(rotate_url(api_key), data, follow=True)
    assert sent.redirect_chain == [(key_url(api_key), 302)]
    assert messages_of(sent) == [
        f"This key has {'been revoked' if state == 'revoked' else 'expired'}; "
        f"{'a revoked' if state == 'revoked' else 'an expired'} key cannot be rotated."
    ]
    assert not PLAINTEXT_RE.search(sent.content.decode())
    after = ApiKey.objects.get(pk=api_key.pk)
    assert (after.key_hash, after.rotated_at) == (api_key.key_hash, None)
    assert not KeyEvent.objects.filter(action="rotated").exists()


def test_an_unknown_grace_choice_is_refused_on_the_form(admin_client, alice):
    issued = issue(alice)
    for grace in ("999", str(8 * 24 * 3600), "-1", "soon"):
        response = admin_client.post(rotate_url(issued.api_key), rotate_data(issued.api_key, grace=grace))
        assert response.status_code == 200
        assert response.context["form"].errors["grace_seconds"]
    response = admin_client.post(rotate_url(issued.api_key), {"grace_seconds": "0"})  # no expected prefix
    assert response.context["form"].errors["expected_prefix"]
    assert lifecycle.verify_key(issued.plaintext).api_key == issued.api_key
    assert not KeyEvent.objects.filter(action="rotated").exists()


def test_rotating_an_unknown_key_is_404(admin_client):
    missing = reverse("admin:apikeys_apikey_rotate", args=["3f2c9a1e-8d4b-4c6e-9a0b-1d2e3f4a5b6c"])
    assert admin_client.get(missing).status_code == 404
    assert admin_client.post(missing, {"grace_seconds": "0", "expected_prefix": "x"}).status_code == 404
    assert admin_client.get(reverse("admin:apikeys_apikey_rotate", args=["not-a-uuid"])).status_code == 404


def test_rotating_needs_the_change_permission(client, staff, alice):
    issued = issue(alice)
    url = rotate_url(issued.api_key)
    assert client.get(url)["Location"] == login_url(url)  # anonymous

    staff.user_permissions.add(Permission.objects.get(codename="view_apikey"))
    client.force_login(staff)
    assert client.get(url).status_code == 403
    assert client.post(url, rotate_data(issued.api_key)).status_code == 403
    assert lifecycle.verify_key(issued.plaintext).api_key == issued.api_key

    staff.user_permissions.add(Permission.objects.get(codename="change_apikey"))
    staff = User.objects.get(pk=staff.pk)  # a fresh permission cache
    client.force_login(staff)
    response = client.post(url, rotate_data(issued.api_key))
    assert response.status_code == 200
    assert lifecycle.verify_key(issued.plaintext).api_key is None


def test_the_rotate_form_is_refused_without_its_csrf_token(admin_user, alice):
    issued = issue(alice)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    url = rotate_url(issued.api_key)

    forged = browser.post(url, rotate_data(issued.api_key))

    assert forged.status_code == 403
    assert lifecycle.verify_key(issued.plaintext).api_key == issued.api_key
    page = browser.get(url).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    genuine = browser.post(url, {**rotate_data(issued.api_key), "csrfmiddlewaretoken": token})
    assert genuine.status_code == 200
    assert lifecycle.verify_key(issued.plaintext).api_key is None
