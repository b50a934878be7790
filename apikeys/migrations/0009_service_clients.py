"""Service clients (their own bearer tokens), service actors in the audit, and why a user was deactivated."""

import django.db.models.deletion
import django.utils.timezone
import uuid
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('apikeys', '0008_omi_import'),
    ]

    operations = [
        migrations.CreateModel(
            name='ServiceClient',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('name', models.CharField(help_text='Which service this is, such as omi-developer-api. Unique.', max_length=100, unique=True)),
                ('can_verify_keys', models.BooleanField(default=False, verbose_name='may verify keys')),
                ('can_read_user_keys', models.BooleanField(default=False, verbose_name="may read users' keys")),
                ('can_act_on_users', models.BooleanField(default=False, help_text='Revoke all keys, erase.', verbose_name='may act on users')),
                ('can_receive_events', models.BooleanField(default=False, verbose_name='may receive events')),
                ('token_prefix', models.CharField(editable=False, max_length=32, verbose_name='display prefix')),
                ('token_hash', models.CharField(editable=False, max_length=64, unique=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ('rotated_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('revoked_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('last_used_at', models.DateTimeField(blank=True, editable=False, null=True)),
            ],
            options={
                'verbose_name': 'service client',
                'ordering': ['name'],
            },
        ),
        migrations.AddField(
            model_name='user',
            name='deactivated_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='user',
            name='deactivation_reason',
            field=models.CharField(blank=True, choices=[('', 'not recorded (staff, or never deactivated)'), ('staff', 'by staff'), ('firebase_disabled', 'disabled in Firebase (syncfirebaseusers)'), ('firebase_deleted', 'deleted in Firebase (syncfirebaseusers)'), ('erased', "erased at a service's request")], default='', editable=False, max_length=20),
        ),
        migrations.AlterField(
            model_name='keyevent',
            name='actor_kind',
            field=models.CharField(choices=[('user', "the key's owner"), ('staff', 'a staff member'), ('command', 'a management command'), ('system', 'Python code'), ('service', 'a service client')], max_length=10, verbose_name='actor'),
        ),
        migrations.AlterField(
            model_name='keyevent',
            name='via',
            field=models.CharField(choices=[('api', 'JSON API'), ('web', 'web pages'), ('admin', 'admin'), ('command', 'command line'), ('code', 'Python code'), ('service', 'service API')], max_length=10),
        ),
        migrations.AddField(
            model_name='keyevent',
            name='service_client',
            field=models.ForeignKey(blank=True, help_text='Who acted, if a service client.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='key_events', to='apikeys.serviceclient'),
        ),
    ]
