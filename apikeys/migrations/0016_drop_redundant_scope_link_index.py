"""Drop the index on ``apikeys_apikey_scopes.apikey_id``: the unique index on ``(apikey_id, scope_id)`` leads with it.

Every scope a key holds is a row of this table, so every key written (issued, imported,
its scopes changed) wrote one more entry for each of its scopes into an index that no
query needs: a key's scopes, the delete of a key's links and the foreign key's checks
all use the unique index. The table is the one Django makes for ``ApiKey.scopes``,
whose index Django's migration state cannot leave out; only the database's index is
dropped (``DROP INDEX``, ``CONCURRENTLY`` on PostgreSQL). If a later migration rebuilds this table on SQLite, Django
makes the index again: that costs only speed, and a migration like this one drops it again.
"""

from django.db import migrations

LINK_KEY_INDEX = "apikeys_apikey_scopes_apikey_id_ab4f95e0"


def _concurrently(schema_editor) -> str:
    # PostgreSQL: without blocking the table's reads and writes (verification reads a key's scopes here)
    # while the statement waits for transactions already running; outside a transaction (atomic = False).
    return " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""


def drop_index(apps, schema_editor):
    schema_editor.execute(f'DROP INDEX{_concurrently(schema_editor)} IF EXISTS "{LINK_KEY_INDEX}"')


def create_index(apps, schema_editor):
    schema_editor.execute(
        f'CREATE INDEX{_concurrently(schema_editor)} IF NOT EXISTS "{LINK_KEY_INDEX}" '
        'ON "apikeys_apikey_scopes" ("apikey_id")'
    )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("apikeys", "0015_key_usage"),
    ]

    operations = [
        migrations.RunPython(drop_index, create_index),
    ]
