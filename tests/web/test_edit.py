"""The edit page: a key's name, scopes and expiry changed in place, all or nothing, with its secret kept."""

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from apikeys import lifecycle
from apikeys.models import ApiKey, KeyEvent, Scope

from ..helpers import expire, in_days, key_client, scopes
from .pages import controls, described_by, radios, text

pytestmark = pytest.mark.django_db


def edit_url(api_key) -> str:
    return reverse("web:key-edit", args=[api_key.pk])


def post_edit(client, api_key, name, scope_codes, expires_in=None, **extra):
    data = {"name": name, "scopes": list(scope_codes)}
    if expires_in is not None:
        data["expires_in"] = expires_in
    return client.post(edit_url(api_key), data, **extra)


def message_after(client, response) -> str:
    """The words of the page a successful form leads to (where its message is shown)."""
    assert response.status_code == 302, response.status_code
    return text(client.get(response["Location"]))


def test_the_edit_form_starts_from_the_keys_values_and_keeps_its_expiry_by_default(person):
    issued = lifecycle.issue_key(
        owner=person.user, name="Zapier sync", scopes=scopes("goals:write", "memories:read"), expires_at=in_days(60)
    )
    detail = person.get(reverse("web:key-detail", args=[issued.api_key.pk])).content.decode()
    assert f'href="{edit_url(issued.api_key)}">Edit key…</a>' in detail

    response = person.get(edit_url(issued.api_key))
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    page = response.content.decode()
    assert 'value="Zapier sync"' in page
    checked = {re.search(r'value="([^"]+)"', tag).group(1) for tag in controls(page, "scopes") if " checked" in tag}
    assert checked == {"goals:write", "memories:read"}
    assert len(controls(page, "scopes")) == Scope.objects.count()  # every scope, as on the create form
    assert radios(page, "expires_in") == {"keep": True, "never": False, "30": False, "90": False, "365": False}
    assert f"Keep the current expiry until {issued.api_key.expires_at:%-d %b %Y}" in text(response)
    assert re.search(r'<form method="post" action="[^"]+/edit/" class="form" novalidate data-submit-once>', page)


def test_a_key_that_never_expires_says_so_beside_keep(person):
    issued = lifecycle.issue_key(owner=person.user, name="n")
    assert "Keep the current expiry never expires" in text(person.get(edit_url(issued.api_key)))


def test_name_and_scopes_change_in_place_and_the_secret_keeps_working_with_the_new_scopes(person):
    issued = lifecycle.issue_key(owner=person.user, name="Zapier sync", scopes=scopes("memories:read"))
    before = ApiKey.objects.get(pk=issued.api_key.pk)

    response = post_edit(person, issued.api_key, "Zapier sync (prod)", ["memories:read", "memories:write"], "keep")

    assert response["Location"] == reverse("web:key-detail", args=[issued.api_key.pk])
    words = message_after(person, response)
    assert "Name, scopes changed. Its secret stays the same" in words
    assert "Zapier sync (prod)" in words
    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert (api_key.key_hash, api_key.key_prefix, api_key.expires_at) == (
        before.key_hash,
        before.key_prefix,
        before.expires_at,
    )
    calling = key_client(issued.plaintext).get("/v1/dev/key")
    assert calling.status_code == 200
    assert calling.json()["name"] == "Zapier sync (prod)"
    assert calling.json()["scopes"] == ["memories:read", "memories:write"]
    events = {event.action: event for event in api_key.events.exclude(action=KeyEvent.Action.CREATED)}
    assert set(events) == {KeyEvent.Action.RENAMED, KeyEvent.Action.SCOPES_CHANGED}
    for event in events.values():
        assert (event.actor_kind, event.actor_id, event.via) == (
            KeyEvent.ActorKind.USER,
            person.user.pk,
            KeyEvent.Via.WEB,
        )


@pytest.mark.parametrize("days", [30, 90, 365])
def test_a_new_lifetime_is_counted_from_now(person, days):
    issued = lifecycle.issue_key(owner=person.user, name="n", scopes=scopes("goals:read"))
    start = timezone.now()
    response = post_edit(person, issued.api_key, "n", ["goals:read"], str(days))
    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    expected = datetime.timedelta(days=days)
    assert start + expected <= api_key.expires_at <= timezone.now() + expected
    words = message_after(person, response)
    assert f"Expiry changed. The key expires on {api_key.expires_at:%-d %b %Y, %H:%M} UTC." in words


def test_never_removes_the_expiry_and_keep_leaves_it(person):
    issued = lifecycle.issue_key(owner=person.user, name="n", scopes=scopes("goals:read"), expires_at=in_days(10))
    kept = post_edit(person, issued.api_key, "n", ["goals:read"], "keep")
    assert "Nothing changed." in message_after(person, kept)
    assert ApiKey.objects.get(pk=issued.api_key.pk).expires_at == issued.api_key.expires_at
    missing = post_edit(person, issued.api_key, "n", ["goals:read"])  # an older form, without the choice: keep
    assert "Nothing changed." in message_after(person, missing)

    never = post_edit(person, issued.api_key, "n", ["goals:read"], "never")
    assert "Expiry changed. The key never expires." in message_after(person, never)
    assert ApiKey.objects.get(pk=issued.api_key.pk).expires_at is None
    assert list(ApiKey.objects.get(pk=issued.api_key.pk).events.values_list("action", flat=True)) == [
        KeyEvent.Action.EXPIRY_CHANGED,
        KeyEvent.Action.CREATED,
    ]


def test_every_refusal_is_shown_beside_its_field_and_nothing_changes(person):
    issued = lifecycle.issue_key(owner=person.user, name="Good name", scopes=scopes("goals:read"))

    response = post_edit(person, issued.api_key, "omi_dev_" + "a" * 32, [], "30")

    assert response.status_code == 422
    page = response.content.decode()
    assert re.search(r'<p id="name-error" class="field-error">[^<]*looks like it contains an API key', page)
    assert '<p id="scopes-error" class="field-error" role="alert">Choose at least one scope.</p>' in page
    (name_input,) = controls(page, "name")
    assert 'aria-invalid="true"' in name_input and described_by(name_input) == ["name-help", "name-error"]
    for box in controls(page, "scopes"):
        assert 'aria-invalid="true"' in box and described_by(box)[-1] == "scopes-error"
    assert 'value="omi_dev_' + "a" * 32 + '"' in page  # the input is kept
    assert radios(page, "expires_in")["30"]
    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert (api_key.name, api_key.expires_at) == ("Good name", None)  # the valid expiry was not applied either
    assert [scope.code for scope in api_key.scopes.all()] == ["goals:read"]
    assert not api_key.events.exclude(action=KeyEvent.Action.CREATED).exists()


def test_the_name_messages_are_the_create_forms(person):
    issued = lifecycle.issue_key(owner=person.user, name="n")
    for name, message in [
        ("", "The name must not be empty."),
        ("x" * 101, "The name must be at most 100 characters, not 101."),
        ("a\u202eb", "The name must not contain characters that change the direction of text (U+202E"),
    ]:
        edit = post_edit(person, issued.api_key, name, ["goals:read"])
        data = {"name": name, "scopes": ["goals:read"], "form_token": "t" * 32}
        create = person.post(reverse("web:key-create"), data)
        assert edit.status_code == create.status_code == 422
        assert message in text(edit) and message in text(create)


def test_expiry_choices_beyond_the_longest_lifetime_are_hidden_and_refused(person, settings):
    settings.OMIKEYS_MAX_KEY_LIFETIME_DAYS = 90
    issued = lifecycle.issue_key(owner=person.user, name="n")
    assert list(radios(person.get(edit_url(issued.api_key)).content.decode(), "expires_in")) == [
        "keep",
        "never",
        "30",
        "90",
    ]
    response = post_edit(person, issued.api_key, "renamed", ["goals:read"], "365")
    assert response.status_code == 422
    assert "Choose one of the expiry options." in text(response)
    assert ApiKey.objects.get(pk=issued.api_key.pk).name == "n"


def test_a_name_stored_before_todays_rules_may_stay_while_the_scopes_change(person):
    issued = lifecycle.issue_key(owner=person.user, name="old", scopes=scopes("goals:read"))
    ApiKey.objects.filter(pk=issued.api_key.pk).update(name="legacy \u202ename")  # a bidi control, now refused

    response = post_edit(person, issued.api_key, "legacy \u202ename", ["goals:read", "goals:write"])

    assert "Scopes changed." in message_after(person, response)
    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert api_key.name == "legacy \u202ename"
    assert [scope.code for scope in api_key.scopes.all()] == ["goals:read", "goals:write"]
    # A new name is checked.
    assert post_edit(person, issued.api_key, "new \u202ename", ["goals:read"]).status_code == 422


def test_an_expired_key_given_a_later_expiry_needs_room_under_the_limit(person, settings):
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 1
    expired = lifecycle.issue_key(owner=person.user, name="Old job", scopes=scopes("goals:read"), expires_at=in_days(1))
    expire(expired.api_key)
    lifecycle.issue_key(owner=person.user, name="Current")
    was = ApiKey.objects.get(pk=expired.api_key.pk).expires_at

    response = post_edit(person, expired.api_key, "Old job, renewed", ["goals:read"], "30")

    assert response.status_code == 409
    page = response.content.decode()
    words = text(response)
    assert "You already have 1 active API key, the most allowed." in words
    assert "Nothing was changed: this key has expired" in words
    assert re.search(r'class="notice notice-error" role="alert" tabindex="-1" autofocus', page)
    assert 'value="Old job, renewed"' in page and radios(page, "expires_in")["30"]
    api_key = ApiKey.objects.get(pk=expired.api_key.pk)
    assert (api_key.name, api_key.expires_at) == ("Old job", was)  # the rename did not happen either
    # Renaming it without a new expiry needs no room; with room, the expiry can change too.
    renamed = post_edit(person, expired.api_key, "Old job, renamed", ["goals:read"])
    assert "Name changed." in message_after(person, renamed)
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 2
    renewed = post_edit(person, expired.api_key, "Old job, renamed", ["goals:read"], "30")
    assert "Expiry changed." in message_after(person, renewed)
    assert lifecycle.verify_key(expired.plaintext).api_key is not None


def test_a_revoked_key_cannot_be_edited(person):
    issued = lifecycle.issue_key(owner=person.user, name="Gone", scopes=scopes("goals:read"))
    lifecycle.revoke_key(issued.api_key)
    detail = person.get(reverse("web:key-detail", args=[issued.api_key.pk])).content.decode()
    assert "Edit key" not in detail and "cannot be edited, rotated or used again" in detail

    page = person.get(edit_url(issued.api_key))
    assert page.status_code == 409
    assert "“Gone” cannot be edited" in text(page) and "<form" not in page.content.decode().split("<main", 1)[1]

    response = post_edit(person, issued.api_key, "Back again", ["goals:write"], "never")
    assert response.status_code == 409 and "Revoked keys stay revoked" in text(response)
    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert api_key.name == "Gone" and [scope.code for scope in api_key.scopes.all()] == ["goals:read"]


def test_a_key_revoked_while_the_form_was_open_is_not_changed(person, monkeypatch):
    issued = lifecycle.issue_key(owner=person.user, name="Racing", scopes=scopes("goals:read"))
    real_change = lifecycle.change_key

    def revoked_meanwhile(api_key, **kwargs):
        lifecycle.revoke_key(ApiKey.objects.get(pk=api_key.pk))
        return real_change(api_key, **kwargs)

    monkeypatch.setattr(lifecycle, "change_key", revoked_meanwhile)
    response = post_edit(person, issued.api_key, "Renamed", ["goals:read"])
    assert response.status_code == 409 and "cannot be edited" in text(response)
    assert ApiKey.objects.get(pk=issued.api_key.pk).name == "Racing"


def test_the_same_form_sent_twice_is_harmless(person):
    issued = lifecycle.issue_key(owner=person.user, name="n", scopes=scopes("goals:read"))
    first = post_edit(person, issued.api_key, "Twice", ["goals:read", "goals:write"], "30")
    assert "Name, scopes, expiry changed." in message_after(person, first)
    second = post_edit(person, issued.api_key, "Twice", ["goals:read", "goals:write"], "30")
    # The second sets the same name and scopes again (no change) and counts 30 days from its own moment.
    again = message_after(person, second)
    assert "Expiry changed." in again and "Name" not in again
    assert ApiKey.objects.get(pk=issued.api_key.pk).events.filter(action=KeyEvent.Action.RENAMED).count() == 1


def test_a_disabled_key_can_be_edited_and_stays_disabled(person):
    issued = lifecycle.issue_key(owner=person.user, name="Paused", scopes=scopes("goals:read"))
    lifecycle.disable_key(issued.api_key)
    response = post_edit(person, issued.api_key, "Paused, renamed", ["goals:read"])
    assert "Name changed." in message_after(person, response)
    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert api_key.name == "Paused, renamed" and api_key.is_disabled
