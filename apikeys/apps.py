"""App configuration for apikeys."""

from django.apps import AppConfig


class ApiKeysConfig(AppConfig):
    """The apikeys app; registers the OpenAPI extensions when Django is ready."""

    name = "apikeys"
    verbose_name = "API keys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from .api import schema  # noqa: F401  (registers the OpenAPI auth extension)
