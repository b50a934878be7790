"""What a service client may do: each view names one permission flag; a client without it gets 403."""

from django.core.exceptions import ImproperlyConfigured
from rest_framework.permissions import BasePermission

from ..models import ServiceClient


class ServiceClientAllowed(BasePermission):
    """Allows a request authenticated by a service client that has the view's ``required_permission``.

    ``required_permission`` is a flag of ``ServiceClient.PERMISSIONS`` ("can_verify_keys", ...);
    a view without one is a configuration error, never open. The 403 says what is missing.
    """

    message = "This endpoint needs a service token."

    def has_permission(self, request, view) -> bool:
        permission = getattr(view, "required_permission", None)
        if permission not in ServiceClient.PERMISSIONS:
            raise ImproperlyConfigured(
                f"{type(view).__name__}.required_permission must be one of {', '.join(ServiceClient.PERMISSIONS)}."
            )
        client = request.auth
        if not isinstance(client, ServiceClient):
            return False
        if not client.allows(permission):
            self.message = (
                f"The service client {client.name!r} may not {ServiceClient.PERMISSIONS[permission]}. "
                "Staff can allow it in the admin."
            )
            return False
        return True
