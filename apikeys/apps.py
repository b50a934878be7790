"""App configuration for apikeys."""

from django.apps import AppConfig


class ApiKeysConfig(AppConfig):
    """The apikeys app; registers the OpenAPI extensions when Django is ready."""

    name = "apikeys"
    # The admin groups keys, scopes, events and users under this name ("Home › omikeys › API keys").
    verbose_name = "omikeys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from .api import schema  # noqa: F401  (registers the OpenAPI auth extension)
