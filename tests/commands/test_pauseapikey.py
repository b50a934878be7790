"""disableapikey and enableapikey: pausing and resuming keys by id, reporting each id they could not handle."""

import io
import json
import uuid

import pytest
from django.core.management import CommandError, call_command

from apikeys import lifecycle
from apikeys.models import ApiKey, KeyEvent

from ..helpers import expire
from .running import assert_made_by_command, run

pytestmark = [pytest.mark.django_db, pytest.mark.owner("local-uid-1", "owner@example.com")]

DISABLED = "Invalid API Key: this key is disabled."


def test_disableapikey_pauses_a_key_with_the_reason_and_enableapikey_resumes_it(owner):
    issued = lifecycle.issue_key(owner=owner, name="Reporting")
    described = f"{issued.api_key.key_prefix}, 'Reporting', owner {owner.email}"

    stdout, stderr = run("disableapikey", str(issued.api_key.pk), "--reason", "  checking a leak ")

    assert (stdout, stderr) == (f"{issued.api_key.pk}: disabled ({described}).\n", "")
    assert lifecycle.verify_key(issued.plaintext).rejection == DISABLED
    event = KeyEvent.objects.get(action="disabled")
    assert_made_by_command(event, "disableapikey")
    assert event.details == {"reason": "checking a leak"}

    stdout, stderr = run("enableapikey", str(issued.api_key.pk))

    assert (stdout, stderr) == (f"{issued.api_key.pk}: enabled ({described}).\n", "")
    assert lifecycle.verify_key(issued.plaintext).api_key == issued.api_key
    assert_made_by_command(KeyEvent.objects.get(action="enabled"), "enableapikey")


def test_a_key_already_in_that_state_is_reported_not_an_error(owner):
    api_key = lifecycle.issue_key(owner=owner, name="n").api_key
    assert "already enabled" in run("enableapikey", str(api_key.pk))[0]
    run("disableapikey", str(api_key.pk))
    first = ApiKey.objects.get(pk=api_key.pk).disabled_at
    assert "already disabled" in run("disableapikey", str(api_key.pk), str(api_key.pk))[0]
    assert ApiKey.objects.get(pk=api_key.pk).disabled_at == first
    assert KeyEvent.objects.filter(action="disabled").count() == 1


def test_enabling_an_expired_key_says_it_still_does_not_verify(owner):
    api_key = lifecycle.issue_key(owner=owner, name="lapsed").api_key
    lifecycle.disable_key(api_key)
    expire(api_key)
    stdout, _ = run("enableapikey", str(api_key.pk))
    assert stdout.endswith("It is expired, so it still does not verify.\n")


@pytest.mark.parametrize("command", ["disableapikey", "enableapikey"])
def test_a_revoked_key_fails_and_the_others_are_still_handled(owner, command):
    working = lifecycle.issue_key(owner=owner, name="working").api_key
    if command == "enableapikey":
        lifecycle.disable_key(working)
    revoked = lifecycle.issue_key(owner=owner, name="gone").api_key
    lifecycle.revoke_key(revoked)
    unknown = uuid.uuid4()
    stdout, stderr = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError) as error:
        call_command(command, "bogus", str(revoked.pk), str(unknown), str(working.pk), stdout=stdout, stderr=stderr)

    verb = command.removesuffix("apikey") + "d"
    assert str(error.value) == (
        f"3 of 4 key ids failed. The valid ones were still handled: 1 {verb}, 0 already {verb}."
    )
    assert stderr.getvalue().splitlines() == [
        f"'bogus': not a key id. Key ids are UUIDs such as {uuid.UUID(int=0)}.",
        f"{revoked.pk}: revoked at {ApiKey.objects.get(pk=revoked.pk).revoked_at.isoformat(timespec='seconds')}; "
        f"a revoked key cannot change ({revoked.key_prefix}, 'gone', owner owner@example.com).",
        f"{unknown}: no API key has this id.",
    ]
    assert stdout.getvalue().startswith(f"{working.pk}: {verb} (")
    assert ApiKey.objects.get(pk=revoked.pk).disabled_at is None


def test_all_ids_failing_is_an_error(owner):
    with pytest.raises(CommandError, match="No key was disabled: the id failed."):
        run("disableapikey", str(uuid.uuid4()))
    with pytest.raises(CommandError, match="No key was enabled: all 2 ids failed."):
        run("enableapikey", "x", "y")


@pytest.mark.parametrize("reason", ["two\nlines", "x" * 201])
def test_a_bad_reason_is_refused_before_anything_changes(owner, reason):
    api_key = lifecycle.issue_key(owner=owner, name="n").api_key
    with pytest.raises(CommandError, match="--reason must be"):
        run("disableapikey", str(api_key.pk), "--reason", reason)
    assert ApiKey.objects.get(pk=api_key.pk).disabled_at is None


def test_listapikeys_marks_a_disabled_key(owner):
    paused = lifecycle.issue_key(owner=owner, name="paused").api_key
    lifecycle.issue_key(owner=owner, name="working")
    lifecycle.disable_key(paused)

    stdout, _ = run("listapikeys")

    rows = {line.split()[2]: line for line in stdout.splitlines()[1:-1]}
    assert rows["paused"].endswith("disabled") and rows["working"].endswith("active")
    assert stdout.splitlines()[-1] == "2 keys (1 active, 1 disabled)."
    listed = {item["name"]: item for item in json.loads(run("listapikeys", "--json")[0])}
    assert listed["paused"]["status"] == "disabled" and listed["paused"]["disabled_at"] is not None


def test_the_commands_send_key_disabled_and_key_enabled(owner):
    from apikeys import webhooks
    from apikeys.models import Event

    webhooks.register_endpoint("http://127.0.0.1:9/hooks", ["key.disabled", "key.enabled"])
    api_key = lifecycle.issue_key(owner=owner, name="hooked").api_key

    run("disableapikey", str(api_key.pk))
    run("enableapikey", str(api_key.pk))

    payloads = [event.payload for event in Event.objects.order_by("created_at")]
    assert [payload["type"] for payload in payloads] == ["key.disabled", "key.enabled"]
    assert [payload["data"]["actor"]["kind"] for payload in payloads] == ["command", "command"]
    assert payloads[0]["data"]["actor"]["label"].startswith("disableapikey (run by ")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("command", ["disableapikey", "revokeapikey"])
def test_several_keys_at_once_queue_one_notice_mail_per_owner_not_one_per_key(settings, command):
    from django_q.models import OrmQ

    from ..helpers import issue, make_owner

    settings.OMIKEYS_SEND_EMAIL = True
    ann, ben = make_owner("uid-ann", "ann@example.com"), make_owner("uid-ben", "ben@example.com")
    keys = [issue(ann, f"ann {n}").api_key for n in range(3)] + [issue(ben, "ben").api_key]
    OrmQ.objects.all().delete()

    call_command(command, *[str(api_key.pk) for api_key in keys], stdout=io.StringIO())

    assert KeyEvent.objects.filter(action__in=["disabled", "revoked"], actor_kind="command").count() == 4
    assert OrmQ.objects.count() == 2  # one sending task for each of the two owners


@pytest.mark.parametrize("command", ["disableapikey", "enableapikey"])
def test_a_malformed_id_is_refused_without_a_query(django_assert_num_queries, command):
    stderr = io.StringIO()
    with django_assert_num_queries(0), pytest.raises(CommandError, match="No key was"):
        call_command(command, "not-a-uuid", stdout=io.StringIO(), stderr=stderr)
    assert "'not-a-uuid': not a key id" in stderr.getvalue()
