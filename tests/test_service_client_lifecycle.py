"""The core of service clients (apikeys/lifecycle/service_clients.py): names, issuing, rotating, revoking, stamping."""

import logging

import pytest
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection

from apikeys import crypto, lifecycle
from apikeys.lifecycle.service_clients import clean_service_name
from apikeys.models import ServiceClient

from .helpers import NOW

pytestmark = pytest.mark.django_db

TAKEN = "A service client with this name exists."


def lifecycle_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name.startswith("apikeys.lifecycle")]


def shown(token: str) -> str:
    """A service token's display prefix: ``omi_svc_`` and the first and last four characters of its secret."""
    return f"omi_svc_{token[8:12]}...{token[-4:]}"


def refusal(error: ValidationError) -> list[tuple[str, str, str | None]]:
    """(field, message, code) of each error, as the admin's form and the commands receive them."""
    return [(name, e.message, e.code) for name, errors in error.error_dict.items() for e in errors]


@pytest.mark.parametrize("name", ["", "   ", None])
def test_a_missing_name_is_refused_under_name(name):
    with pytest.raises(ValidationError) as raised:
        clean_service_name(name)

    assert list(raised.value.error_dict) == ["name"]
    assert not ServiceClient.objects.exists()


def test_a_name_is_stripped_and_a_taken_one_refused_saying_so():
    lifecycle.issue_service_client("omi-backend")

    assert clean_service_name("  another  ") == "another"
    with pytest.raises(ValidationError) as raised:
        clean_service_name(" omi-backend ")
    assert refusal(raised.value) == [("name", TAKEN, "unique")]
    with pytest.raises(ValidationError) as raised:
        lifecycle.issue_service_client("omi-backend")
    assert refusal(raised.value) == [("name", TAKEN, "unique")]
    assert ServiceClient.objects.count() == 1


def test_a_name_taken_between_the_check_and_the_insert_is_refused_the_same_way():
    """Another process creates a client of the same name after this one checked: the database's constraint decides."""
    rival = {}

    def race(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not rival and sql.startswith("SELECT") and "apikeys_serviceclient" in sql:
            rival["client"] = ServiceClient.objects.create(
                name="omi-backend", token_prefix="omi_svc_0000...0000", token_hash="0" * 64
            )
        return result

    with connection.execute_wrapper(race), pytest.raises(ValidationError) as raised:
        lifecycle.issue_service_client("omi-backend", permissions=["can_verify_keys"])

    assert rival, "the check ran"
    assert refusal(raised.value) == [("name", TAKEN, "unique")]
    assert list(ServiceClient.objects.values_list("pk", flat=True)) == [rival["client"].pk]


def test_unknown_permissions_are_a_programming_error_naming_them_sorted():
    with pytest.raises(ValueError) as raised:
        lifecycle.issue_service_client("svc", permissions=["can_fly", "can_verify_keys", "can_dance"])

    assert str(raised.value) == "Unknown service client permissions: can_dance, can_fly"
    assert not ServiceClient.objects.exists()


def test_issuing_stores_the_prefix_and_hash_of_the_token_returned_once(clock, caplog):
    caplog.set_level(logging.INFO, logger="apikeys.lifecycle")

    issued = lifecycle.issue_service_client("omi-backend", permissions=["can_verify_keys"])

    stored = ServiceClient.objects.get()
    assert stored.pk == issued.client.pk
    assert stored.token_prefix == issued.client.token_prefix == shown(issued.plaintext)
    assert stored.token_prefix.startswith("omi_svc_") and stored.token_prefix != ""
    assert stored.token_hash == crypto.hash_service_token(issued.plaintext)
    assert stored.permission_names == ["verify_keys"]
    assert lifecycle_lines(caplog) == [f"service client issued id={stored.pk} name=omi-backend"]
    assert issued.plaintext not in caplog.text


def test_rotating_changes_this_clients_token_and_time_and_no_other(clock, caplog):
    client = lifecycle.issue_service_client("rotated").client
    other = lifecycle.issue_service_client("bystander")
    caplog.set_level(logging.INFO, logger="apikeys.lifecycle")
    caplog.clear()
    clock.shift(90)

    rotated = lifecycle.rotate_service_client(client)

    stored = ServiceClient.objects.get(pk=client.pk)
    moment = NOW.replace(second=30, minute=1)
    assert (stored.rotated_at, client.rotated_at) == (moment, moment)
    assert stored.token_hash == client.token_hash == crypto.hash_service_token(rotated.plaintext)
    assert stored.token_prefix == client.token_prefix == shown(rotated.plaintext)
    assert lifecycle.find_service_client(rotated.plaintext) == client
    untouched = ServiceClient.objects.get(pk=other.client.pk)
    assert (untouched.token_hash, untouched.token_prefix, untouched.rotated_at) == (
        other.client.token_hash,
        other.client.token_prefix,
        None,
    )
    assert lifecycle.find_service_client(other.plaintext) == other.client
    assert lifecycle_lines(caplog) == [f"service client rotated id={client.pk} name=rotated"]


def test_a_revoked_client_is_not_rotated_and_the_message_names_it():
    client = lifecycle.issue_service_client("gone").client
    lifecycle.revoke_service_client(client)

    with pytest.raises(lifecycle.ServiceClientRevoked) as raised:
        lifecycle.rotate_service_client(client)

    assert str(raised.value) == "The service client 'gone' is revoked; its token cannot be rotated."


def test_revoking_stops_this_client_only_and_a_second_revocation_reports_false(clock, caplog):
    client = lifecycle.issue_service_client("revoked").client
    other = lifecycle.issue_service_client("bystander")
    caplog.set_level(logging.INFO, logger="apikeys.lifecycle")
    caplog.clear()

    assert lifecycle.revoke_service_client(client) is True

    assert client.revoked_at == NOW
    assert ServiceClient.objects.get(pk=client.pk).revoked_at == NOW
    assert ServiceClient.objects.get(pk=other.client.pk).revoked_at is None
    assert lifecycle.find_service_client(other.plaintext) == other.client
    stale = ServiceClient.objects.get(pk=client.pk)
    stale.revoked_at = None  # a copy read before the revocation
    assert lifecycle.revoke_service_client(stale) is False
    assert stale.revoked_at == NOW
    assert lifecycle_lines(caplog) == [f"service client revoked id={client.pk} name=revoked"]


@pytest.mark.django_db(transaction=True)  # as on the service API: no transaction around the stamp
def test_a_stamp_the_database_refuses_is_logged_naming_the_service_client(caplog):
    client = lifecycle.issue_service_client("stamped").client

    def locked(execute, sql, params, many, context):
        if sql.startswith("UPDATE"):
            raise OperationalError("database is locked")
        return execute(sql, params, many, context)

    caplog.set_level(logging.INFO, logger="apikeys.lifecycle")
    caplog.clear()
    with connection.execute_wrapper(locked):
        assert lifecycle.mark_service_client_used(client) is False

    assert lifecycle_lines(caplog) == [
        f"last_used_at of service client {client.pk} not stamped this time: OperationalError"
    ]
    assert lifecycle.mark_service_client_used(client) is True
    assert ServiceClient.objects.get(pk=client.pk).last_used_at is not None
