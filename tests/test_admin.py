"""The staff door: the Django admin for keys, scopes and users."""

import datetime
import io
import re

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth.models import Permission
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from apikeys import lifecycle
from apikeys.admin import ScopeAdminForm
from apikeys.models import ApiKey, Scope, User

pytestmark = pytest.mark.django_db

KEY_CHANGELIST = reverse("admin:apikeys_apikey_changelist")
KEY_ADD = reverse("admin:apikeys_apikey_add")
SCOPE_CHANGELIST = reverse("admin:apikeys_scope_changelist")
USER_CHANGELIST = reverse("admin:apikeys_user_changelist")
PLAINTEXT_RE = re.compile(r"omi_dev_[0-9a-f]{32}")


def key_url(api_key, view="change"):
    return reverse(f"admin:apikeys_apikey_{view}", args=[api_key.pk])


def scope_url(scope, view="change"):
    return reverse(f"admin:apikeys_scope_{view}", args=[scope.pk])


def user_url(user, view="change"):
    return reverse(f"admin:apikeys_user_{view}", args=[user.pk])


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


def test_status_filter_separates_active_and_revoked_keys(admin_client, alice):
    active = issue(alice, "Active one").api_key
    revoked = issue(alice, "Revoked one").api_key
    lifecycle.revoke_api_key(revoked)

    assert listed(admin_client.get(KEY_CHANGELIST, {"status": "active"})) == {active.pk}
    assert listed(admin_client.get(KEY_CHANGELIST, {"status": "revoked"})) == {revoked.pk}
    assert listed(admin_client.get(KEY_CHANGELIST)) == {active.pk, revoked.pk}


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
    assert set(page.context["adminform"].form.fields) == {"name", "scopes"}
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
        },
    )

    assert response.status_code == 302
    after = ApiKey.objects.get(pk=api_key.pk)
    assert after.name == "After"
    assert list(after.scopes.values_list("code", flat=True)) == ["goals:write"]
    assert (after.owner, after.key_prefix, after.key_hash) == (alice, api_key.key_prefix, api_key.key_hash)
    assert (after.created_at, after.last_used_at, after.revoked_at) == (api_key.created_at, None, None)
    assert lifecycle.verify_key(issued.plaintext) == after


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
    # One key of each kind, plus history from an admin add and an admin change.
    active = issue(alice, "Active one", ["memories:read"]).api_key
    revoked = issue(alice, "Revoked one").api_key
    lifecycle.revoke_api_key(revoked)
    issued_page = admin_client.post(KEY_ADD, {"owner": alice.pk, "name": "Added here"})
    added = ApiKey.objects.get(name="Added here")
    admin_client.post(key_url(active), {"name": "Renamed", "scopes": [scope.pk for scope in scopes("goals:read")]})
    (used_scope,) = scopes("memories:read")
    hashes = list(ApiKey.objects.values_list("key_hash", flat=True))
    assert len(hashes) == 3

    pages = [issued_page]
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
        (key_url(active, "history"), {}),
        (key_url(added, "history"), {}),
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


@pytest.mark.parametrize(
    ("url", "lookup"),
    [
        (KEY_CHANGELIST, "key_hash__startswith"),
        (KEY_CHANGELIST, "key_hash"),
        (USER_CHANGELIST, "api_keys__key_hash__startswith"),
        (SCOPE_CHANGELIST, "api_keys__key_hash__startswith"),
    ],
)
def test_the_hash_cannot_be_probed_through_changelist_lookups(admin_client, alice, url, lookup):
    api_key = issue(alice).api_key
    value = api_key.key_hash if lookup == "key_hash" else api_key.key_hash[0]

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
    response = client.post(
        KEY_CHANGELIST, {"action": "revoke_selected", "_selected_action": [str(issued.api_key.pk)]}
    )
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


def test_key_changelist_queries_do_not_grow_with_the_number_of_keys(admin_client, django_assert_max_num_queries):
    for n in range(12):
        owner = User.objects.for_firebase(f"uid-{n % 4}", f"user{n % 4}@example.com")
        issue(owner, f"Key {n}", ["memories:read", "goals:read", "conversations:write"])

    with django_assert_max_num_queries(8):
        response = admin_client.get(KEY_CHANGELIST)

    assert len(listed(response)) == 12


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
