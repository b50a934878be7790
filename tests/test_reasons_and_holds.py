"""Reasons for a change never hold a secret, and a key staff disabled stays disabled until staff enable it:
the lifecycle's rules (validate_reason, staff_hold, DisabledByStaff) and the JSON, service and command doors."""

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError

from apikeys import crypto, lifecycle
from apikeys.audit import CODE, Actor
from apikeys.models import ApiKey, KeyEvent

from .commands.running import run
from .helpers import issue, service

pytestmark = pytest.mark.django_db

SECRET_IN_REASON = "The reason looks like it contains an API key; describe where it was found instead."
HELD = "This key was disabled by Omi staff; only they can enable it. Contact support."

# Every secret shape the key-name rule refuses: a developer key (both formats), an MCP key, a service
# token, and a developer key disguised in upper case and fullwidth letters. Named, not shown, in test ids:
# the ids stay the same from one collection to the next (mutation testing runs tests by id).
SECRETS = [
    crypto.generate_key().plaintext,
    crypto.generate_key("hex").plaintext,
    "omi_mcp_" + "ab" * 16,
    crypto.generate_service_token().plaintext,
    "OMI_DEV_" + "AB" * 16,
    "ｏｍｉ＿ｄｅｖ＿" + "0123456789abcdef" * 2,
]


SECRET_IDS = ["developer-key", "developer-key-hex", "mcp-key", "service-token", "upper-case", "fullwidth"]


def reasons_with_secrets():
    return [f"found {secret} in a public gist" for secret in SECRETS]


def owner_actor(owner) -> Actor:
    return Actor(kind=KeyEvent.ActorKind.USER, via=KeyEvent.Via.API, user=owner, label=owner.label)


def staff_actor(staff) -> Actor:
    return Actor(kind=KeyEvent.ActorKind.STAFF, via=KeyEvent.Via.ADMIN, user=staff, label=staff.label)


# --- the lifecycle: the last line of defence ------------------------------------------------


@pytest.mark.parametrize("reason", reasons_with_secrets(), ids=SECRET_IDS)
def test_disable_and_revoke_refuse_a_reason_holding_a_secret_and_change_nothing(owner, reason):
    api_key = issue(owner).api_key

    for change in (lifecycle.disable_key, lifecycle.revoke_key):
        with pytest.raises(ValidationError) as refused:
            change(api_key, reason=reason)
        assert refused.value.message_dict == {"reason": [SECRET_IN_REASON]}
        assert refused.value.error_dict["reason"][0].code == "secret_in_reason"

    stored = ApiKey.objects.get(pk=api_key.pk)
    assert (stored.disabled_at, stored.revoked_at) == (None, None)
    assert not KeyEvent.objects.filter(api_key=api_key, action__in=["disabled", "revoked"]).exists()


def test_revoke_user_keys_refuses_a_reason_holding_a_secret_and_revokes_nothing(owner):
    api_key = issue(owner).api_key
    with pytest.raises(ValidationError) as refused:
        lifecycle.revoke_user_keys(owner, reason=reasons_with_secrets()[0], actor=None)
    assert list(refused.value.message_dict) == ["reason"]
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is None


def test_an_ordinary_reason_is_kept(owner):
    api_key = issue(owner).api_key
    assert lifecycle.disable_key(api_key, reason="found omi_dev_abcd...wxyz in a public gist")
    assert KeyEvent.objects.get(api_key=api_key, action="disabled").details == {
        "reason": "found omi_dev_abcd...wxyz in a public gist"
    }


def test_the_owner_cannot_enable_a_key_someone_else_disabled(owner, admin_user):
    api_key = issue(owner).api_key
    lifecycle.disable_key(api_key, actor=staff_actor(admin_user), reason="checking a leak")

    with pytest.raises(lifecycle.DisabledByStaff) as held:
        lifecycle.enable_key(api_key, actor=owner_actor(owner))

    assert str(held.value) == HELD
    assert isinstance(held.value, lifecycle.LifecycleError)
    assert held.value.event.details == {"reason": "checking a leak"}
    assert held.value.api_key.pk == api_key.pk
    assert ApiKey.objects.get(pk=api_key.pk).disabled_at is not None
    assert not KeyEvent.objects.filter(api_key=api_key, action="enabled").exists()


@pytest.mark.parametrize(
    "disabler", [lambda: Actor.command("disableapikey"), lambda: CODE, lambda: None], ids=["command", "code", "none"]
)
def test_a_key_disabled_by_a_command_or_code_is_held_too(owner, disabler):
    api_key = issue(owner).api_key
    lifecycle.disable_key(api_key, actor=disabler())
    with pytest.raises(lifecycle.DisabledByStaff):
        lifecycle.enable_key(api_key, actor=owner_actor(owner))


def test_staff_commands_and_code_may_enable_a_held_key(owner, admin_user):
    for enabler in (staff_actor(admin_user), Actor.command("enableapikey"), None):
        api_key = issue(owner).api_key
        lifecycle.disable_key(api_key, actor=staff_actor(admin_user))
        assert lifecycle.enable_key(api_key, actor=enabler)
        assert lifecycle.staff_hold(api_key) is None


def test_the_owners_own_pause_stays_theirs_to_lift(owner, admin_user):
    api_key = issue(owner).api_key
    lifecycle.disable_key(api_key, actor=owner_actor(owner))
    assert lifecycle.staff_hold(api_key) is None
    assert lifecycle.enable_key(api_key, actor=owner_actor(owner))

    # The last "disabled" event decides: a staff pause after an owner's one holds the key.
    lifecycle.disable_key(api_key, actor=staff_actor(admin_user))
    assert lifecycle.staff_hold(api_key).actor == admin_user
    lifecycle.enable_key(api_key, actor=staff_actor(admin_user))
    lifecycle.disable_key(api_key, actor=owner_actor(owner))
    assert lifecycle.staff_hold(api_key) is None


def test_another_user_disabling_is_not_the_owner(owner, admin_user):
    # Staff who is not the owner, acting as a "user" (say, through a shell): still not the owner.
    api_key = issue(owner).api_key
    lifecycle.disable_key(api_key, actor=owner_actor(admin_user))
    with pytest.raises(lifecycle.DisabledByStaff):
        lifecycle.enable_key(api_key, actor=owner_actor(owner))


def test_a_held_key_can_still_be_rotated_changed_and_revoked_by_its_owner(owner, admin_user):
    api_key = issue(owner).api_key
    lifecycle.disable_key(api_key, actor=staff_actor(admin_user))
    actor = owner_actor(owner)

    lifecycle.rotate_key(api_key, actor=actor)
    lifecycle.change_key(api_key, name="renamed", actor=actor)
    assert ApiKey.objects.get(pk=api_key.pk).disabled_at is not None
    assert lifecycle.revoke_key(api_key, actor=actor)


def test_a_held_key_that_is_not_disabled_any_more_enables_as_before(owner):
    api_key = issue(owner).api_key
    assert lifecycle.staff_hold(api_key) is None
    assert lifecycle.enable_key(api_key, actor=owner_actor(owner)) is False


# --- the JSON API ---------------------------------------------------------------------------


def test_the_api_answers_409_for_a_key_staff_disabled_and_enables_an_owners_pause(user_client, admin_user):
    created = user_client.post("/v1/dev/keys", {"name": "held"}, format="json").json()
    api_key = ApiKey.objects.get(pk=created["id"])
    lifecycle.disable_key(api_key, actor=staff_actor(admin_user), reason="checking a leak")

    response = user_client.post(f"/v1/dev/keys/{api_key.pk}/enable")

    assert response.status_code == 409, response.content
    assert response.json() == {"detail": HELD}
    assert ApiKey.objects.get(pk=api_key.pk).disabled_at is not None

    # Still the owner's to rotate, edit and revoke.
    assert user_client.post(f"/v1/dev/keys/{api_key.pk}/rotate", format="json").status_code == 200
    assert user_client.patch(f"/v1/dev/keys/{api_key.pk}", {"name": "x"}, format="json").status_code == 200
    assert user_client.delete(f"/v1/dev/keys/{api_key.pk}").status_code in (200, 204)

    own = user_client.post("/v1/dev/keys", {"name": "mine"}, format="json").json()
    assert user_client.post(f"/v1/dev/keys/{own['id']}/disable").status_code == 200
    enabled = user_client.post(f"/v1/dev/keys/{own['id']}/enable")
    assert (enabled.status_code, enabled.json()["status"]) == (200, "active")


# --- the service API and the commands ------------------------------------------------------------


@pytest.mark.parametrize("reason", reasons_with_secrets(), ids=SECRET_IDS)
def test_the_service_api_refuses_a_reason_holding_a_secret_with_422(owner, reason):
    api_key = issue(owner).api_key
    response = service("act_on_users").post(
        f"/v1/service/users/{owner.firebase_uid}/keys/revoke", data={"reason": reason}, format="json"
    )

    assert response.status_code == 422, response.content
    [entry] = response.json()["detail"]
    assert (entry["loc"], entry["msg"], entry["type"]) == (["body", "reason"], SECRET_IN_REASON, "secret_in_reason")
    assert reason not in response.content.decode()
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is None


@pytest.mark.parametrize("command", ["disableapikey", "revokeapikey"])
@pytest.mark.parametrize("reason", reasons_with_secrets(), ids=SECRET_IDS)
def test_the_commands_refuse_a_reason_holding_a_secret(owner, command, reason):
    api_key = issue(owner).api_key
    with pytest.raises(CommandError) as refused:
        run(command, str(api_key.pk), "--reason", reason)
    assert str(refused.value) == f"--reason: {SECRET_IN_REASON}"
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert (stored.disabled_at, stored.revoked_at) == (None, None)


def test_revokeapikey_keeps_its_reason(owner):
    api_key = issue(owner).api_key
    out, _ = run("revokeapikey", str(api_key.pk), "--reason", "  found in a public gist ")
    assert out.startswith(f"{api_key.pk}: revoked")
    assert KeyEvent.objects.get(api_key=api_key, action="revoked").details == {"reason": "found in a public gist"}


@pytest.mark.parametrize("reason", ["two\nlines", "x" * 201])
def test_revokeapikey_refuses_a_bad_reason_before_anything_changes(owner, reason):
    api_key = issue(owner).api_key
    with pytest.raises(CommandError, match="--reason must be"):
        run("revokeapikey", str(api_key.pk), "--reason", reason)
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is None


def test_enableapikey_lifts_a_hold(owner, admin_user):
    api_key = issue(owner).api_key
    lifecycle.disable_key(api_key, actor=staff_actor(admin_user))
    out, _ = run("enableapikey", str(api_key.pk))
    assert "enabled" in out and ApiKey.objects.get(pk=api_key.pk).disabled_at is None


@pytest.mark.parametrize("command", ["disableapikey", "revokeapikey"])
def test_the_commands_help_says_the_owner_is_shown_the_reason(command):
    from django.core.management import load_command_class

    out = load_command_class("apikeys", command).create_parser("manage.py", command).format_help()
    assert "shown to the key's owner in the email notice" in " ".join(out.split())
