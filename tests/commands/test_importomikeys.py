"""importomikeys: Omi's exported keys imported, then verified over the HTTP API with their Omi secrets."""

import datetime
import gc
import io
import json
import sqlite3
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from firebase_admin import auth

from apikeys import crypto, firebase, lifecycle
from apikeys.importers import omi
from apikeys.management.commands.importomikeys import render
from apikeys.models import ApiKey, KeyEvent, User

from .. import firebase_emulator
from ..helpers import issue, key_client, make_owner
from ..omi_exports import document, firestore_auto_id, key_id, omi_key, write_export
from .running import DEFAULT_SCOPES, run

pytestmark = pytest.mark.django_db


def accounts(*states: str) -> list[firebase_emulator.EmulatorUser]:
    """New Auth Emulator accounts, one per state ("active", "disabled"), made over its REST API."""
    made = []
    for _ in states:
        uid = f"omi-{uuid.uuid4().hex[:16]}"
        made.append(firebase_emulator.EmulatorUser(uid=uid, email=f"{uid}@example.com", id_token=""))
    firebase_emulator.batch_create(
        [
            {"localId": user.uid, "email": user.email, "disabled": state == "disabled"}
            for user, state in zip(made, states, strict=True)
        ]
    )
    return made


def import_file(path, *args: str) -> tuple[dict, str]:
    """Run the command with --json, expecting success; returns (the report, stderr)."""
    stdout, stderr = run("importomikeys", str(path), "--json", *args)
    return json.loads(stdout), stderr


def import_with_refusals(path, *args: str) -> tuple[dict, str]:
    """Run the command with --json, expecting exit status 1; returns (the report, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("importomikeys", str(path), "--json", *args, stdout=stdout, stderr=stderr)
    assert refused.value.returncode == 1
    return json.loads(stdout.getvalue()), stderr.getvalue()


def verifies(plaintext: str, api) -> dict | None:
    """The body of GET /v1/dev/key for this key, or None when it is refused (401)."""
    response = key_client(plaintext).get("/v1/dev/key")
    if response.status_code == 401:
        return None
    assert response.status_code == 200, response.content
    return response.json()


def test_every_shape_of_omi_record_imports_and_its_secret_verifies_for_its_owner(tmp_path, api):
    ann, ben = accounts("active", "active")
    keys = [omi_key() for _ in range(14)]
    raw_key_in_name = "prod " + keys[0].plaintext
    auto_id, another_auto_id = firestore_auto_id(), firestore_auto_id()
    lines = [
        # Today's record: UUID document id, ISO times, app_id, scopes.
        document(keys[0], ann.uid, last_used_at="2025-04-01T10:00:00Z", scopes=["memories:read", "goals:write"]),
        # Before scopes existed: a Firestore auto id, scopes null, {_seconds, _nanoseconds} times.
        document(
            keys[1],
            ann.uid,
            document_id=auto_id,
            scopes=None,
            app_id=...,
            created_at={"_seconds": 1700000000, "_nanoseconds": 123456789},
            last_used_at={"_seconds": 1700000600, "_nanoseconds": 0},
        ),
        # scopes absent; protobuf JSON times, seconds as a string.
        document(
            keys[2],
            ben.uid,
            scopes=...,
            created_at={"seconds": "1690000000", "nanos": 5000},
            last_used_at={"seconds": 1690000100},
        ),
        # A newer record: rotated, with its own app_id; a naive ISO time (UTC).
        document(keys[3], ben.uid, rotated_at="2025-05-05T05:05:05", app_id="developer_api", name="  Rotated  "),
        # A name holding a raw key, and an empty name: Omi's legacy name. No prefix, and a malformed one.
        document(keys[4], ann.uid, name=raw_key_in_name, key_prefix=...),
        document(keys[5], ann.uid, name="   ", key_prefix="omi_dev_" + "a" * 32),
        # An unknown scope beside known ones: dropped; the id field differs from the document id.
        document(keys[6], ben.uid, document_id=another_auto_id, id="stale-id", scopes=["tasks:read", "memories:read"]),
        # created_at unusable: the export's document creation time; last_used_at unusable: none.
        {
            **document(keys[7], ben.uid, created_at="yesterday", last_used_at={"x": 1}),
            "create_time": "2024-01-02T03:04:05Z",
        },
        # created_at missing, no creation time: Omi shows the epoch.
        document(keys[8], ben.uid, created_at=...),
        # Tool wrappers of timestamps.
        document(keys[9], ann.uid, created_at={"__datatype__": "timestamp", "value": {"_seconds": 1600000000}}),
        document(keys[10], ann.uid, created_at={"__time__": "2021-02-03T04:05:06.789Z"}, name="x" * 150),
        document(keys[11], ann.uid, name="tab\there\nnewline"),
        # No id field inside, or a null one (older records): nothing to repair, the document id is the id.
        document(keys[12], ann.uid, id=...),
        document(keys[13], ann.uid, id=None),
    ]
    path = write_export(tmp_path / "dev_api_keys.ndjson", lines)

    report, stderr = import_file(path)

    assert (report["documents_read"], report["created"], report["refused"]) == (14, 14, 0)
    assert report["owners_created"] == 2
    assert report["default_scopes_given"] == 2
    assert report["unknown_scopes"] == {"tasks:read": 1}
    assert report["repaired"] == {
        "created_at": 2,
        "document_id": 1,
        "key_prefix": 2,
        "last_used_at": 1,
        "name": 4,
    }
    assert "unknown scopes 'tasks:read' dropped" in stderr
    # UUID ids are kept as they are; other ids map to a stable uuid5 and are kept on the key.
    assert ApiKey.objects.get(omi_document_id=lines[0]["id"]).pk == uuid.UUID(lines[0]["id"])
    legacy = ApiKey.objects.get(omi_document_id=auto_id)
    assert legacy.pk == uuid.uuid5(omi.OMI_DOCUMENT_NAMESPACE, auto_id)
    assert legacy.created_at == datetime.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=datetime.UTC)
    assert legacy.last_used_at == datetime.datetime(2023, 11, 14, 22, 23, 20, tzinfo=datetime.UTC)
    by_line = {i: ApiKey.objects.get(omi_document_id=line["id"]) for i, line in enumerate(lines)}
    assert by_line[2].created_at == datetime.datetime(2023, 7, 22, 4, 26, 40, 5, tzinfo=datetime.UTC)
    assert by_line[3].rotated_at == datetime.datetime(2025, 5, 5, 5, 5, 5, tzinfo=datetime.UTC)
    assert by_line[3].name == "Rotated"
    assert (by_line[4].name, by_line[4].key_prefix) == ("Legacy Developer API key", "omi_dev_legacy")
    assert (by_line[5].name, by_line[5].key_prefix) == ("Legacy Developer API key", "omi_dev_legacy")
    assert by_line[0].key_prefix == keys[0].key_prefix
    assert (by_line[7].created_at, by_line[7].last_used_at) == (
        datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        None,
    )
    assert by_line[8].created_at == omi.EPOCH
    assert by_line[9].created_at == datetime.datetime(2020, 9, 13, 12, 26, 40, tzinfo=datetime.UTC)
    assert by_line[10].created_at == datetime.datetime(2021, 2, 3, 4, 5, 6, 789000, tzinfo=datetime.UTC)
    assert len(by_line[10].name) == 100 and by_line[10].name.endswith("…")
    assert by_line[11].name == "tab here newline"
    # The hash is stored as Omi stored it; the owners' emails come from Firebase.
    assert by_line[0].key_hash == keys[0].hashed_key == crypto.hash_key(keys[0].plaintext)
    assert User.objects.get(firebase_uid=ann.uid).email == ann.email
    assert User.objects.get(firebase_uid=ben.uid).email == ben.email
    # Then each Omi secret works here, for its owner, with its scopes (verifying stamps last_used_at).
    expected = {
        0: (ann, ["goals:write", "memories:read"]),
        1: (ann, DEFAULT_SCOPES),
        2: (ben, DEFAULT_SCOPES),
        6: (ben, ["memories:read"]),
    }
    for index, line in enumerate(lines):
        owner, scopes = expected.get(index, (ann if line["data"]["user_id"] == ann.uid else ben, None))
        body = verifies(keys[index].plaintext, api)
        assert body is not None, f"line {index + 1} does not verify"
        assert body["id"] == str(key_id(line["id"]))
        assert body["uid"] == owner.uid
        assert body["scopes"] == (scopes or ["conversations:read", "memories:read"])


def test_each_key_records_an_imported_event_with_the_file_and_document(tmp_path):
    (ann,) = accounts("active")
    lines = [document(omi_key(), ann.uid) for _ in range(3)]
    import_file(write_export(tmp_path / "export-1.ndjson", lines))

    for number, line in enumerate(lines, start=1):
        (event,) = KeyEvent.objects.filter(api_key__omi_document_id=line["id"])
        assert event.action == "imported"
        assert (event.actor_kind, event.via) == ("command", "command")
        assert event.actor_label.startswith("importomikeys (run by ")
        assert event.details["file"] == "export-1.ndjson"
        assert event.details["document_id"] == line["id"]
        assert event.details["line"] == number
        assert event.details["scopes"] == ["conversations:read", "memories:read"]
        assert event.at is not None


def test_the_collector_leaves_the_process_objects_alone_during_an_import_and_only_then(tmp_path, monkeypatch):
    (ann,) = accounts("active")
    path = write_export(tmp_path / "export.ndjson", [document(omi_key(), ann.uid) for _ in range(3)])
    frozen_while_writing = []
    import_keys = lifecycle.import_keys

    def watching(*args, **kwargs):
        frozen_while_writing.append(gc.get_freeze_count())
        return import_keys(*args, **kwargs)

    monkeypatch.setattr(lifecycle, "import_keys", watching)
    before = gc.get_freeze_count()

    report, _ = import_file(path)

    assert report["created"] == 3
    assert frozen_while_writing and all(count > before for count in frozen_while_writing)
    assert gc.get_freeze_count() == before


def test_the_collector_is_given_back_its_view_when_the_import_cannot_start(tmp_path, monkeypatch):
    (ann,) = accounts("active")
    path = write_export(tmp_path / "export.ndjson", [document(omi_key(), ann.uid)])
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "no-such-folder"))  # the stores' folder cannot be made
    before = gc.get_freeze_count()

    with pytest.raises((OSError, CommandError)):
        import_file(path)

    assert gc.get_freeze_count() == before


def test_a_freeze_the_caller_made_is_neither_repeated_nor_undone(tmp_path):
    (ann,) = accounts("active")
    path = write_export(tmp_path / "export.ndjson", [document(omi_key(), ann.uid)])
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert import_file(path)[0]["created"] == 1
        assert 0 < gc.get_freeze_count() <= frozen  # frozen objects freed meanwhile leave it
    finally:
        gc.unfreeze()


def test_a_gzip_file_imports_as_the_plain_one_does(tmp_path, api):
    (ann,) = accounts("active")
    key = omi_key()
    path = write_export(tmp_path / "dev_api_keys.ndjson.gz", [document(key, ann.uid)], gz=True)

    report, _ = import_file(path)

    assert report["created"] == 1
    assert verifies(key.plaintext, api)["uid"] == ann.uid


def test_bad_lines_are_reported_by_line_number_and_reason_and_the_rest_imports(tmp_path, api):
    (ann,) = accounts("active")
    good, twin, taken = omi_key(), omi_key(), issue(make_owner("native-owner"), "native")
    dup_id = str(uuid.uuid4())
    lines = [
        document(good, ann.uid, document_id=dup_id),  # 1: imported
        "this is not json",  # 2
        document(omi_key(), ann.uid, hashed_key=...),  # 3
        document(omi_key(), ann.uid, hashed_key="ab" * 31),  # 4: 62 characters
        document(omi_key(), ann.uid, hashed_key=good.hashed_key.upper()),  # 5: Omi's lookups are lowercase
        document(twin, ann.uid),  # 6: imported
        document(twin, ann.uid),  # 7: the same hash as line 6
        document(omi_key(), ann.uid, hashed_key=crypto.hash_key(taken.plaintext)),  # 8: an omikeys key's hash
        document(omi_key(), ann.uid, document_id=dup_id),  # 9: the document of line 1 again
        document(omi_key(), " padded"),  # 10: not a uid
        document(omi_key(), ""),  # 11
        {"id": "no-data"},  # 12
        b"\xff\xfe not utf-8",  # 13
        "",  # 14: blank lines are skipped, not counted
        {"id": "a/b", "data": {}},  # 15: not a Firestore document id
        document(omi_key(), ann.uid, scopes=["tasks:read"]),  # 16: no known scope left
        document(omi_key(), ann.uid, scopes=[]),  # 17: Omi's empty list grants nothing
        document(omi_key(), ann.uid, document_id="x" + omi_key().plaintext),  # 18: never keep or print a secret
    ]
    path = write_export(tmp_path / "bad.ndjson", lines)

    report, stderr = import_with_refusals(path)

    assert report["documents_read"] == 17
    assert report["created"] == 2
    assert report["refused"] == 15
    assert report["refused_by_reason"] == {
        "bad_document": 1,
        "bad_document_id": 2,
        "bad_hash": 2,
        "bad_user_id": 2,
        "duplicate_document": 1,
        "hash_in_use": 2,
        "missing_hash": 1,
        "no_scopes": 2,
        "not_json": 1,
        "not_utf8": 1,
    }
    assert [(refusal["line"], refusal["reason"]) for refusal in report["refusals"]] == [
        (2, "not_json"),
        (3, "missing_hash"),
        (4, "bad_hash"),
        (5, "bad_hash"),
        (9, "duplicate_document"),
        (10, "bad_user_id"),
        (11, "bad_user_id"),
        (12, "bad_document"),
        (13, "not_utf8"),
        (15, "bad_document_id"),
        (18, "bad_document_id"),
        (7, "hash_in_use"),
        (8, "hash_in_use"),
        (16, "no_scopes"),
        (17, "no_scopes"),
    ]
    assert "line 7 (document " in stderr and "the same hashed_key is on line 6" in stderr
    assert f"line 9 (document {dup_id}): refused, the same document id is on line 1" in stderr
    assert "line 2: refused, the line is not JSON [not_json]" in stderr
    assert verifies(good.plaintext, api) and verifies(twin.plaintext, api)
    # The omikeys key whose hash an Omi record repeated is untouched and still verifies.
    assert verifies(taken.plaintext, api)["name"] == "native"
    assert ApiKey.objects.filter(omi_document_id__isnull=False).count() == 2


def test_repeats_are_found_within_and_across_the_reading_processs_chunks(tmp_path, api, monkeypatch):
    # The reading process marks repeated ids and hashes a chunk of lines at a time: three lines here,
    # so that repeats fall within one chunk and across chunks, and batches of two are written meanwhile.
    monkeypatch.setattr(omi, "READ_CHUNK", 3)
    (ann,) = accounts("active")
    first, second, third, fourth, fifth = (omi_key() for _ in range(5))
    ids = {name: str(uuid.uuid4()) for name in ("a", "b", "f", "z", "y")}
    lines = [
        document(first, ann.uid, document_id=ids["a"]),  # 1: imported
        document(second, ann.uid, document_id=ids["b"]),  # 2: imported
        document(third, ann.uid),  # 3: imported
        document(omi_key(), ann.uid, document_id=ids["a"]),  # 4: line 1's id, in the next chunk
        document(omi_key(), ann.uid, document_id=ids["f"], hashed_key=second.hashed_key),  # 5: line 2's hash
        document(omi_key(), ann.uid, document_id=ids["f"]),  # 6: line 5's id, in the same chunk (5 was refused)
        document(fourth, ann.uid),  # 7: imported
        document(omi_key(), ann.uid, hashed_key=fourth.hashed_key),  # 8: line 7's hash, in the same chunk
        document(omi_key(), ann.uid, document_id=ids["z"], hashed_key=...),  # 9: refused, but its id is taken
        document(omi_key(), ann.uid, document_id=ids["z"]),  # 10: line 9's id
        document(fifth, " padded", document_id=ids["y"]),  # 11: refused before its hash counts
        document(fifth, ann.uid),  # 12: imported: line 11 offered no key
    ]
    path = write_export(tmp_path / "repeats.ndjson", lines)

    report, stderr = import_with_refusals(path, "--batch-size", "2")

    assert sorted((refusal["line"], refusal["reason"]) for refusal in report["refusals"]) == [
        (4, "duplicate_document"),
        (5, "hash_in_use"),
        (6, "duplicate_document"),
        (8, "hash_in_use"),
        (9, "missing_hash"),
        (10, "duplicate_document"),
        (11, "bad_user_id"),
    ]
    assert f"line 4 (document {ids['a']}): refused, the same document id is on line 1" in stderr
    assert f"line 6 (document {ids['f']}): refused, the same document id is on line 5" in stderr
    assert f"line 10 (document {ids['z']}): refused, the same document id is on line 9" in stderr
    assert "the same hashed_key is on line 2" in stderr and "the same hashed_key is on line 7" in stderr
    assert report["created"] == 5
    for key in (first, second, third, fourth, fifth):
        assert verifies(key.plaintext, api)["uid"] == ann.uid
    # The store the reading process kept is what --prune reads: a second run prunes nothing it held.
    again, _ = import_with_refusals(path, "--batch-size", "2", "--prune")
    assert (again["unchanged"], again["pruned"]) == (5, 0)


def test_a_failing_store_of_repeats_stops_the_import_after_the_lines_it_checked(tmp_path, monkeypatch):
    # A disk that fails under the reading process's SQLite file cannot be made on demand: the store's
    # third chunk raises what SQLite raises then (the seam is SeenStore.mark, in the forked reader).
    monkeypatch.setattr(omi, "READ_CHUNK", 2)
    real_mark, calls = omi.SeenStore.mark, []

    def mark(store, lines):
        calls.append(len(lines))
        if len(calls) >= 3:
            raise sqlite3.OperationalError("disk I/O error")
        real_mark(store, lines)

    monkeypatch.setattr(omi.SeenStore, "mark", mark)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(temporary))
    (ann,) = accounts("active")
    keys = [omi_key() for _ in range(6)]
    path = write_export(tmp_path / "export.ndjson", [document(key, ann.uid) for key in keys])

    with pytest.raises(CommandError, match="the temporary file of the document ids and hashes seen failed") as failed:
        call_command("importomikeys", str(path), "--json", stdout=io.StringIO(), stderr=io.StringIO())

    assert "disk I/O error" in str(failed.value) and "run again" in str(failed.value)
    # The two chunks checked before the failure are imported; the lines that could not be checked are not.
    assert set(ApiKey.objects.values_list("key_hash", flat=True)) == {key.hashed_key for key in keys[:4]}
    assert not list(temporary.iterdir())  # the stores' folder went with the import
    monkeypatch.undo()
    report, _ = import_file(path)
    assert (report["created"], report["unchanged"]) == (2, 4)


def test_prune_reads_the_reading_processs_store_only_if_it_exists(tmp_path):
    missing = tmp_path / "lines.sqlite3"

    with pytest.raises(sqlite3.OperationalError):
        omi.SeenStore(missing, finished=True)

    assert not missing.exists()  # never made empty, which would make every imported key look gone


def test_keys_of_disabled_and_deleted_firebase_accounts_are_imported_revoked(tmp_path, api):
    active, disabled = accounts("active", "disabled")
    deleted_uid = f"omi-deleted-{uuid.uuid4().hex[:12]}"
    keys = {name: omi_key() for name in ("active", "disabled", "deleted")}
    lines = [
        document(keys["active"], active.uid),
        document(keys["disabled"], disabled.uid),
        document(keys["deleted"], deleted_uid),
    ]

    report, stderr = import_file(write_export(tmp_path / "owners.ndjson", lines))

    assert (report["created"], report["revoked"], report["refused"]) == (3, 2, 0)
    assert report["owners_not_eligible"] == {"firebase_deleted": 1, "firebase_disabled": 1}
    assert f"owner uid {disabled.uid}: the Firebase account is disabled; its keys are imported revoked" in stderr
    assert f"owner uid {deleted_uid}: the Firebase account is deleted; its keys are imported revoked" in stderr
    assert verifies(keys["active"].plaintext, api)["uid"] == active.uid
    assert verifies(keys["disabled"].plaintext, api) is None
    assert verifies(keys["deleted"].plaintext, api) is None
    revoked = ApiKey.objects.get(omi_document_id=lines[1]["id"])
    assert revoked.is_revoked
    assert revoked.events.get().details["revoked"] == "firebase_disabled"
    assert User.objects.get(firebase_uid=disabled.uid).email == disabled.email


def test_inactive_owners_refuse_skips_their_keys(tmp_path, api):
    active, disabled = accounts("active", "disabled")
    lines = [document(omi_key(), active.uid), document(omi_key(), disabled.uid)]

    report, stderr = import_with_refusals(write_export(tmp_path / "o.ndjson", lines), "--inactive-owners", "refuse")

    assert (report["created"], report["refused_by_reason"]) == (1, {"owner_disabled": 1})
    assert not ApiKey.objects.filter(omi_document_id=lines[1]["id"]).exists()


def test_a_key_whose_owner_is_disabled_later_is_revoked_by_the_next_import(tmp_path, api):
    (ann,) = accounts("active")
    key = omi_key()
    path = write_export(tmp_path / "e.ndjson", [document(key, ann.uid)])
    import_file(path)
    auth.update_user(ann.uid, disabled=True, app=firebase.get_app())

    report, _ = import_file(path)

    assert (report["updated"], report["revoked"]) == (1, 1)
    assert verifies(key.plaintext, api) is None
    api_key = ApiKey.objects.get(owner__firebase_uid=ann.uid)
    assert list(api_key.events.order_by("at", "id").values_list("action", flat=True)) == ["imported", "revoked"]


@pytest.mark.parametrize("mode", ["refuse", "revoke"])
@pytest.mark.parametrize("change", ["disable", "delete"])
def test_a_key_imported_earlier_is_revoked_when_its_owner_is_disabled_or_deleted_in_every_mode(
    tmp_path, api, mode, change
):
    ann, ben = accounts("active", "active")
    kept, lost, rotated_in_omi = omi_key(), omi_key(), omi_key()
    lines = [document(kept, ben.uid), document(lost, ann.uid)]
    import_file(write_export(tmp_path / "a.ndjson", lines))
    if change == "disable":
        firebase_emulator.update_account(ann.uid, disableUser=True)
    else:
        firebase_emulator.delete_account(ann.uid)
    # The next export: the same key, even with a secret that differs without a rotation, and a new key of Ann's.
    new = omi_key()
    later = [lines[0], document(rotated_in_omi, ann.uid, document_id=lines[1]["id"]), document(new, ann.uid)]
    path = write_export(tmp_path / "b.ndjson", later)

    if mode == "refuse":
        report, _ = import_with_refusals(path, "--inactive-owners", "refuse")
        assert (report["created"], report["refused"]) == (0, 1)
        assert not ApiKey.objects.filter(omi_document_id=later[2]["id"]).exists()
    else:
        report, _ = import_file(path, "--inactive-owners", "revoke")
        assert (report["created"], report["refused"]) == (1, 0)
    assert (report["updated"], report["unchanged"]) == (1, 1)
    assert report["revoked"] == (1 if mode == "refuse" else 2)
    for key in (lost, rotated_in_omi, new):
        assert verifies(key.plaintext, api) is None
    assert verifies(kept.plaintext, api)["uid"] == ben.uid
    api_key = ApiKey.objects.get(omi_document_id=lines[1]["id"])
    state = "firebase_disabled" if change == "disable" else "firebase_deleted"
    assert api_key.events.get(action="revoked").details["reason"] == state


def test_a_second_import_of_the_same_file_changes_nothing_and_says_so(tmp_path):
    ann, ben = accounts("active", "disabled")
    lines = [document(omi_key(), ann.uid, last_used_at="2025-01-01T00:00:00Z"), document(omi_key(), ben.uid)]
    path = write_export(tmp_path / "e.ndjson", lines)
    import_file(path)
    before = snapshot()

    report, _ = import_file(path)
    table, _ = run("importomikeys", str(path))

    assert (report["created"], report["updated"], report["unchanged"], report["revoked"]) == (0, 0, 2, 0)
    assert report["owners_created"] == 0
    assert "Nothing changed: no key was created, updated or revoked." in table
    assert snapshot() == before


def snapshot() -> tuple:
    """Every key, user and event, as rows."""
    return (
        sorted(map(str, ApiKey.objects.values_list())),
        sorted(map(str, User.objects.values_list())),
        sorted(map(str, KeyEvent.objects.values_list())),
    )


def test_a_newer_export_adds_new_keys_takes_omis_rotations_and_later_use(tmp_path, api):
    (ann,) = accounts("active")
    first, second, rotated_old, rotated_new = omi_key(), omi_key(), omi_key(), omi_key()
    kept = document(first, ann.uid, last_used_at="2025-01-01T00:00:00Z")
    rotating = document(rotated_old, ann.uid)
    import_file(write_export(tmp_path / "monday.ndjson", [kept, rotating]))

    newer = [
        {**kept, "data": {**kept["data"], "last_used_at": "2025-02-01T00:00:00Z"}},
        {
            **rotating,
            "data": {
                **rotating["data"],
                "hashed_key": rotated_new.hashed_key,
                "key_prefix": rotated_new.key_prefix,
                "rotated_at": "2025-06-02T00:00:00Z",
            },
        },
        document(second, ann.uid),
    ]
    report, _ = import_file(write_export(tmp_path / "tuesday.ndjson", newer))

    assert (report["created"], report["updated"], report["unchanged"]) == (1, 2, 0)
    assert ApiKey.objects.get(omi_document_id=kept["id"]).last_used_at == datetime.datetime(
        2025, 2, 1, tzinfo=datetime.UTC
    )
    assert verifies(second.plaintext, api)
    assert verifies(rotated_new.plaintext, api)["key_prefix"] == rotated_new.key_prefix
    assert verifies(rotated_old.plaintext, api) is None
    event = KeyEvent.objects.filter(api_key_id=key_id(rotating["id"])).order_by("-at", "-id").first()
    assert (event.action, event.details["file"], event.details["updated"]) == (
        "imported",
        "tuesday.ndjson",
        ["key_hash", "key_prefix", "rotated_at"],
    )
    # An older last use does not move the stamp back.
    import_file(write_export(tmp_path / "monday-again.ndjson", [kept]))
    assert ApiKey.objects.get(omi_document_id=kept["id"]).last_used_at.month == 2


def test_prune_revokes_exactly_the_imported_keys_missing_from_the_file(tmp_path, api):
    (ann,) = accounts("active")
    keys = [omi_key() for _ in range(4)]
    lines = [document(key, ann.uid) for key in keys]
    import_file(write_export(tmp_path / "all.ndjson", lines))
    native = issue(make_owner(ann.uid, ann.email), "made in omikeys")
    already_revoked = ApiKey.objects.get(omi_document_id=lines[3]["id"])

    lifecycle.revoke_key(already_revoked)
    later = write_export(tmp_path / "later.ndjson", [lines[0], lines[2]])

    dry, dry_stderr = import_file(later, "--prune", "--dry-run")
    assert (dry["pruned"], dry["dry_run"]) == (1, True)
    assert f"document {lines[1]['id']}): would be pruned, revoked (dry run)" in dry_stderr
    assert verifies(keys[1].plaintext, api)

    report, stderr = import_file(later, "--prune")

    assert (report["pruned"], report["revoked"], report["unchanged"]) == (1, 1, 2)
    assert f"document {lines[1]['id']}): pruned, revoked" in stderr
    assert verifies(keys[1].plaintext, api) is None
    for kept in (keys[0], keys[2]):
        assert verifies(kept.plaintext, api)
    assert verifies(native.plaintext, api)["name"] == "made in omikeys"
    assert ApiKey.objects.get(omi_document_id=lines[1]["id"]).events.filter(action="revoked").count() == 1
    # Pruning again finds nothing more to revoke.
    assert import_file(later, "--prune")[0]["pruned"] == 0


def test_prune_is_skipped_when_a_line_could_not_be_read(tmp_path, api):
    (ann,) = accounts("active")
    key = omi_key()
    import_file(write_export(tmp_path / "all.ndjson", [document(key, ann.uid)]))

    report, stderr = import_with_refusals(write_export(tmp_path / "broken.ndjson", ["{truncated"]), "--prune")

    assert report["pruned"] == 0 and "could not be read" in report["prune_skipped"]
    assert verifies(key.plaintext, api)


def test_a_dry_run_reports_everything_and_writes_nothing(tmp_path):
    ann, off = accounts("active", "disabled")
    lines = [document(omi_key(), ann.uid), document(omi_key(), off.uid), "nope"]
    before = snapshot()

    report, _ = import_with_refusals(write_export(tmp_path / "e.ndjson", lines), "--dry-run")

    assert (report["dry_run"], report["created"], report["revoked"], report["refused"]) == (True, 2, 1, 1)
    assert report["owners_created"] == 2
    assert snapshot() == before


def test_unknown_scopes_skip_refuses_the_key(tmp_path):
    (ann,) = accounts("active")
    lines = [document(omi_key(), ann.uid, scopes=["memories:read", "tasks:write"])]

    report, stderr = import_with_refusals(write_export(tmp_path / "e.ndjson", lines), "--unknown-scopes", "skip")

    assert report["refused_by_reason"] == {"unknown_scope": 1}
    assert "unknown scopes 'tasks:write' (--unknown-scopes skip)" in stderr
    assert not ApiKey.objects.exists()


def test_default_scopes_option_names_the_set_for_keys_without_scopes(tmp_path, api):
    (ann,) = accounts("active")
    key = omi_key()
    path = write_export(tmp_path / "e.ndjson", [document(key, ann.uid, scopes=None)])

    import_file(path, "--default-scopes", "memories:read, conversations:read,action_items:read")

    assert verifies(key.plaintext, api)["scopes"] == ["action_items:read", "conversations:read", "memories:read"]


def test_unknown_default_scopes_stop_the_command_before_anything_is_read(tmp_path):
    path = write_export(tmp_path / "e.ndjson", [document(omi_key(), "someone")])
    with pytest.raises(CommandError, match="--default-scopes names no scope or unknown ones \\(tasks:read\\)"):
        run("importomikeys", str(path), "--default-scopes", "tasks:read")
    assert not ApiKey.objects.exists()


def test_owner_emails_are_asked_of_firebase_100_uids_a_call(tmp_path, monkeypatch):
    owners = accounts(*["active"] * 150)
    calls = []
    real_get_users = firebase.get_users

    def counted(uids):
        calls.append(len(uids))
        return real_get_users(uids)

    monkeypatch.setattr(firebase, "get_users", counted)
    lines = [document(omi_key(), owner.uid) for owner in owners] + [document(omi_key(), owners[0].uid)]

    report, _ = import_file(write_export(tmp_path / "e.ndjson", lines), "--batch-size", "500")

    assert report["owners_created"] == 150
    assert sorted(calls) == [50, 100]
    assert {user.firebase_uid: user.email for user in User.objects.filter(firebase_uid__startswith="omi-")} == {
        owner.uid: owner.email for owner in owners
    }


def test_an_unreachable_firebase_stops_the_import_with_advice(tmp_path, firebase_unreachable):
    path = write_export(tmp_path / "e.ndjson", [document(omi_key(), "someone")])
    with pytest.raises(CommandError, match="Firebase could not be asked about the keys' owners.*--no-firebase"):
        run("importomikeys", str(path))
    assert not ApiKey.objects.exists()


def test_no_firebase_imports_without_asking(tmp_path, firebase_unreachable, api):
    key = omi_key()
    existing = make_owner("known-uid", "kept@example.com")
    lines = [document(key, "new-uid"), document(omi_key(), existing.firebase_uid)]

    report, _ = import_file(write_export(tmp_path / "e.ndjson", lines), "--no-firebase")

    assert (report["created"], report["firebase_asked"]) == (2, False)
    assert verifies(key.plaintext, api)["uid"] == "new-uid"
    assert User.objects.get(firebase_uid="new-uid").email == ""
    assert User.objects.get(firebase_uid="known-uid").email == "kept@example.com"


def test_an_omi_key_cannot_take_over_an_omikeys_key_id_or_change_owner(tmp_path):
    ann, ben = accounts("active", "active")
    native = issue(make_owner(ann.uid, ann.email), "native")
    line = document(omi_key(), ann.uid)
    import_file(write_export(tmp_path / "one.ndjson", [line]))
    lines = [
        document(omi_key(), ann.uid, document_id=str(native.api_key.pk)),
        {**line, "data": {**line["data"], "user_id": ben.uid}},
    ]

    report, _ = import_with_refusals(write_export(tmp_path / "two.ndjson", lines))

    assert report["refused_by_reason"] == {"id_in_use": 1, "owner_changed": 1}
    assert ApiKey.objects.get(pk=native.api_key.pk).omi_document_id is None


def test_the_table_report_lists_counts_and_refusal_reasons(tmp_path):
    (ann,) = accounts("active")
    path = write_export(tmp_path / "e.ndjson", [document(omi_key(), ann.uid), "oops"])
    stdout = io.StringIO()
    with pytest.raises(CommandError, match="1 document refused"):
        call_command("importomikeys", str(path), stdout=stdout, stderr=io.StringIO())
    table = stdout.getvalue()
    assert "Import of e.ndjson" in table
    assert "  documents read                 2" in table
    assert "  keys created                   1" in table
    assert "Refused, by reason" in table and "not_json" in table and "the line is not JSON" in table


def test_hostile_values_refuse_or_repair_their_line_and_the_import_goes_on(tmp_path, api):
    (ann,) = accounts("active")
    good, early, late = omi_key(), omi_key(), omi_key()
    deep = "[" * 5000 + "]" * 5000
    lines = [
        deep,  # 1: nested too deep for the JSON reader
        '{"id": "deep", "data": ' + "{" * 3000 + "}" * 3000 + "}",  # 2: deep inside an object
        # 3, 4: times out of datetime's range once moved to UTC: repaired as unreadable, as Omi does.
        document(early, ann.uid, created_at="0001-01-01T00:00:00+14:00", last_used_at="0001-01-01T00:00:00+14:00"),
        document(late, ann.uid, created_at="9999-12-31T23:59:59-14:00", rotated_at="9999-12-31T23:59:59-14:00"),
        document(good, ann.uid),  # 5
    ]
    path = write_export(tmp_path / "hostile.ndjson", lines)

    report, stderr = import_with_refusals(path)

    assert report["documents_read"] == 5
    assert report["created"] == 3
    refusals = [(refusal["line"], refusal["reason"]) for refusal in report["refusals"]]
    assert refusals == [(1, "not_json"), (2, "not_json")]
    assert "line 1: refused, the line is JSON nested too deeply to read [not_json]" in stderr
    assert "line 3: created_at cannot be read" in stderr and "line 4: rotated_at cannot be read" in stderr
    for key in (good, early, late):
        assert verifies(key.plaintext, api)["uid"] == ann.uid
    assert ApiKey.objects.get(omi_document_id=lines[2]["id"]).created_at == omi.EPOCH
    assert ApiKey.objects.get(omi_document_id=lines[3]["id"]).rotated_at is None


@pytest.mark.parametrize("scopes", ["memories:write", {"memories:write": True}, 1, True])
def test_scopes_that_are_not_a_list_refuse_the_key_and_grant_nothing(tmp_path, api, scopes):
    (ann,) = accounts("active")
    key, other = omi_key(), omi_key()
    lines = [document(key, ann.uid, scopes=scopes), document(other, ann.uid, scopes=None)]

    report, stderr = import_with_refusals(write_export(tmp_path / "s.ndjson", lines))

    assert (report["created"], report["refused_by_reason"]) == (1, {"scopes_not_a_list": 1})
    assert "line 1 (document " in stderr and "[scopes_not_a_list]" in stderr
    assert verifies(key.plaintext, api) is None
    assert not ApiKey.objects.filter(omi_document_id=lines[0]["id"]).exists()
    assert sorted(verifies(other.plaintext, api)["scopes"]) == DEFAULT_SCOPES


def test_times_in_the_future_are_stored_as_now_so_the_key_rotates_and_records_its_use(tmp_path, user_client, settings):
    settings.OMIKEYS_LAST_USED_INTERVAL = 0  # every use stamps: a future last_used_at would stop it
    uid = user_client.emulator_user.uid
    key, skewed = omi_key(), omi_key()
    ahead = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=2)).isoformat()
    lines = [
        document(
            key,
            uid,
            created_at="2031-01-01T00:00:00Z",
            last_used_at={"_seconds": 1956528000, "_nanoseconds": 0},  # 2032
            rotated_at="2030-01-01T00:00:00Z",
        ),
        document(skewed, uid, created_at=ahead),  # within the tolerance: clock skew, not reported
    ]
    before = datetime.datetime.now(datetime.UTC)

    report, stderr = import_file(write_export(tmp_path / "future.ndjson", lines))

    after = datetime.datetime.now(datetime.UTC)
    assert report["created"] == 2
    assert report["repaired"] == {"created_at_in_future": 1, "last_used_at_in_future": 1, "rotated_at_in_future": 1}
    assert "line 1: rotated_at 2030-01-01T00:00:00+00:00 is in the future; stored as now" in stderr
    assert "line 2:" not in stderr
    for api_key in ApiKey.objects.filter(omi_document_id__isnull=False):
        for moment in (api_key.created_at, api_key.last_used_at, api_key.rotated_at):
            assert moment is None or before <= moment <= after
    api_key = ApiKey.objects.get(omi_document_id=lines[0]["id"])
    used = key_client(key.plaintext).get("/v1/dev/key")
    assert used.status_code == 200
    api_key.refresh_from_db()
    assert api_key.last_used_at > after  # the use is recorded
    rotated = user_client.post(f"/v1/dev/keys/{api_key.pk}/rotate", {"grace_seconds": 0}, format="json")
    assert rotated.status_code in (200, 201), rotated.content
    assert verifies(rotated.json()["key"], None)["uid"] == uid


@pytest.mark.parametrize("omi_rotated_at", [None, "2026-01-01T00:00:00Z", "2099-01-01T00:00:00Z"])
def test_a_key_rotated_in_omikeys_keeps_its_secret_whatever_omis_record_says(tmp_path, api, omi_rotated_at):
    (ann,) = accounts("active")
    first, omi_rotation = omi_key(), omi_key()
    line = document(first, ann.uid, created_at="2025-01-01T00:00:00Z")
    import_file(write_export(tmp_path / "a.ndjson", [line]))
    api_key = ApiKey.objects.get()
    rotated = lifecycle.rotate_key(api_key, grace_seconds=0)
    # Omi's later export: the old secret again, or a rotation made in Omi (at any time, even "later").
    again = write_export(tmp_path / "b.ndjson", [line])
    later = document(omi_rotation, ann.uid, document_id=line["id"], rotated_at=omi_rotated_at)
    omi_rotated = write_export(tmp_path / "c.ndjson", [later])

    for path in (again, omi_rotated):
        report, stderr = import_file(path)
        assert (report["updated"], report["unchanged"], report["refused"]) == (0, 1, 0)
        assert report["conflicts"] == {"rotated_in_omikeys": 1}
        assert f"line 1 (document {line['id']}): the key was rotated in omikeys since it was imported" in stderr

    table, _ = run("importomikeys", str(omi_rotated))
    assert "Conflicts, kept as omikeys has them" in table and "rotated_in_omikeys" in table
    assert verifies(rotated.plaintext, api)["uid"] == ann.uid
    assert verifies(first.plaintext, api) is None
    assert verifies(omi_rotation.plaintext, api) is None
    assert not ApiKey.objects.get().events.filter(action="imported", details__updated__isnull=False).exists()


def test_an_uppercase_uuid_document_id_is_the_key_id(tmp_path, api):
    (ann,) = accounts("active")
    key, document_id = omi_key(), str(uuid.uuid4()).upper()

    import_file(write_export(tmp_path / "u.ndjson", [document(key, ann.uid, document_id=document_id)]))

    api_key = ApiKey.objects.get(omi_document_id=document_id)
    assert api_key.pk == uuid.UUID(document_id)
    assert verifies(key.plaintext, api)["id"] == document_id.lower()


@pytest.mark.parametrize(
    "character", ["\x1b", "\x07", "\u202e", "\u2066", "\u200b", "\u200e", "\ufeff", "\u2028", "\ud800"]
)
def test_document_ids_and_uids_with_control_format_or_bidi_characters_are_refused(tmp_path, character):
    key, other = omi_key(), omi_key()
    lines = [
        document(key, "u-ok", document_id=f"doc{character}id"),
        document(other, f"uid{character}x"),
    ]
    path = tmp_path / "c.ndjson"
    path.write_bytes(b"".join(json.dumps(line).encode() + b"\n" for line in lines))

    report, stderr = import_with_refusals(path, "--no-firebase")

    refusals = [(refusal["line"], refusal["reason"]) for refusal in report["refusals"]]
    assert refusals == [(1, "bad_document_id"), (2, "bad_user_id")]
    assert report["created"] == 0 and not ApiKey.objects.exists()
    assert character not in stderr


def test_unknown_scopes_in_the_report_are_bounded(tmp_path):
    codes = [f"bogus:{n}" for n in range(omi.KEPT_UNKNOWN_SCOPES + 50)]
    lines = [document(omi_key(), "u-scopes", scopes=["memories:read", code, "\x1b[31mred"]) for code in codes]

    report, stderr = import_file(write_export(tmp_path / "s.ndjson", lines), "--no-firebase")

    assert report["created"] == len(codes)
    unknown = report["unknown_scopes"]
    assert len(unknown) == omi.KEPT_UNKNOWN_SCOPES + 1
    assert unknown["'\\x1b[31mred'"] == len(codes)
    assert unknown[omi.UNKNOWN_SCOPES_OTHER] == 51
    assert sum(unknown.values()) == 2 * len(codes)
    assert "\x1b" not in stderr


def test_a_dry_run_does_not_log_keys_as_imported(tmp_path, caplog):
    path = write_export(tmp_path / "d.ndjson", [document(omi_key(), "u-dry"), document(omi_key(), "u-dry")])

    with caplog.at_level("INFO", logger="apikeys.lifecycle"):
        report, _ = import_file(path, "--dry-run", "--no-firebase")

    assert report["created"] == 2 and not ApiKey.objects.exists()
    messages = [record.getMessage() for record in caplog.records]
    assert not [message for message in messages if message.startswith("api keys imported")]
    assert "api keys import dry run, nothing written: would create=2 batch=2" in messages


@pytest.mark.parametrize(
    ("documents", "seconds", "closing"),
    [
        (1_000_000, 612.34, "Took 612.3 s, 1,633 documents/s."),
        (6, 0.025, "Took 0.03 s."),  # no rate over less than a second: it would measure start-up
        (0, 0.0, "Took 0.00 s."),
    ],
)
def test_the_table_report_closes_with_the_time_and_a_rate_only_over_a_second_or_more(documents, seconds, closing):
    report = omi.Report(documents=documents, seconds=seconds)

    assert render("e.ndjson", report).rstrip().endswith(closing)
