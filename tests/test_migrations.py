"""Migrations: the models match them, 0005 gives existing keys their history, 0007 keeps old hashes verifying."""

import datetime
import hashlib
import io
import secrets

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from apikeys import crypto, lifecycle


def migrate_to(target: list | None = None):
    """Migrate the test database to ``target`` (default: the latest migrations); returns the apps of that state."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    target = target or executor.loader.graph.leaf_nodes()
    executor.migrate(target)
    return executor.loader.project_state(target).apps


def test_the_models_need_no_new_migration(db):
    out = io.StringIO()
    call_command("makemigrations", "apikeys", "--check", "--dry-run", stdout=out)


@pytest.mark.django_db(transaction=True)
def test_existing_keys_get_their_creation_and_revocation_events(contract_scopes):
    before, after = [("apikeys", "0004_key_request_token")], [("apikeys", "0005_key_expiry_rotation_events")]
    old_apps = migrate_to(before)
    User = old_apps.get_model("apikeys", "User")
    ApiKey = old_apps.get_model("apikeys", "ApiKey")
    owner = User.objects.create(username="firebase:old", firebase_uid="old")
    created = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    revoked = datetime.datetime(2026, 2, 3, 4, 5, 6, tzinfo=datetime.UTC)
    live = ApiKey.objects.create(owner=owner, name="live", key_prefix="p1", key_hash="a" * 64, created_at=created)
    gone = ApiKey.objects.create(
        owner=owner, name="gone", key_prefix="p2", key_hash="b" * 64, created_at=created, revoked_at=revoked
    )

    KeyEvent = migrate_to(after).get_model("apikeys", "KeyEvent")
    events = sorted(KeyEvent.objects.values_list("api_key_id", "action", "at", "actor_kind", "via"), key=str)
    assert events == sorted(
        [
            (live.pk, "created", created, "system", "code"),
            (gone.pk, "created", created, "system", "code"),
            (gone.pk, "revoked", revoked, "system", "code"),
        ],
        key=str,
    )
    migrate_to()  # the database fully migrated for the tests that follow


def _old_hash(plaintext: str) -> str:
    """``crypto.hash_key`` before omikeys adopted Omi's scheme: the SHA-256 of the whole key."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


@pytest.mark.django_db(transaction=True)
def test_keys_hashed_the_old_way_keep_verifying_after_the_migration(contract_scopes, api):
    before, after = (
        [("apikeys", "0006_key_event_renames_and_scope_changes")],
        [("apikeys", "0007_omi_compatible_hashes")],
    )
    old_apps = migrate_to(before)
    User = old_apps.get_model("apikeys", "User")
    ApiKey = old_apps.get_model("apikeys", "ApiKey")
    Scope = old_apps.get_model("apikeys", "Scope")
    owner = User.objects.create(username="firebase:old-hash", firebase_uid="old-hash", email="old@example.com")
    plain, rotated_from, rotated_to = (crypto.KEY_PREFIX + secrets.token_hex(16) for _ in range(3))
    # Issued as the old code path did (lifecycle.issue_key stored crypto.hash_key(plaintext), the whole key's hash).
    kept = ApiKey.objects.create(
        owner=owner, name="old", key_prefix=crypto.display_prefix(plain), key_hash=_old_hash(plain)
    )
    kept.scopes.set(Scope.objects.filter(code="memories:read"))
    # Rotated with a grace period before the migration: both secrets were hashed the old way.
    grace_ends = timezone.now() + datetime.timedelta(hours=1)
    moved = ApiKey.objects.create(
        owner=owner,
        name="rotated",
        key_prefix=crypto.display_prefix(rotated_to),
        key_hash=_old_hash(rotated_to),
        previous_key_hash=_old_hash(rotated_from),
        previous_key_expires_at=grace_ends,
    )
    moved.scopes.set(Scope.objects.filter(code="goals:read"))

    migrate_to(after)
    migrate_to()

    from apikeys.models import ApiKey as CurrentApiKey

    assert CurrentApiKey.objects.get(pk=kept.pk).key_hash == "fullkey:" + _old_hash(plain)
    for plaintext, key, scopes in [(plain, kept, ["memories:read"]), (rotated_from, moved, ["goals:read"])]:
        assert lifecycle.verify_key(plaintext).api_key.pk == key.pk
        response = api.get("/v1/dev/key", HTTP_AUTHORIZATION=f"Bearer {plaintext}")
        assert response.status_code == 200, response.content
        assert (response.json()["id"], response.json()["scopes"]) == (str(key.pk), scopes)
    assert lifecycle.verify_key(rotated_to).api_key.pk == moved.pk
    # The untagged old hash is no longer a stored form: only the tagged one verifies.
    assert not CurrentApiKey.objects.filter(key_hash=_old_hash(plain)).exists()

    # A key issued the old way, rotated now with a grace period: its old secret keeps working until the grace ends.
    issued = lifecycle.rotate_key(CurrentApiKey.objects.get(pk=kept.pk), grace_seconds=3600)
    assert lifecycle.verify_key(plain).api_key.pk == kept.pk
    assert lifecycle.verify_key(issued.plaintext).api_key.pk == kept.pk
    assert CurrentApiKey.objects.get(pk=kept.pk).key_hash == crypto.hash_key(issued.plaintext)


@pytest.mark.django_db(transaction=True)
def test_reversing_the_hash_migration_strips_the_tag(contract_scopes):
    latest = [("apikeys", "0007_omi_compatible_hashes")]
    apps_now = migrate_to(latest)
    User = apps_now.get_model("apikeys", "User")
    ApiKey = apps_now.get_model("apikeys", "ApiKey")
    owner = User.objects.create(username="firebase:rev", firebase_uid="rev")
    key = ApiKey.objects.create(owner=owner, name="k", key_prefix="p", key_hash="fullkey:" + "c" * 64)

    old = migrate_to([("apikeys", "0006_key_event_renames_and_scope_changes")])
    assert old.get_model("apikeys", "ApiKey").objects.get(pk=key.pk).key_hash == "c" * 64
    migrate_to()


def leading_columns(table: str) -> dict[str, str]:
    """{index or constraint name: its first column} for every index of ``table``."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return {name: info["columns"][0] for name, info in constraints.items() if info["index"] or info["unique"]}


@pytest.mark.django_db(transaction=True)
def test_0011_drops_only_indexes_that_others_cover():
    migrate_to([("apikeys", "0010_webhooks")])
    before = {table: leading_columns(table) for table in ("apikeys_apikey", "apikeys_keyevent")}
    migrate_to([("apikeys", "0011_drop_redundant_indexes")])
    after = {table: leading_columns(table) for table in ("apikeys_apikey", "apikeys_keyevent")}
    try:
        dropped = {(table, name) for table in before for name in before[table] if name not in after[table]}
        assert {name for _, name in dropped} == {
            "apikeys_apikey_owner_id_0c78be6d",
            "apikeys_keyevent_api_key_id_5fdfa80f",
        }
        # Each foreign key still leads an index: lookups by owner or key, and the checks of the constraint, use it.
        assert "owner_id" in after["apikeys_apikey"].values()
        assert "api_key_id" in after["apikeys_keyevent"].values()
        migrate_to([("apikeys", "0010_webhooks")])
        assert {table: leading_columns(table) for table in before} == before
    finally:
        migrate_to()


@pytest.mark.django_db(transaction=True)
def test_0016_drops_the_scope_link_index_the_unique_one_covers():
    migrate_to([("apikeys", "0015_key_usage")])
    before = leading_columns("apikeys_apikey_scopes")
    migrate_to([("apikeys", "0016_drop_redundant_scope_link_index")])
    after = leading_columns("apikeys_apikey_scopes")
    try:
        assert set(before) - set(after) == {"apikeys_apikey_scopes_apikey_id_ab4f95e0"}
        assert set(after) <= set(before)
        # The unique index on (apikey_id, scope_id) still leads with the key: a key's scopes are found by it.
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, "apikeys_apikey_scopes")
        assert any(info["unique"] and info["columns"] == ["apikey_id", "scope_id"] for info in constraints.values())
        migrate_to([("apikeys", "0015_key_usage")])
        assert leading_columns("apikeys_apikey_scopes") == before
    finally:
        migrate_to()
