"""Seed the eight scopes of Omi's Developer API contract; four of them are the read-only default."""

from django.db import migrations

SCOPES = [
    ("action_items:read", "Read action items", True),
    ("action_items:write", "Create, update and delete action items", False),
    ("conversations:read", "Read conversations and their summaries", True),
    ("conversations:write", "Create and update conversations", False),
    ("goals:read", "Read goals and their progress", True),
    ("goals:write", "Create, update and delete goals", False),
    ("memories:read", "Read memories", True),
    ("memories:write", "Create, update and delete memories", False),
]


def seed(apps, schema_editor):
    Scope = apps.get_model("apikeys", "Scope")
    for code, description, is_default in SCOPES:
        Scope.objects.update_or_create(code=code, defaults={"description": description, "is_default": is_default})


def unseed(apps, schema_editor):
    Scope = apps.get_model("apikeys", "Scope")
    Scope.objects.filter(code__in=[code for code, _, _ in SCOPES], api_keys__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("apikeys", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
