"""Keys imported from Omi keep their Firestore document id; the "imported" key event."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("apikeys", "0007_omi_compatible_hashes"),
    ]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="omi_document_id",
            field=models.CharField(
                blank=True,
                editable=False,
                help_text="The id of the Firestore document in Omi's dev_api_keys this key was imported from.",
                max_length=1500,
                null=True,
                unique=True,
                verbose_name="Omi document id",
            ),
        ),
        migrations.AlterField(
            model_name="keyevent",
            name="action",
            field=models.CharField(
                choices=[
                    ("created", "created"),
                    ("rotated", "rotated"),
                    ("revoked", "revoked"),
                    ("expiry_changed", "expiry changed"),
                    ("renamed", "renamed"),
                    ("scopes_changed", "scopes changed"),
                    ("imported", "imported"),
                ],
                max_length=20,
            ),
        ),
    ]
