"""The admin's add form: a key issued through the core, shown once."""

import io
import re

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from apikeys import lifecycle
from apikeys.models import ApiKey, Scope, User

from ..helpers import issue
from .pages import KEY_ADD, KEY_CHANGELIST, PLAINTEXT_RE, key_url, messages_of, scopes

pytestmark = pytest.mark.django_db


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
    api_key = lifecycle.verify_key(shown[0]).api_key
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
        raise ValidationError({"name": ValidationError("The core refused this name.", code="refused")})

    monkeypatch.setattr(lifecycle, "issue_key", refuse)

    response = admin_client.post(KEY_ADD, {"owner": alice.pk, "name": "Looks fine"})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["name"] == ["The core refused this name."]
    assert not ApiKey.objects.exists()
    assert not LogEntry.objects.exists()


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
    lifecycle.revoke_key(ApiKey.objects.get(name="One"))
    assert admin_client.post(KEY_ADD, {"owner": alice.pk, "name": "Three"}).status_code == 200
    assert ApiKey.objects.filter(name="Three").exists()


def test_every_control_of_the_add_form_is_named_and_grouped(admin_client):
    page = admin_client.get(KEY_ADD).content.decode()

    # The expiry's date and time inputs have labels of their own, inside a group named "Expires".
    assert re.search(r'<label for="id_expires_at_0">Date:</label>', page)
    assert re.search(r'<label for="id_expires_at_1">Time:</label>', page)
    for field, help_text in (("expires_at", "Leave empty"), ("scopes", "read-only default")):
        group = re.search(rf'<div role="group" aria-labelledby="id_{field}_label"([^>]*)>', page)
        assert group, field
        assert re.search(rf'<label id="id_{field}_label"[^>]*>{field.split("_")[0].capitalize()}', page)
        assert 'aria-describedby="id_' + field + '_helptext"' in group.group(1)
        assert re.search(rf'id="id_{field}_helptext">\s*<div>[^<]*{help_text}', page)
    # The owner's Select2 combobox gets the field's label from this script.
    assert "apikeys/admin/autocomplete_names.js" in page
    assert page.index("admin/js/autocomplete.js") < page.index("apikeys/admin/autocomplete_names.js")


def test_errors_of_a_group_describe_it_and_mark_its_controls_invalid(admin_client):
    page = admin_client.post(KEY_ADD, {"name": "n", "expires_at_0": "not a date", "expires_at_1": ""}).content.decode()

    group = re.search(r'<div role="group" aria-labelledby="id_expires_at_label"([^>]*)>', page).group(1)
    assert 'aria-describedby="id_expires_at_helptext id_expires_at_error"' in group
    assert re.search(r'<ul class="errorlist" id="id_expires_at_error">', page)
    for name in ("expires_at_0", "expires_at_1"):
        assert re.search(rf'<input[^>]*name="{name}"[^>]*aria-invalid="true"', page), name
