"""Drop two indexes that others already cover: every key insert and every audit event wrote them for nothing.

``apikeys_apikey.owner_id`` is the leading column of ``apikey_owner_created_idx`` and of the
``apikey_owner_request_token_uniq`` constraint; ``apikeys_keyevent.api_key_id`` leads
``keyevent_key_at_idx``. Lookups by owner or by key, and the foreign-key checks, use those.
Only the two indexes are dropped (``DROP INDEX``), on SQLite too, where altering the field
would rebuild both tables.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

OWNER_INDEX = "apikeys_apikey_owner_id_0c78be6d"
EVENT_KEY_INDEX = "apikeys_keyevent_api_key_id_5fdfa80f"


class Migration(migrations.Migration):
    dependencies = [
        ("apikeys", "0010_webhooks"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="apikey",
                    name="owner",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="api_keys",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="keyevent",
                    name="api_key",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="events",
                        to="apikeys.apikey",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{OWNER_INDEX}"',
                    reverse_sql=f'CREATE INDEX "{OWNER_INDEX}" ON "apikeys_apikey" ("owner_id")',
                ),
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{EVENT_KEY_INDEX}"',
                    reverse_sql=f'CREATE INDEX "{EVENT_KEY_INDEX}" ON "apikeys_keyevent" ("api_key_id")',
                ),
            ],
        ),
    ]
