"""Helpers for the staff door's tests: admin URLs, the forms as a browser sends them, and what pages show."""

import re

from django.contrib.admin.utils import display_for_value
from django.urls import reverse
from django.utils import timezone

from apikeys.models import KeyEvent

from ..helpers import scopes as scopes  # the admin tests import it from here with the pages' helpers

KEY_CHANGELIST = reverse("admin:apikeys_apikey_changelist")
KEY_ADD = reverse("admin:apikeys_apikey_add")
SCOPE_CHANGELIST = reverse("admin:apikeys_scope_changelist")
USER_CHANGELIST = reverse("admin:apikeys_user_changelist")
EVENT_CHANGELIST = reverse("admin:apikeys_keyevent_changelist")
EVENT_ADD = reverse("admin:apikeys_keyevent_add")
PLAINTEXT_RE = re.compile(r"omi_dev_(?:[0-9A-Za-z]{36}|[0-9a-f]{32})")
# Where the staff member's requests come from, so events can be checked for them.
STAFF_IP = "203.0.113.9"
STAFF_AGENT = "StaffBrowser/1.0 (omikeys tests)"
FROM_STAFF = {"REMOTE_ADDR": STAFF_IP, "HTTP_USER_AGENT": STAFF_AGENT}
GRACE_CHOICES = {"0", "3600", "86400", "604800"}


def key_url(api_key, view="change"):
    return reverse(f"admin:apikeys_apikey_{view}", args=[api_key.pk])


def pause_url(api_key, view):
    """The key's disable or enable page (``view``: "disable" or "enable")."""
    return reverse(f"admin:apikeys_apikey_{view}", args=[api_key.pk])


def scope_url(scope, view="change"):
    return reverse(f"admin:apikeys_scope_{view}", args=[scope.pk])


def user_url(user, view="change"):
    return reverse(f"admin:apikeys_user_{view}", args=[user.pk])


def rotate_url(api_key):
    return reverse("admin:apikeys_apikey_rotate", args=[api_key.pk])


def event_url(event, view="change"):
    return reverse(f"admin:apikeys_keyevent_{view}", args=[event.pk])


def events_of(api_key):
    return f"{EVENT_CHANGELIST}?api_key__id__exact={api_key.pk}"


def expiry_fields(moment):
    """The add and change forms' date and time inputs for ``moment`` (None: both empty)."""
    if moment is None:
        return {"expires_at_0": "", "expires_at_1": ""}
    local = timezone.localtime(moment)
    return {"expires_at_0": local.strftime("%Y-%m-%d"), "expires_at_1": local.strftime("%H:%M:%S")}


def shown(value):
    """How the admin displays a value in a list or a read-only field."""
    return str(display_for_value(value, ""))


def the_event(api_key, action):
    (event,) = KeyEvent.objects.filter(api_key=api_key, action=action)
    return event


def assert_made_by_staff(event, user):
    assert (event.actor_kind, event.via, event.actor) == ("staff", "admin", user)
    assert event.actor_label == user.label
    assert (event.ip_address, event.user_agent) == (STAFF_IP, STAFF_AGENT)


def change_data(api_key, **changes):
    """The change form as the page would send it back, with ``changes`` applied."""
    data = {"name": api_key.name, "scopes": [scope.pk for scope in api_key.scopes.all()]}
    data.update(expiry_fields(api_key.expires_at))
    data.update(changes)
    return data


def rotate_data(api_key, grace="0"):
    return {"grace_seconds": grace, "expected_prefix": api_key.key_prefix}


def listed(response):
    """The keys (or scopes, users) on a changelist page, by primary key."""
    assert response.status_code == 200
    return {obj.pk for obj in response.context["cl"].result_list}


def row_of(html, text):
    """The changelist table row that contains ``text``."""
    rows = [row for row in re.findall(r"<tr.*?</tr>", html, re.DOTALL) if text in row]
    assert len(rows) == 1, f"expected one row with {text!r}, found {len(rows)}"
    return rows[0]


def action_names(response):
    return {name for name, _ in response.context["action_form"].fields["action"].choices if name}


def messages_of(response):
    return [str(message) for message in response.context["messages"]]


def login_url(path):
    return f"{reverse('admin:login')}?next={path}"
