"""Migrations: the models match them, and 0005 gives existing keys their history."""

import datetime
import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def test_the_models_need_no_new_migration(db):
    out = io.StringIO()
    call_command("makemigrations", "apikeys", "--check", "--dry-run", stdout=out)


@pytest.mark.django_db(transaction=True)
def test_existing_keys_get_their_creation_and_revocation_events(contract_scopes):
    before, after = [("apikeys", "0004_key_request_token")], [("apikeys", "0005_key_expiry_rotation_events")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    User = old_apps.get_model("apikeys", "User")
    ApiKey = old_apps.get_model("apikeys", "ApiKey")
    owner = User.objects.create(username="firebase:old", firebase_uid="old")
    created = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    revoked = datetime.datetime(2026, 2, 3, 4, 5, 6, tzinfo=datetime.UTC)
    live = ApiKey.objects.create(owner=owner, name="live", key_prefix="p1", key_hash="a" * 64, created_at=created)
    gone = ApiKey.objects.create(
        owner=owner, name="gone", key_prefix="p2", key_hash="b" * 64, created_at=created, revoked_at=revoked
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    new_apps = executor.loader.project_state(after).apps
    KeyEvent = new_apps.get_model("apikeys", "KeyEvent")
    events = sorted(KeyEvent.objects.values_list("api_key_id", "action", "at", "actor_kind", "via"), key=str)
    assert events == sorted(
        [
            (live.pk, "created", created, "system", "code"),
            (gone.pk, "created", created, "system", "code"),
            (gone.pk, "revoked", revoked, "system", "code"),
        ],
        key=str,
    )
    # Leave the database fully migrated for the tests that follow.
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
