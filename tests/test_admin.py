"""The staff door: the Django admin for keys, scopes, users and the keys' audit events."""

import datetime
import io
import re

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.admin.utils import display_for_value
from django.contrib.auth.models import Permission
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apikeys import audit, lifecycle
from apikeys.admin import ScopeAdminForm
from apikeys.models import ApiKey, KeyEvent, Scope, User

pytestmark = pytest.mark.django_db

KEY_CHANGELIST = reverse("admin:apikeys_apikey_changelist")
KEY_ADD = reverse("admin:apikeys_apikey_add")
SCOPE_CHANGELIST = reverse("admin:apikeys_scope_changelist")
USER_CHANGELIST = reverse("admin:apikeys_user_changelist")
EVENT_CHANGELIST = reverse("admin:apikeys_keyevent_changelist")
EVENT_ADD = reverse("admin:apikeys_keyevent_add")
PLAINTEXT_RE = re.compile(r"omi_dev_[0-9a-f]{32}")
# Where the staff member's requests come from, so events can be checked for them.
STAFF_IP = "203.0.113.9"
STAFF_AGENT = "StaffBrowser/1.0 (omikeys tests)"
FROM_STAFF = {"REMOTE_ADDR": STAFF_IP, "HTTP_USER_AGENT": STAFF_AGENT}
GRACE_CHOICES = {"0", "3600", "86400", "604800"}


def key_url(api_key, view="change"):
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


def in_days(days):
    return (timezone.now() + datetime.timedelta(days=days)).replace(microsecond=0)


def expire(api_key):
    """Make a key's expiry pass, as time would."""
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - datetime.timedelta(minutes=1))


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


def scopes(*codes):
    return list(Scope.objects.filter(code__in=codes))


def issue(owner, name="Reporting", scope_codes=None):
    return lifecycle.issue_key(owner=owner, name=name, scopes=None if scope_codes is None else scopes(*scope_codes))


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


@pytest.fixture
def alice():
    return User.objects.for_firebase("uid-alice", "alice@example.com")


@pytest.fixture
def bob():
    return User.objects.for_firebase("uid-bob", "bob@example.com")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="staff", password="not-used", is_staff=True)


def test_changelist_lists_keys_with_owner_prefix_scopes_and_status(admin_client, alice, bob):
    active = issue(alice, "Reporting", ["memories:read", "goals:write"]).api_key
    revoked = issue(bob, "Backups", ["conversations:read"]).api_key
    lifecycle.revoke_api_key(revoked)

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
    lifecycle.revoke_api_key(revoked)
    expired_then_revoked = issue(alice, "Expired, then revoked").api_key
    expire(expired_then_revoked)
    lifecycle.revoke_api_key(expired_then_revoked)

    changelist = admin_client.get(KEY_CHANGELIST)
    status_filter = next(spec for spec in changelist.context["cl"].filter_specs if spec.title == "status")
    assert [label for _, label in status_filter.lookup_choices] == ["Active", "Expired", "Revoked"]
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
    assert lifecycle.verify_key(expired.plaintext) is None


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


def test_revoke_action_revokes_and_reports_counts(admin_client, alice, bob):
    first = issue(alice, "First")
    second = issue(bob, "Second")
    earlier = issue(alice, "Earlier")
    lifecycle.revoke_api_key(earlier.api_key)
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
        assert lifecycle.verify_key(issued.plaintext) is None
    assert ApiKey.objects.active().count() == 0
    assert ApiKey.objects.get(pk=earlier.api_key.pk).revoked_at == first_revocation


def test_revoke_action_on_one_key_leaves_the_others_active(admin_client, alice):
    target = issue(alice, "Target")
    bystander = issue(alice, "Bystander")

    response = admin_client.post(
        KEY_CHANGELIST, {"action": "revoke_selected", "_selected_action": [str(target.api_key.pk)]}, follow=True
    )

    assert messages_of(response) == ["Revoked 1 key."]
    assert lifecycle.verify_key(target.plaintext) is None
    assert lifecycle.verify_key(bystander.plaintext) == bystander.api_key


def test_keys_cannot_be_deleted_from_anywhere_in_the_admin(admin_client, alice):
    api_key = issue(alice).api_key

    assert admin_client.get(key_url(api_key, "delete")).status_code == 403
    assert admin_client.post(key_url(api_key, "delete"), {"post": "yes"}).status_code == 403
    changelist = admin_client.get(KEY_CHANGELIST)
    assert action_names(changelist) == {"revoke_selected"}
    bulk_delete = admin_client.post(
        KEY_CHANGELIST, {"action": "delete_selected", "_selected_action": [str(api_key.pk)], "post": "yes"}, follow=True
    )
    assert messages_of(bulk_delete) == ["No action selected."]
    change_page = admin_client.get(key_url(api_key)).content.decode()
    assert key_url(api_key, "delete") not in change_page
    assert 'class="deletelink"' not in change_page
    assert ApiKey.objects.filter(pk=api_key.pk).exists()


def test_adding_a_key_issues_it_through_the_core_and_shows_it_once(admin_client, alice, monkeypatch):
    calls = []
    real_issue_key = lifecycle.issue_key

    def spy(**kwargs):
        calls.append(kwargs)
        return real_issue_key(**kwargs)

    monkeypatch.setattr(lifecycle, "issue_key", spy)
    chosen = scopes("memories:read", "memories:write")

    response = admin_client.post(
        KEY_ADD, {"owner": alice.pk, "name": "  Nightly export ", "scopes": [scope.pk for scope in chosen]}
    )

    assert response.status_code == 200
    assert [template.name for template in response.templates][0] == "admin/apikeys/apikey/issued.html"
    assert len(calls) == 1
    assert calls[0]["owner"] == alice
    assert sorted(scope.code for scope in calls[0]["scopes"]) == ["memories:read", "memories:write"]
    html = response.content.decode()
    shown = PLAINTEXT_RE.findall(html)
    assert len(shown) == 1
    api_key = lifecycle.verify_key(shown[0])
    assert api_key is not None
    assert ApiKey.objects.get() == api_key
    assert (api_key.owner, api_key.name) == (alice, "Nightly export")
    assert sorted(api_key.scopes.values_list("code", flat=True)) == ["memories:read", "memories:write"]
    assert "will not be shown again" in html
    for link in (key_url(api_key), KEY_ADD, KEY_CHANGELIST):
        assert f'href="{link}"' in html
    assert "no-store" in response["Cache-Control"]
    assert LogEntry.objects.get().action_flag == ADDITION


def test_an_issued_key_is_stored_nowhere_and_never_shown_again(admin_client, alice):
    response = admin_client.post(KEY_ADD, {"owner": alice.pk, "name": "Once"})
    (plaintext,) = PLAINTEXT_RE.findall(response.content.decode())
    api_key = ApiKey.objects.get()

    for morsel in response.cookies.values():
        assert plaintext not in morsel.value
    assert response.cookies.get("messages") is None or response.cookies["messages"].value == ""
    assert Session.objects.exists()
    for session in Session.objects.all():
        assert plaintext not in session.session_data
        assert plaintext not in repr(session.get_decoded())
    database = io.StringIO()
    call_command("dumpdata", stdout=database)
    assert api_key.key_hash in database.getvalue()  # the dump does hold the keys table
    assert plaintext not in database.getvalue()
    for page in (KEY_CHANGELIST, key_url(api_key), key_url(api_key, "history"), KEY_ADD, reverse("admin:index")):
        later = admin_client.get(page)
        assert later.status_code == 200
        assert plaintext not in later.content.decode()
        assert not messages_of(later)


def test_adding_a_key_without_scopes_gives_the_read_only_default(admin_client, alice):
    add_page = admin_client.get(KEY_ADD).content.decode()
    assert "read-only default: action_items:read, conversations:read, goals:read, memories:read" in add_page
    assert 'name="_addanother"' not in add_page  # the issued page links there instead

    response = admin_client.post(KEY_ADD, {"owner": alice.pk, "name": "Defaults"})

    assert response.status_code == 200
    defaults = sorted(Scope.objects.filter(is_default=True).values_list("code", flat=True))
    assert sorted(ApiKey.objects.get().scopes.values_list("code", flat=True)) == defaults


def test_sending_the_add_form_twice_issues_one_key(admin_client, alice):
    add_page = admin_client.get(KEY_ADD).content.decode()
    token = re.search(r'name="form_token" value="([^"]+)"', add_page).group(1)
    data = {"owner": alice.pk, "name": "Double click", "form_token": token}
    first = admin_client.post(KEY_ADD, data)
    (plaintext,) = PLAINTEXT_RE.findall(first.content.decode())
    again = admin_client.post(KEY_ADD, data)
    api_key = ApiKey.objects.get()
    assert again.status_code == 302 and again["Location"] == key_url(api_key)
    followed = admin_client.get(again["Location"]).content.decode()
    assert "already issued" in followed and plaintext not in followed


def test_keys_are_issued_only_to_active_firebase_users(admin_client, alice, admin_user):
    inactive = User.objects.for_firebase("uid-gone", "gone@example.com")
    User.objects.filter(pk=inactive.pk).update(is_active=False)
    for owner in (admin_user, inactive):
        response = admin_client.post(KEY_ADD, {"owner": owner.pk, "name": "Not for them"})
        assert response.context["adminform"].form.errors["owner"]
    assert not ApiKey.objects.exists()
    assert admin_client.post(KEY_ADD, {"owner": alice.pk, "name": "Fine"}).status_code == 200


def test_with_no_default_scopes_a_scope_must_be_chosen(admin_client, alice):
    Scope.objects.update(is_default=False)
    response = admin_client.post(KEY_ADD, {"owner": alice.pk, "name": "Nothing to default to"})
    assert "choose at least one scope" in str(response.context["adminform"].form.errors["scopes"])
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize(
    "name",
    ["   ", "x" * 101, "paste omi_dev_" + "ab" * 16 + " here", "bell\x07"],
    ids=["blank", "too-long", "secret-in-name", "control-character"],
)
def test_adding_a_key_with_a_bad_name_shows_the_error_and_creates_nothing(admin_client, alice, name):
    response = admin_client.post(KEY_ADD, {"owner": alice.pk, "name": name})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["name"]
    assert 'class="errornote"' in response.content.decode()
    assert not ApiKey.objects.exists()
    assert not LogEntry.objects.exists()


def test_a_refusal_from_issue_key_is_shown_on_the_form_and_rolled_back(admin_client, alice, monkeypatch):
    def refuse(**kwargs):
        raise ValidationError("The core refused this name.", code="refused")

    monkeypatch.setattr(lifecycle, "issue_key", refuse)

    response = admin_client.post(KEY_ADD, {"owner": alice.pk, "name": "Looks fine"})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["name"] == ["The core refused this name."]
    assert not ApiKey.objects.exists()
    assert not LogEntry.objects.exists()


def test_changing_a_key_edits_only_its_name_and_scopes(admin_client, alice, bob):
    issued = issue(alice, "Before", ["memories:read"])
    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    page = admin_client.get(key_url(api_key))
    assert set(page.context["adminform"].form.fields) == {"name", "scopes", "expires_at"}
    (goals_write,) = scopes("goals:write")

    response = admin_client.post(
        key_url(api_key),
        {
            "name": "After",
            "scopes": [goals_write.pk],
            "owner": bob.pk,
            "key_prefix": "omi_dev_0000...0000",
            "key_hash": "0" * 64,
            "created_at": "2000-01-01 00:00:00",
            "last_used_at": "2000-01-01 00:00:00",
            "revoked_at": "2000-01-01 00:00:00",
            "rotated_at": "2000-01-01 00:00:00",
            "previous_key_hash": "0" * 64,
            "previous_key_expires_at": "2100-01-01 00:00:00",
        },
    )

    assert response.status_code == 302
    after = ApiKey.objects.get(pk=api_key.pk)
    assert after.name == "After"
    assert list(after.scopes.values_list("code", flat=True)) == ["goals:write"]
    assert (after.owner, after.key_prefix, after.key_hash) == (alice, api_key.key_prefix, api_key.key_hash)
    assert (after.created_at, after.last_used_at, after.revoked_at) == (api_key.created_at, None, None)
    assert (after.rotated_at, after.previous_key_hash, after.previous_key_expires_at) == (None, None, None)
    assert after.expires_at is None
    assert lifecycle.verify_key(issued.plaintext) == after
    assert not KeyEvent.objects.filter(api_key=api_key, action="expiry_changed").exists()


def test_changing_a_key_still_applies_the_name_rules_and_needs_a_scope(admin_client, alice):
    api_key = issue(alice, "Before", ["memories:read"]).api_key

    response = admin_client.post(key_url(api_key), {"name": "omi_dev_" + "cd" * 16, "scopes": []})

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"name", "scopes"}
    assert ApiKey.objects.get(pk=api_key.pk).name == "Before"


def test_a_revoked_key_can_be_viewed_but_not_changed(admin_client, alice):
    api_key = issue(alice, "Gone").api_key
    lifecycle.revoke_api_key(api_key)

    page = admin_client.get(key_url(api_key))

    assert page.status_code == 200
    html = page.content.decode()
    assert "Gone" in html
    assert 'name="name"' not in html
    assert 'name="_save"' not in html
    assert admin_client.post(key_url(api_key), {"name": "Back", "scopes": []}).status_code == 403
    assert ApiKey.objects.get(pk=api_key.pk).name == "Gone"
    changelist = admin_client.get(KEY_CHANGELIST)
    assert listed(changelist) == {api_key.pk}


def test_the_hash_appears_on_no_admin_page(admin_client, alice):
    # One key of each kind, plus history from an admin add, change and rotation, and their events.
    active = issue(alice, "Active one", ["memories:read"]).api_key
    revoked = issue(alice, "Revoked one").api_key
    lifecycle.revoke_api_key(revoked)
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


def test_scope_list_counts_only_active_keys_and_sorts_by_that_count(admin_client, alice):
    issue(alice, "One", ["memories:write", "memories:read"])
    issue(alice, "Two", ["memories:write"])
    lifecycle.revoke_api_key(issue(alice, "Three", ["memories:write", "goals:read"]).api_key)

    response = admin_client.get(SCOPE_CHANGELIST)

    cl = response.context["cl"]
    counts = {scope.code: scope.active_key_count for scope in cl.result_list}
    assert counts["memories:write"] == 2
    assert counts["memories:read"] == 1
    assert counts["goals:read"] == 0
    assert counts["goals:write"] == 0
    assert '<td class="field-active_key_count">2</td>' in row_of(response.content.decode(), "memories:write")
    column = cl.list_display.index("active_key_count")
    by_count = admin_client.get(SCOPE_CHANGELIST, {"o": f"-{column}"}).context["cl"].result_list
    assert [scope.code for scope in by_count][:2] == ["memories:write", "memories:read"]


def test_a_scope_used_only_by_a_revoked_key_keeps_its_code_and_cannot_be_deleted(admin_client, alice):
    lifecycle.revoke_api_key(issue(alice, "Old", ["goals:write"]).api_key)
    (scope,) = scopes("goals:write")

    page = admin_client.get(scope_url(scope))
    assert set(page.context["adminform"].form.fields) == {"description", "is_default"}
    assert 'name="code"' not in page.content.decode()
    response = admin_client.post(
        scope_url(scope), {"code": "goals:rewrite", "description": "New words", "is_default": ""}
    )

    assert response.status_code == 302
    scope.refresh_from_db()
    assert (scope.code, scope.description) == ("goals:write", "New words")
    assert admin_client.get(scope_url(scope, "delete")).status_code == 403
    assert admin_client.post(scope_url(scope, "delete"), {"post": "yes"}).status_code == 403
    assert admin_client.get(SCOPE_CHANGELIST).context["action_form"] is None  # no bulk delete
    assert Scope.objects.filter(code="goals:write").count() == 1
    assert ApiKey.objects.get().scopes.get() == scope


def test_an_unused_scope_can_be_renamed_and_deleted(admin_client):
    scope = Scope.objects.create(code="widgets:read", description="Read widgets")

    response = admin_client.post(scope_url(scope), {"code": "gadgets:read", "description": "Read gadgets"})
    assert response.status_code == 302
    scope.refresh_from_db()
    assert scope.code == "gadgets:read"

    assert admin_client.post(scope_url(scope, "delete"), {"post": "yes"}).status_code == 302
    assert not Scope.objects.filter(pk=scope.pk).exists()


def test_scope_form_refuses_a_new_code_for_a_scope_in_use(alice):
    issue(alice, "Uses it", ["goals:read"])
    (used,) = scopes("goals:read")
    unused = Scope.objects.create(code="widgets:read", description="Read widgets")

    used_form = ScopeAdminForm(data={"code": "goals:peek", "description": "d"}, instance=used)
    assert not used_form.is_valid()
    assert used_form.errors.as_data()["code"][0].code == "scope_in_use"
    assert ScopeAdminForm(data={"code": "goals:read", "description": "d"}, instance=used).is_valid()
    assert ScopeAdminForm(data={"code": "widgets:peek", "description": "d"}, instance=unused).is_valid()


def test_user_page_lists_the_users_keys_read_only(admin_client, alice, bob):
    active = issue(alice, "Reporting", ["memories:read", "goals:read"]).api_key
    revoked = issue(alice, "Retired").api_key
    lifecycle.revoke_api_key(revoked)
    others = issue(bob, "Not alices").api_key

    response = admin_client.get(user_url(alice))

    assert response.status_code == 200
    html = response.content.decode()
    assert "uid-alice" in html
    (inline,) = response.context["inline_admin_formsets"]
    assert {form.original.pk for form in inline} == {active.pk, revoked.pk}
    assert not inline.has_add_permission
    assert not inline.has_change_permission
    assert not inline.has_delete_permission
    for text in ("goals:read, memories:read", "Active", "Revoked", active.key_prefix, revoked.key_prefix):
        assert text in html
    for api_key in (active, revoked):
        assert f'href="{key_url(api_key)}"' in html
    assert others.key_prefix not in html
    assert 'name="api_keys-0-name"' not in html
    assert "api_keys-0-DELETE" not in html


def test_saving_a_firebase_user_leaves_their_keys_uid_and_username_untouched(admin_client, alice):
    issued = issue(alice, "Kept", ["memories:read"])
    api_key = issued.api_key

    response = admin_client.post(
        user_url(alice),
        {
            "username": "renamed",
            "email": "alice@new.example.com",
            "firebase_uid": "uid-mallory",
            "is_active": "on",
            "date_joined_0": "2025-01-01",
            "date_joined_1": "00:00:00",
            "api_keys-TOTAL_FORMS": "1",
            "api_keys-INITIAL_FORMS": "1",
            "api_keys-MIN_NUM_FORMS": "0",
            "api_keys-MAX_NUM_FORMS": "1000",
            "api_keys-0-id": str(api_key.pk),
            "api_keys-0-owner": str(alice.pk),
            "api_keys-0-name": "Changed through the inline",
            "api_keys-0-DELETE": "on",
        },
    )

    assert response.status_code == 302
    saved = User.objects.get(pk=alice.pk)
    assert saved.email == "alice@new.example.com"
    assert (saved.username, saved.firebase_uid) == ("firebase:uid-alice", "uid-alice")  # both come from Firebase
    after = ApiKey.objects.get(pk=api_key.pk)
    assert (after.name, after.owner_id, after.revoked_at) == ("Kept", alice.pk, None)
    assert lifecycle.verify_key(issued.plaintext) == after


def test_a_user_who_owns_keys_cannot_be_deleted(admin_client, alice, bob):
    api_key = issue(alice, "Protects").api_key
    lifecycle.revoke_api_key(api_key)  # revoked keys are kept for audit, so they protect too

    page = admin_client.get(user_url(alice, "delete"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "would require deleting the following protected related objects" in html
    assert key_url(api_key) in html

    assert admin_client.post(user_url(alice, "delete"), {"post": "yes"}).status_code == 200
    bulk = admin_client.post(
        USER_CHANGELIST, {"action": "delete_selected", "_selected_action": [str(alice.pk)], "post": "yes"}
    )
    assert bulk.status_code == 200
    assert User.objects.filter(pk=alice.pk).exists()
    assert ApiKey.objects.filter(pk=api_key.pk).exists()

    assert admin_client.post(user_url(bob, "delete"), {"post": "yes"}).status_code == 302
    assert not User.objects.filter(pk=bob.pk).exists()


def key_pages(api_key):
    return [KEY_CHANGELIST, KEY_ADD, key_url(api_key), key_url(api_key, "history")]


def test_anonymous_visitors_are_sent_to_the_admin_login(client, alice):
    for url in key_pages(issue(alice).api_key):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == login_url(url)


def test_a_signed_in_user_who_is_not_staff_is_sent_to_the_admin_login(client, django_user_model, alice):
    client.force_login(django_user_model.objects.create_user(username="plain", password="not-used"))
    for url in key_pages(issue(alice).api_key):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == login_url(url)


def test_staff_without_permissions_are_refused_key_pages(client, staff, alice):
    issued = issue(alice)
    client.force_login(staff)

    for url in key_pages(issued.api_key):
        assert client.get(url).status_code == 403, url
    response = client.post(KEY_CHANGELIST, {"action": "revoke_selected", "_selected_action": [str(issued.api_key.pk)]})
    assert response.status_code == 403
    assert lifecycle.verify_key(issued.plaintext) == issued.api_key


def test_staff_with_view_permission_can_look_but_not_revoke_or_issue(client, staff, alice):
    issued = issue(alice)
    staff.user_permissions.add(Permission.objects.get(codename="view_apikey"))
    client.force_login(staff)

    changelist = client.get(KEY_CHANGELIST)
    assert listed(changelist) == {issued.api_key.pk}
    assert changelist.context["action_form"] is None  # neither revoke nor delete is offered
    client.post(KEY_CHANGELIST, {"action": "revoke_selected", "_selected_action": [str(issued.api_key.pk)]})
    assert lifecycle.verify_key(issued.plaintext) == issued.api_key
    assert client.get(KEY_ADD).status_code == 403
    assert client.post(KEY_ADD, {"owner": alice.pk, "name": "Sneaky"}).status_code == 403
    assert ApiKey.objects.count() == 1


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
            lifecycle.revoke_api_key(api_key)

    with django_assert_max_num_queries(8):
        response = admin_client.get(KEY_CHANGELIST, query)

    assert len(listed(response)) == {"active": 6, "expired": 3, "revoked": 3}.get(query.get("status"), 12)


def test_scope_changelist_and_user_page_queries_stay_bounded(admin_client, alice, django_assert_max_num_queries):
    for n in range(12):
        issue(alice, f"Key {n}", ["memories:read", "goals:write"])

    with django_assert_max_num_queries(6):
        assert admin_client.get(SCOPE_CHANGELIST).status_code == 200
    with django_assert_max_num_queries(12):
        assert admin_client.get(user_url(alice)).status_code == 200


def test_staff_cannot_bind_a_firebase_uid_or_give_firebase_users_staff_rights(admin_client, admin_user, alice):
    page = admin_client.get(user_url(admin_user)).content.decode()
    assert 'name="firebase_uid"' not in page
    page = admin_client.get(user_url(alice)).content.decode()
    for field in ("firebase_uid", "is_staff", "is_superuser", "username"):
        assert f'name="{field}"' not in page


# Expiry: on the add form and the change form, always through the core


def test_adding_a_key_with_an_expiry_records_the_staff_member(admin_client, admin_user, alice):
    moment = in_days(10)

    data = {"owner": alice.pk, "name": "Temporary", **expiry_fields(moment)}

    response = admin_client.post(KEY_ADD, data, **FROM_STAFF)

    assert response.status_code == 200
    (plaintext,) = PLAINTEXT_RE.findall(response.content.decode())
    api_key = lifecycle.verify_key(plaintext)
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


def test_an_owner_with_the_most_keys_allowed_gets_a_form_error_not_a_server_error(admin_client, alice, settings):
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 2
    issue(alice, "One")
    issue(alice, "Two")

    response = admin_client.post(KEY_ADD, {"owner": alice.pk, "name": "Three"})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["owner"] == [
        "alice@example.com already has 2 active API keys, the most allowed. Revoke one of them first."
    ]
    assert 'class="errornote"' in response.content.decode()
    assert ApiKey.objects.count() == 2
    assert not LogEntry.objects.exists()
    lifecycle.revoke_api_key(ApiKey.objects.get(name="One"))
    assert admin_client.post(KEY_ADD, {"owner": alice.pk, "name": "Three"}).status_code == 200
    assert ApiKey.objects.filter(name="Three").exists()


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
    assert lifecycle.verify_key(issued.plaintext) == api_key


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
    assert lifecycle.verify_key(issued.plaintext) is None

    renamed = admin_client.post(key_url(api_key), change_data(api_key, name="Still lapsed"), follow=True)
    assert not messages_of(renamed)[0].startswith("Nothing was saved")
    after = ApiKey.objects.get(pk=api_key.pk)
    assert (after.name, after.expires_at) == ("Still lapsed", api_key.expires_at)  # a past expiry sent back as it was
    assert not KeyEvent.objects.filter(action="expiry_changed").exists()

    moment = in_days(30)
    extended = admin_client.post(key_url(api_key), change_data(api_key, **expiry_fields(moment)), **FROM_STAFF)

    assert extended.status_code == 302
    assert lifecycle.verify_key(issued.plaintext) == api_key
    assert_made_by_staff(the_event(api_key, "expiry_changed"), admin_user)


def test_a_revoked_keys_expiry_is_shown_but_cannot_be_changed(admin_client, alice):
    moment = in_days(4)
    api_key = lifecycle.issue_key(owner=alice, name="Gone", expires_at=moment).api_key
    lifecycle.revoke_api_key(api_key)

    html = admin_client.get(key_url(api_key)).content.decode()

    assert 'name="expires_at_0"' not in html
    assert shown(moment) in html
    response = admin_client.post(key_url(api_key), change_data(api_key, **expiry_fields(in_days(9))))
    assert response.status_code == 403
    assert ApiKey.objects.get(pk=api_key.pk).expires_at == moment


# Rotation


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
    lifecycle.revoke_api_key(revoked)

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
    assert lifecycle.verify_key(issued.plaintext) == api_key


def test_rotating_shows_the_new_secret_once_and_the_old_one_stops_at_once(admin_client, admin_user, alice):
    issued = issue(alice, "Reporting", ["memories:read"])
    api_key = issued.api_key

    response = admin_client.post(rotate_url(api_key), rotate_data(api_key), **FROM_STAFF)

    assert response.status_code == 200
    assert [template.name for template in response.templates][0] == "admin/apikeys/apikey/issued.html"
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    (plaintext,) = PLAINTEXT_RE.findall(html)
    assert lifecycle.verify_key(plaintext) == api_key
    assert lifecycle.verify_key(issued.plaintext) is None
    assert "has a new secret" in html and "The replaced secret has stopped working." in html
    after = ApiKey.objects.get(pk=api_key.pk)
    assert after.key_prefix in html and after.key_prefix != api_key.key_prefix
    assert (after.name, list(after.scopes.values_list("code", flat=True))) == ("Reporting", ["memories:read"])
    event = the_event(api_key, "rotated")
    assert_made_by_staff(event, admin_user)
    assert event.details == {"grace_seconds": 0, "previous_key_expires_at": None}
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
    assert lifecycle.verify_key(plaintext) == api_key
    assert lifecycle.verify_key(issued.plaintext) == api_key  # both work during the grace period
    assert the_event(api_key, "rotated").details["grace_seconds"] == 86400
    assert LogEntry.objects.get().get_change_message().endswith("stops working in 24 hours.")
    ApiKey.objects.filter(pk=api_key.pk).update(previous_key_expires_at=timezone.now())  # the day has passed
    assert lifecycle.verify_key(issued.plaintext) is None
    assert lifecycle.verify_key(plaintext) == api_key


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
    assert lifecycle.verify_key(plaintext) == api_key
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
        lifecycle.revoke_api_key(api_key)
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
    assert lifecycle.verify_key(issued.plaintext) == issued.api_key
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
    assert lifecycle.verify_key(issued.plaintext) == issued.api_key

    staff.user_permissions.add(Permission.objects.get(codename="change_apikey"))
    staff = User.objects.get(pk=staff.pk)  # a fresh permission cache
    client.force_login(staff)
    response = client.post(url, rotate_data(issued.api_key))
    assert response.status_code == 200
    assert lifecycle.verify_key(issued.plaintext) is None


def test_the_rotate_form_is_refused_without_its_csrf_token(admin_user, alice):
    issued = issue(alice)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    url = rotate_url(issued.api_key)

    forged = browser.post(url, rotate_data(issued.api_key))

    assert forged.status_code == 403
    assert lifecycle.verify_key(issued.plaintext) == issued.api_key
    page = browser.get(url).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    genuine = browser.post(url, {**rotate_data(issued.api_key), "csrfmiddlewaretoken": token})
    assert genuine.status_code == 200
    assert lifecycle.verify_key(issued.plaintext) is None


# Revoking records who did it


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


# The audit log of key events


@pytest.fixture
def history(admin_client, alice, bob):
    """Events of every kind: a command issues, staff rotate and change the expiry, the owner revokes."""
    reporting = lifecycle.issue_key(owner=alice, name="Reporting", actor=audit.Actor.command("createapikey")).api_key
    backups = lifecycle.issue_key(owner=bob, name="Backups").api_key  # Python code
    admin_client.post(rotate_url(reporting), rotate_data(reporting, grace="3600"), **FROM_STAFF)
    reporting.refresh_from_db()
    admin_client.post(key_url(backups), change_data(backups, **expiry_fields(in_days(30))), **FROM_STAFF)
    owner = audit.Actor(kind="user", via="api", user=bob, label=bob.label, ip_address="198.51.100.4")
    lifecycle.revoke_api_key(backups, actor=owner)
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
        lifecycle.revoke_api_key(api_key)

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

    with django_assert_max_num_queries(8):
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


def test_renaming_and_rescoping_are_audited_with_old_and_new_values(admin_client, admin_user, alice):
    api_key = ApiKey.objects.get(pk=issue(alice, "Reporting", ["memories:read"]).api_key.pk)
    data = change_data(api_key, name="Reporting v2", scopes=[s.pk for s in scopes("memories:read", "memories:write")])

    assert admin_client.post(key_url(api_key), data, **FROM_STAFF).status_code == 302

    renamed, rescoped = the_event(api_key, "renamed"), the_event(api_key, "scopes_changed")
    assert_made_by_staff(renamed, admin_user)
    assert_made_by_staff(rescoped, admin_user)
    assert renamed.details == {"name": "Reporting v2", "previous_name": "Reporting"}
    assert rescoped.details == {"scopes": ["memories:read", "memories:write"], "previous_scopes": ["memories:read"]}
    assert sorted(ApiKey.objects.get(pk=api_key.pk).scopes.values_list("code", flat=True)) == [
        "memories:read",
        "memories:write",
    ]
    # Saving the page again unchanged records nothing more.
    admin_client.post(key_url(api_key), change_data(ApiKey.objects.get(pk=api_key.pk)), **FROM_STAFF)
    assert KeyEvent.objects.filter(api_key=api_key).count() == 3


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
