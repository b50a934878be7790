"""App configuration for apikeys."""

import os
import sys

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ApiKeysConfig(AppConfig):
    """The apikeys app; registers the OpenAPI extensions, the database error counter and the worker's schedules,
    and under ``runserver`` starts the key usage background writer (gunicorn starts it in its workers)."""

    name = "apikeys"
    # The admin groups keys, scopes, events and users under this name ("Home › omikeys › API keys").
    verbose_name = "omikeys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import dependencies  # noqa: F401  (counts database errors on every connection)
        from .api import schema  # noqa: F401  (registers the OpenAPI auth extensions)
        from .service import schema as service_schema  # noqa: F401

        post_migrate.connect(_ensure_schedules, dispatch_uid="apikeys.tasks.ensure_schedules")
        if serving_with_runserver(sys.argv, os.environ):
            from .lifecycle import usage

            usage.start_flusher()


def serving_with_runserver(argv: list, environ) -> bool:
    """Whether this process is ``manage.py runserver``'s serving process (the child its autoreloader starts,
    ``RUN_MAIN=true``, or the only one with ``--noreload``), where key usage needs a background writer as in a
    gunicorn worker. Tests and other management commands start none."""
    if len(argv) < 2 or argv[1] != "runserver":
        return False
    return environ.get("RUN_MAIN") == "true" or "--noreload" in argv


def _ensure_schedules(sender, **kwargs):
    # After django_q's own migrations too: its Schedule table must exist.
    if sender.name == "django_q":
        from .tasks import ensure_schedules

        ensure_schedules(kwargs.get("using", "default"))
