"""revokeapikey: revoking keys by id, reporting each id it could not handle."""

import io
import uuid

import pytest
from django.core.management import CommandError, call_command

from apikeys import lifecycle
from apikeys.models import ApiKey, KeyEvent

from .running import assert_made_by_command, run

pytestmark = [pytest.mark.django_db, pytest.mark.owner("local-uid-1", "owner@example.com")]


def test_revokeapikey_revokes_a_key_so_it_stops_verifying(owner):
    issued = lifecycle.issue_key(owner=owner, name="Reporting")
    stdout, stderr = run("revokeapikey", str(issued.api_key.pk))
    assert stdout == f"{issued.api_key.pk}: revoked ({issued.api_key.key_prefix}, 'Reporting', owner {owner.email}).\n"
    assert stderr == ""
    assert lifecycle.verify_key(issued.plaintext).api_key is None


def test_revokeapikey_reports_an_already_revoked_key_without_failing(owner):
    issued = lifecycle.issue_key(owner=owner, name="n")
    lifecycle.revoke_key(issued.api_key)
    revoked_at = ApiKey.objects.get(pk=issued.api_key.pk).revoked_at
    stdout, _ = run("revokeapikey", str(issued.api_key.pk))
    assert f"already revoked at {revoked_at.isoformat(timespec='seconds')}" in stdout
    assert ApiKey.objects.get(pk=issued.api_key.pk).revoked_at == revoked_at


def test_revokeapikey_names_an_unknown_id_and_fails():
    unknown = uuid.uuid4()
    stderr = io.StringIO()
    with pytest.raises(CommandError, match="No key was revoked"):
        call_command("revokeapikey", str(unknown), stdout=io.StringIO(), stderr=stderr)
    assert f"{unknown}: no API key has this id." in stderr.getvalue()


def test_revokeapikey_rejects_a_malformed_id_without_a_query(django_assert_num_queries):
    stderr = io.StringIO()
    with django_assert_num_queries(0), pytest.raises(CommandError, match="No key was revoked"):
        call_command("revokeapikey", "not-a-uuid", stdout=io.StringIO(), stderr=stderr)
    assert "'not-a-uuid': not a key id" in stderr.getvalue()


def test_revokeapikey_still_revokes_the_valid_ids_in_a_mixed_list(owner):
    first = lifecycle.issue_key(owner=owner, name="first")
    second = lifecycle.issue_key(owner=owner, name="second")
    lifecycle.revoke_key(second.api_key)
    unknown = uuid.uuid4()
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as error:
        call_command(
            "revokeapikey", "bogus", str(first.api_key.pk), str(unknown), str(second.api_key.pk),
            stdout=stdout, stderr=stderr,
        )  # fmt: skip
    assert str(error.value) == (
        "2 of 4 key ids failed. The valid ones were still handled: 1 revoked, 1 already revoked."
    )
    assert lifecycle.verify_key(first.plaintext).api_key is None
    assert stdout.getvalue().splitlines()[0].startswith(f"{first.api_key.pk}: revoked")
    assert stdout.getvalue().splitlines()[1].startswith(f"{second.api_key.pk}: already revoked at")
    assert len(stdout.getvalue().splitlines()) == 2
    assert stderr.getvalue().splitlines() == [
        "'bogus': not a key id. Key ids are UUIDs such as 00000000-0000-0000-0000-000000000000.",
        f"{unknown}: no API key has this id.",
    ]


def test_revokeapikey_handles_a_repeated_id_once(owner):
    issued = lifecycle.issue_key(owner=owner, name="n")
    key_id = str(issued.api_key.pk)
    stdout, _ = run("revokeapikey", key_id, key_id.upper())
    assert stdout.splitlines() == [f"{key_id}: revoked ({issued.api_key.key_prefix}, 'n', owner {owner.email})."]


def test_revokeapikey_records_the_command_as_the_actor(owner):
    issued = lifecycle.issue_key(owner=owner, name="n")
    run("revokeapikey", str(issued.api_key.pk))
    (event,) = KeyEvent.objects.filter(api_key=issued.api_key, action="revoked")
    assert_made_by_command(event, "revokeapikey")
