"""The core every door calls: issue_key and revoke_key."""

import threading
import uuid

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from apikeys import crypto, lifecycle
from apikeys.models import ApiKey, Scope, User

pytestmark = [pytest.mark.django_db, pytest.mark.owner("uid-1", "one@example.com")]


def test_issue_key_stores_only_the_hash(owner):
    issued = lifecycle.issue_key(owner=owner, name=" Reporting ")
    stored = ApiKey.objects.get(pk=issued.api_key.pk)
    assert stored.name == "Reporting"
    assert stored.key_hash == crypto.hash_key(issued.plaintext)
    assert stored.key_prefix == crypto.display_prefix(issued.plaintext)
    assert issued.plaintext not in repr(issued)
    assert sorted(stored.scopes.values_list("code", flat=True)) == sorted(
        Scope.objects.filter(is_default=True).values_list("code", flat=True)
    )


def test_issue_key_applies_the_name_rules_for_every_door(owner):
    for bad in ["", "   ", "x" * 101, "omi_dev_" + "a" * 32]:
        with pytest.raises(ValidationError):
            lifecycle.issue_key(owner=owner, name=bad)
    assert not ApiKey.objects.exists()


def test_issue_key_collapses_duplicate_scopes(owner):
    read = Scope.objects.get(code="memories:read")
    issued = lifecycle.issue_key(owner=owner, name="n", scopes=[read, read])
    assert list(issued.api_key.scopes.all()) == [read]


def test_revoke_key_is_owner_only_and_idempotent(owner):
    issued = lifecycle.issue_key(owner=owner, name="n")
    stranger = User.objects.for_firebase("uid-2", None)
    with pytest.raises(ApiKey.DoesNotExist):
        lifecycle.revoke_key(owner=stranger, key_id=issued.api_key.pk)
    with pytest.raises(ApiKey.DoesNotExist):
        lifecycle.revoke_key(owner=owner, key_id=uuid.uuid4())
    first = lifecycle.revoke_key(owner=owner, key_id=issued.api_key.pk).revoked_at
    assert first is not None
    assert lifecycle.revoke_key(owner=owner, key_id=issued.api_key.pk).revoked_at == first


def test_an_email_longer_than_the_column_is_not_stored():
    user = User.objects.for_firebase("uid-long", "a" * 250 + "@example.com")
    assert User.objects.get(pk=user.pk).email == ""


def test_for_firebase_creates_once_and_syncs_email():
    first = User.objects.for_firebase("uid-3", "a@example.com")
    again = User.objects.for_firebase("uid-3", "b@example.com")
    assert first.pk == again.pk
    assert User.objects.get(pk=first.pk).email == "b@example.com"
    assert first.username == "firebase:uid-3"


def test_a_key_verifies_until_it_is_revoked(owner):
    issued = lifecycle.issue_key(owner=owner, name="n")
    assert lifecycle.verify_key(issued.plaintext) == issued.api_key
    lifecycle.revoke_key(owner=owner, key_id=issued.api_key.pk)
    assert lifecycle.verify_key(issued.plaintext) is None


@pytest.mark.parametrize("candidate", ["", "omi_dev_", "omi_dev_" + "0" * 32, "not a key", "omi_dev_" + "G" * 32])
def test_unknown_or_malformed_keys_do_not_verify(owner, candidate):
    lifecycle.issue_key(owner=owner, name="n")
    assert lifecycle.verify_key(candidate) is None


def test_revoke_api_key_revokes_any_owners_key_once(owner):
    issued = lifecycle.issue_key(owner=owner, name="n")
    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert lifecycle.revoke_api_key(api_key) is True
    first = api_key.revoked_at
    assert first is not None
    assert lifecycle.verify_key(issued.plaintext) is None
    stale = ApiKey.objects.get(pk=api_key.pk)
    stale.revoked_at = None  # a copy loaded before the revocation
    assert lifecycle.revoke_api_key(stale) is False
    assert stale.revoked_at == first


def test_a_request_token_issues_one_key_however_often_it_is_sent(owner):
    first = lifecycle.issue_key(owner=owner, name="n", request_token="token-1")
    with pytest.raises(lifecycle.AlreadyIssued) as already:
        lifecycle.issue_key(owner=owner, name="other name", request_token="token-1")
    assert already.value.api_key == first.api_key
    assert ApiKey.objects.count() == 1
    # Another owner's token space is separate, and no token means no deduplication.
    lifecycle.issue_key(owner=User.objects.for_firebase("uid-2", None), name="n", request_token="token-1")
    lifecycle.issue_key(owner=owner, name="n")
    lifecycle.issue_key(owner=owner, name="n")
    assert ApiKey.objects.count() == 4


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_token_issue_exactly_one_key():
    owner = User.objects.for_firebase("uid-race", None)
    barrier = threading.Barrier(6)
    outcomes = []

    def send():
        barrier.wait()
        try:
            issued = lifecycle.issue_key(owner=owner, name="double click", request_token="same-token")
            outcomes.append(("issued", issued.api_key.pk))
        except lifecycle.AlreadyIssued as already:
            outcomes.append(("already", already.api_key.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(kind for kind, _ in outcomes) == ["already"] * 5 + ["issued"]
    assert len({pk for _, pk in outcomes}) == 1
    assert ApiKey.objects.filter(owner=owner).count() == 1
