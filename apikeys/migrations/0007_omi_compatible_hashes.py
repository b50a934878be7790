"""Hash columns wide enough for tagged whole-key hashes; the hashes of existing keys get the tag.

Keys issued until now were stored as the SHA-256 of the whole key. From here on the
stored hash is Omi's (the SHA-256 of the 32-hex secret), which cannot be computed for
existing keys without their plaintexts. Their hashes are kept, marked with
``crypto.LEGACY_HASH_TAG`` so that verification, which looks up both forms of a
presented key in one statement, knows each scheme apart. Reversing strips the tag; keys
issued after this migration then no longer verify with the older code.
"""

from django.db import migrations, models
from django.db.models import F, Value
from django.db.models.functions import Concat, Substr

# Frozen here: the migration must keep doing what it did if crypto changes.
LEGACY_HASH_TAG = "fullkey:"
HASH_COLUMNS = ("key_hash", "previous_key_hash")


def tag_existing_hashes(apps, schema_editor):
    ApiKey = apps.get_model("apikeys", "ApiKey")
    for column in HASH_COLUMNS:
        untagged = ApiKey.objects.filter(**{f"{column}__isnull": False}).exclude(
            **{f"{column}__startswith": LEGACY_HASH_TAG}
        )
        untagged.update(**{column: Concat(Value(LEGACY_HASH_TAG), F(column))})


def untag_hashes(apps, schema_editor):
    ApiKey = apps.get_model("apikeys", "ApiKey")
    for column in HASH_COLUMNS:
        tagged = ApiKey.objects.filter(**{f"{column}__startswith": LEGACY_HASH_TAG})
        tagged.update(**{column: Substr(F(column), len(LEGACY_HASH_TAG) + 1)})


class Migration(migrations.Migration):
    dependencies = [("apikeys", "0006_key_event_renames_and_scope_changes")]

    operations = [
        migrations.AlterField(
            model_name="apikey",
            name="key_hash",
            field=models.CharField(editable=False, max_length=72, unique=True),
        ),
        migrations.AlterField(
            model_name="apikey",
            name="previous_key_hash",
            field=models.CharField(blank=True, editable=False, max_length=72, null=True, unique=True),
        ),
        migrations.RunPython(tag_existing_hashes, untag_hashes, elidable=False),
    ]
