"""App configuration for apikeys."""

from django.apps import AppConfig


class ApiKeysConfig(AppConfig):
    """The apikeys app; registers the OpenAPI extensions and the database error counter when Django is ready."""

    name = "apikeys"
    # The admin groups keys, scopes, events and users under this name ("Home › omikeys › API keys").
    verbose_name = "omikeys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import dependencies  # noqa: F401  (counts database errors on every connection)
        from .api import schema  # noqa: F401  (registers the OpenAPI auth extensions)
        from .service import schema as service_schema  # noqa: F401
