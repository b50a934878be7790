"""Webhooks: endpoints, the outbox of outgoing events, and their deliveries."""

import django.db.models.deletion
import django.utils.timezone
import uuid
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('apikeys', '0009_service_clients'),
    ]

    operations = [
        migrations.CreateModel(
            name='WebhookEndpoint',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('url', models.URLField(max_length=2000, verbose_name='URL')),
                ('description', models.CharField(blank=True, max_length=200)),
                ('event_types', models.JSONField(default=list, help_text='The event types sent to this URL.')),
                ('secret_encrypted', models.TextField(editable=False)),
                ('secret_rotated_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('enabled', models.BooleanField(default=True, editable=False)),
                ('disabled_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('disabled_reason', models.CharField(blank=True, editable=False, max_length=200)),
                ('failing_since', models.DateTimeField(blank=True, editable=False, null=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
            ],
            options={
                'verbose_name': 'webhook endpoint',
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='Event',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('type', models.CharField(choices=[('key.created', 'key.created: a key was issued'), ('key.updated', "key.updated: a key's name, scopes or expiry changed"), ('key.rotated', 'key.rotated: a key got a new secret'), ('key.revoked', 'key.revoked: a key was revoked'), ('key.expired', "key.expired: a key's expiry passed"), ('user.keys_revoked', "user.keys_revoked: all of a user's keys were revoked"), ('user.erased', "user.erased: a user's personal data was erased")], max_length=40)),
                ('payload', models.JSONField()),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('dedup_key', models.CharField(blank=True, max_length=200, null=True, unique=True)),
            ],
            options={
                'verbose_name': 'outgoing event',
                'ordering': ['-created_at'],
                'indexes': [models.Index(fields=['-created_at'], name='event_created_idx')],
            },
        ),
        migrations.CreateModel(
            name='Delivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('delivered', 'Delivered'), ('failed', 'Failed')], default='pending', max_length=10)),
                ('attempts', models.PositiveIntegerField(default=0)),
                ('next_attempt_at', models.DateTimeField(blank=True, null=True)),
                ('locked_until', models.DateTimeField(blank=True, null=True)),
                ('lease_token', models.UUIDField(blank=True, null=True)),
                ('last_attempt_at', models.DateTimeField(blank=True, null=True)),
                ('last_response_code', models.PositiveIntegerField(blank=True, null=True)),
                ('last_error', models.CharField(blank=True, max_length=300)),
                ('delivered_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('event', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='apikeys.event')),
                ('endpoint', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='apikeys.webhookendpoint')),
            ],
            options={
                'verbose_name': 'webhook delivery',
                'verbose_name_plural': 'webhook deliveries',
                'ordering': ['-created_at', '-id'],
                'indexes': [models.Index(fields=['status', 'next_attempt_at'], name='delivery_due_idx')],
                'constraints': [models.UniqueConstraint(fields=('event', 'endpoint'), name='delivery_event_endpoint_uniq')],
            },
        ),
    ]
