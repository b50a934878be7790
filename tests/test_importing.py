"""lifecycle.import_keys directly: what each record of another issuer becomes, and why one is refused.

The Omi importer and the importomikeys command are tested through their files in
tests/commands/; these tests give the core the records that a reader never sends
(a malformed hash, a duplicate id in one batch) and pin each outcome's details.
"""

import datetime
import hashlib
import logging
import uuid

import pytest

from apikeys import crypto, lifecycle
from apikeys.audit import Actor
from apikeys.lifecycle import ImportConflict, ImportedKey, ImportOutcome, ImportRefusal
from apikeys.models import ApiKey, KeyEvent

from .helpers import NOW, make_owner, scopes

pytestmark = [pytest.mark.django_db]

CREATED = NOW - datetime.timedelta(days=30)


def secret(n: int) -> str:
    return f"omi_dev_{n:032x}"


def record(n: int, owner, **changes) -> ImportedKey:
    """The issuer's record of key ``n``: id, document id, hash and prefix all derived from ``n``."""
    plaintext = secret(n)
    fields = {
        "key_id": uuid.UUID(int=n),
        "source_id": f"doc-{n}",
        "owner": owner,
        "name": f"imported {n}",
        "key_prefix": crypto.display_prefix(plaintext),
        "key_hash": crypto.hash_key(plaintext),
        "scopes": scopes("memories:read"),
        "created_at": CREATED,
        "source": {"file": "export.jsonl", "document": f"doc-{n}"},
    }
    return ImportedKey(**{**fields, **changes})


def rotated_record(n: int, new: int, owner, rotated_at, **changes) -> ImportedKey:
    """Key ``n``'s record after its issuer rotated it to the secret of ``new``."""
    plaintext = secret(new)
    return record(
        n,
        owner,
        key_hash=crypto.hash_key(plaintext),
        key_prefix=crypto.display_prefix(plaintext),
        rotated_at=rotated_at,
        **changes,
    )


def outcomes(results) -> list[tuple]:
    return [(r.outcome, r.reason, r.changes, r.revoked, r.conflict) for r in results]


@pytest.fixture
def owner():
    return make_owner("importing-owner")


def test_a_new_key_is_created_as_its_issuer_records_it_and_verifies(owner, clock):
    key = record(1, owner, scopes=scopes("memories:read", "goals:read"), last_used_at=CREATED, rotated_at=CREATED)
    actor = Actor.command("importomikeys")
    [result] = lifecycle.import_keys([key], actor=actor)
    assert outcomes([result]) == [(ImportOutcome.CREATED, None, (), False, None)]
    assert result.message == ""
    stored = ApiKey.objects.get(pk=key.key_id)
    assert (stored.owner, stored.name, stored.key_prefix, stored.key_hash) == (
        owner,
        key.name,
        key.key_prefix,
        key.key_hash,
    )
    assert (stored.created_at, stored.last_used_at, stored.rotated_at, stored.revoked_at) == (
        CREATED,
        CREATED,
        CREATED,
        None,
    )
    assert stored.omi_document_id == "doc-1"
    assert sorted(stored.scopes.values_list("code", flat=True)) == ["goals:read", "memories:read"]
    [event] = KeyEvent.objects.filter(api_key=stored)
    assert (event.action, event.at, event.actor_label) == (KeyEvent.Action.IMPORTED, NOW, actor.label)
    assert event.details == {
        "file": "export.jsonl",
        "document": "doc-1",
        "scopes": ["goals:read", "memories:read"],
    }
    verified = lifecycle.verify_key(secret(1))
    assert verified.api_key is not None and verified.api_key.pk == key.key_id


def test_a_key_whose_owner_may_hold_none_is_created_revoked(owner, clock):
    key = record(2, owner, revoke_reason="firebase_disabled")
    assert outcomes(lifecycle.import_keys([key])) == [(ImportOutcome.CREATED, None, (), True, None)]
    stored = ApiKey.objects.get(pk=key.key_id)
    assert stored.revoked_at == NOW
    assert KeyEvent.objects.get(api_key=stored).details["revoked"] == "firebase_disabled"
    assert lifecycle.verify_key(secret(2)).api_key is None


@pytest.mark.parametrize(
    ("changes", "reason", "message"),
    [
        ({"key_hash": "A" * 64}, ImportRefusal.BAD_HASH, "the hash is not 64 lowercase hex characters"),
        ({"key_hash": "fullkey:" + "a" * 64}, ImportRefusal.BAD_HASH, "the hash is not 64 lowercase hex characters"),
        ({"name": ""}, ImportRefusal.BAD_NAME, "the name breaks the rules for key names"),
        ({"name": "x" * 500}, ImportRefusal.BAD_NAME, "the name breaks the rules for key names"),
        (
            {"scopes": []},
            ImportRefusal.NO_SCOPES,
            "the key has no scope omikeys knows, and a key needs at least one",
        ),
    ],
)
def test_a_malformed_record_is_refused_and_nothing_is_written(owner, changes, reason, message):
    [result] = lifecycle.import_keys([record(3, owner, **changes)])
    assert outcomes([result]) == [(ImportOutcome.REFUSED, reason, (), False, None)]
    assert result.message == message
    assert not ApiKey.objects.exists() and not KeyEvent.objects.exists()


def test_in_one_batch_an_id_or_a_hash_is_taken_once(owner):
    first = record(4, owner)
    same_id = record(4, owner, source_id="doc-other", key_hash=crypto.hash_key(secret(5)))
    same_hash = record(6, owner, key_hash=first.key_hash)
    results = lifecycle.import_keys([first, same_id, same_hash])
    assert [(r.outcome, r.reason) for r in results] == [
        (ImportOutcome.CREATED, None),
        (ImportOutcome.REFUSED, ImportRefusal.ID_IN_USE),
        (ImportOutcome.REFUSED, ImportRefusal.HASH_IN_USE),
    ]
    assert results[1].message == "the key id belongs to another key"
    assert results[2].message == "another key already has this hash"
    assert list(ApiKey.objects.values_list("pk", flat=True)) == [first.key_id]


def test_a_hash_held_by_a_key_of_omikeys_current_or_replaced_is_refused(owner):
    issued = lifecycle.issue_key(owner=owner, name="here")
    rotated = lifecycle.rotate_key(issued.api_key, grace_seconds=3600)
    replaced_hash, current_hash = crypto.hash_key(issued.plaintext), crypto.hash_key(rotated.plaintext)
    results = lifecycle.import_keys([record(7, owner, key_hash=replaced_hash), record(8, owner, key_hash=current_hash)])
    assert [(r.outcome, r.reason) for r in results] == [(ImportOutcome.REFUSED, ImportRefusal.HASH_IN_USE)] * 2


def test_an_id_of_a_key_issued_here_or_of_another_document_is_refused(owner):
    issued = lifecycle.issue_key(owner=owner, name="here").api_key
    lifecycle.import_keys([record(9, owner)])
    results = lifecycle.import_keys([record(10, owner, key_id=issued.pk), record(9, owner, source_id="doc-elsewhere")])
    assert [(r.outcome, r.reason) for r in results] == [(ImportOutcome.REFUSED, ImportRefusal.ID_IN_USE)] * 2


def test_a_key_imported_before_for_another_owner_is_refused(owner):
    lifecycle.import_keys([record(11, owner)])
    [result] = lifecycle.import_keys([record(11, make_owner("someone-else"))])
    assert (result.outcome, result.reason) == (ImportOutcome.REFUSED, ImportRefusal.OWNER_CHANGED)
    assert result.message == "the key was imported before for another owner"
    assert ApiKey.objects.get(pk=uuid.UUID(int=11)).owner == owner


def test_the_same_record_again_changes_nothing(owner):
    key = record(12, owner, last_used_at=CREATED)
    lifecycle.import_keys([key])
    assert outcomes(lifecycle.import_keys([key])) == [(ImportOutcome.UNCHANGED, None, (), False, None)]
    assert KeyEvent.objects.count() == 1


def test_a_later_use_is_taken_and_an_earlier_one_is_not(owner):
    lifecycle.import_keys([record(13, owner)])  # never used
    first_use = CREATED + datetime.timedelta(days=1)
    assert outcomes(lifecycle.import_keys([record(13, owner, last_used_at=first_use)])) == [
        (ImportOutcome.UPDATED, None, ("last_used_at",), False, None)
    ]
    earlier = CREATED + datetime.timedelta(hours=1)
    assert lifecycle.import_keys([record(13, owner, last_used_at=earlier)])[0].outcome == ImportOutcome.UNCHANGED
    assert lifecycle.import_keys([record(13, owner, last_used_at=first_use)])[0].outcome == ImportOutcome.UNCHANGED
    assert ApiKey.objects.get(pk=uuid.UUID(int=13)).last_used_at == first_use
    assert KeyEvent.objects.count() == 1  # a use is no event


def test_the_issuers_later_rotation_is_taken_and_the_old_secret_stops(owner, clock):
    lifecycle.import_keys([record(14, owner)])
    rotation = CREATED + datetime.timedelta(days=2)
    actor = Actor.command("import")
    [result] = lifecycle.import_keys([rotated_record(14, 15, owner, rotation)], actor=actor)
    assert outcomes([result]) == [
        (
            ImportOutcome.UPDATED,
            None,
            ("key_hash", "key_prefix", "rotated_at", "previous_key_hash", "previous_key_expires_at"),
            False,
            None,
        )
    ]
    stored = ApiKey.objects.get(pk=uuid.UUID(int=14))
    assert (stored.key_hash, stored.key_prefix, stored.rotated_at) == (
        crypto.hash_key(secret(15)),
        crypto.display_prefix(secret(15)),
        rotation,
    )
    assert lifecycle.verify_key(secret(15)).api_key.pk == stored.pk
    assert lifecycle.verify_key(secret(14)).api_key is None
    event = KeyEvent.objects.filter(api_key=stored).order_by("at", "pk").last()
    assert (event.action, event.at, event.actor_label) == (KeyEvent.Action.IMPORTED, NOW, actor.label)
    assert event.details == {
        "file": "export.jsonl",
        "document": "doc-14",
        "updated": ["key_hash", "key_prefix", "rotated_at"],
    }


def test_an_issuer_rotation_ends_a_grace_period_given_here(owner, clock):
    lifecycle.import_keys([record(16, owner)])
    ApiKey.objects.filter(pk=uuid.UUID(int=16)).update(
        previous_key_hash=crypto.hash_key(secret(99)), previous_key_expires_at=NOW + datetime.timedelta(hours=1)
    )
    lifecycle.import_keys([rotated_record(16, 17, owner, CREATED + datetime.timedelta(days=1))])
    stored = ApiKey.objects.get(pk=uuid.UUID(int=16))
    assert (stored.previous_key_hash, stored.previous_key_expires_at) == (None, None)


def test_a_different_secret_without_a_later_rotation_is_refused(owner):
    lifecycle.import_keys([record(18, owner)])
    for rotated_at in (None, CREATED, CREATED - datetime.timedelta(days=1)):
        [result] = lifecycle.import_keys([rotated_record(18, 19, owner, rotated_at)])
        assert (result.outcome, result.reason) == (ImportOutcome.REFUSED, ImportRefusal.HASH_CHANGED)
        assert result.message == "the key's secret differs from the one imported before, with no later rotation"
    assert ApiKey.objects.get(pk=uuid.UUID(int=18)).key_hash == crypto.hash_key(secret(18))


def test_an_issuer_rotation_is_judged_against_the_last_rotation_not_the_creation(owner):
    first_rotation = CREATED + datetime.timedelta(days=5)
    lifecycle.import_keys([record(20, owner, rotated_at=first_rotation)])
    between = CREATED + datetime.timedelta(days=3)  # after the creation, before the rotation known here
    [result] = lifecycle.import_keys([rotated_record(20, 21, owner, between)])
    # Rotated since the issuer's record was written: omikeys' secret is the newer one, kept without a word.
    assert outcomes([result]) == [(ImportOutcome.UNCHANGED, None, (), False, None)]
    assert ApiKey.objects.get(pk=uuid.UUID(int=20)).key_hash == crypto.hash_key(secret(20))


def test_an_issuer_rotation_to_a_hash_another_key_holds_is_refused(owner):
    lifecycle.import_keys([record(22, owner), record(23, owner)])
    [result] = lifecycle.import_keys([rotated_record(22, 23, owner, CREATED + datetime.timedelta(days=1))])
    assert (result.outcome, result.reason) == (ImportOutcome.REFUSED, ImportRefusal.HASH_IN_USE)
    assert ApiKey.objects.get(pk=uuid.UUID(int=22)).key_hash == crypto.hash_key(secret(22))


def test_two_records_of_one_batch_cannot_rotate_to_the_same_hash(owner):
    lifecycle.import_keys([record(24, owner), record(25, owner)])
    later = CREATED + datetime.timedelta(days=1)
    results = lifecycle.import_keys([rotated_record(24, 26, owner, later), rotated_record(25, 26, owner, later)])
    assert [(r.outcome, r.reason) for r in results] == [
        (ImportOutcome.UPDATED, None),
        (ImportOutcome.REFUSED, ImportRefusal.HASH_IN_USE),
    ]


def test_a_key_rotated_here_keeps_its_secret_and_says_so(owner):
    lifecycle.import_keys([record(27, owner)])
    rotated = lifecycle.rotate_key(ApiKey.objects.get(pk=uuid.UUID(int=27)))
    later_use = CREATED + datetime.timedelta(days=1)
    far_later = CREATED + datetime.timedelta(days=400)
    [result] = lifecycle.import_keys([rotated_record(27, 28, owner, far_later, last_used_at=later_use)])
    assert outcomes([result]) == [(ImportOutcome.UPDATED, None, ("last_used_at",), False, ImportConflict.ROTATED_HERE)]
    [same] = lifecycle.import_keys([rotated_record(27, 28, owner, far_later, last_used_at=later_use)])
    assert outcomes([same]) == [(ImportOutcome.UNCHANGED, None, (), False, ImportConflict.ROTATED_HERE)]
    assert lifecycle.verify_key(rotated.plaintext).api_key is not None
    assert lifecycle.verify_key(secret(28)).api_key is None


def test_a_revocation_reason_revokes_a_key_imported_before_once(owner, clock):
    lifecycle.import_keys([record(29, owner)])
    gone = rotated_record(29, 30, owner, None, revoke_reason="firebase_deleted")  # a different hash too
    assert outcomes(lifecycle.import_keys([gone])) == [(ImportOutcome.UPDATED, None, ("revoked_at",), True, None)]
    stored = ApiKey.objects.get(pk=uuid.UUID(int=29))
    assert stored.revoked_at == NOW and stored.key_hash == crypto.hash_key(secret(29))
    event = KeyEvent.objects.get(api_key=stored, action=KeyEvent.Action.REVOKED)
    assert (event.at, event.details) == (NOW, {"reason": "firebase_deleted"})
    # A revoked key never changes again, whatever the issuer says next.
    again = record(29, owner, last_used_at=NOW, revoke_reason="firebase_deleted")
    assert outcomes(lifecycle.import_keys([again])) == [(ImportOutcome.UNCHANGED, None, (), False, None)]
    assert KeyEvent.objects.filter(api_key=stored).count() == 2


def test_the_log_says_how_many_keys_were_created_or_would_be(owner, caplog):
    caplog.set_level(logging.INFO, logger="apikeys.lifecycle")
    lifecycle.import_keys([record(31, owner), record(32, owner), record(33, owner, key_hash="bad")])
    lifecycle.import_keys([record(31, owner)])  # nothing created: no line
    lifecycle.import_keys([record(34, owner)], dry_run=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "apikeys.lifecycle"]
    assert lines == [
        "api keys imported created=2 batch=3",
        "api keys import dry run, nothing written: would create=1 batch=1",
    ]


def test_the_key_ids_are_stored_as_given(owner):
    key_id = uuid.UUID(hashlib.md5(b"any").hexdigest())
    lifecycle.import_keys([record(35, owner, key_id=key_id)])
    assert ApiKey.objects.get(pk=key_id).scopes.count() == 1
