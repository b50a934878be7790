"""A webhook endpoint keeps the secret a rotation replaced, signing beside the new one for a grace period."""


from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('apikeys', '0011_drop_redundant_indexes'),
    ]

    operations = [
        migrations.AddField(
            model_name='webhookendpoint',
            name='previous_secret_encrypted',
            field=models.TextField(blank=True, default='', editable=False),
        ),
        migrations.AddField(
            model_name='webhookendpoint',
            name='previous_secret_expires_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
