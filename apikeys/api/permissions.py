"""Scope enforcement: a view names the scopes it needs; a key without them gets 403."""

from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured
from rest_framework.permissions import BasePermission

from .. import lifecycle, metrics
from ..models import ApiKey


class HasScope(BasePermission):
    """Allows a request whose API key carries every scope the view requires.

    Use with :class:`~apikeys.api.authentication.ApiKeyAuthentication`::

        class MemoryList(APIView):
            authentication_classes = [ApiKeyAuthentication]
            permission_classes = [HasScope]
            required_scopes = ["memories:read"]
            # or per method: {"GET": ["memories:read"], "POST": ["memories:write"]}

    A view without ``required_scopes`` is a configuration error, never open.
    A request not authenticated by an API key is refused.
    """

    message = "Insufficient permissions."

    def has_permission(self, request, view) -> bool:
        required = self.required_scopes(request, view)
        if not isinstance(request.auth, ApiKey):
            self.message = "This endpoint needs an API key: send 'Authorization: Bearer <API key>'."
            return False
        if required is None:
            self.message = f"No scope allows {request.method} here."
            return False
        granted = getattr(request.auth, "scope_codes", None)
        if granted is None:  # a key object that did not come from ApiKeyAuthentication
            return False
        for scope in required:
            if scope not in granted:
                self.message = f"Insufficient permissions. Required scope: {scope}"
                metrics.record_scope_refusal()
                lifecycle.record_scope_refusal(request.auth)
                return False
        return True

    @staticmethod
    def required_scopes(request, view) -> list[str] | None:
        """The scopes this request needs; ``None`` when the view names none for its method (refused)."""
        required = getattr(view, "required_scopes", None)
        if isinstance(required, Mapping):
            method = "GET" if request.method == "HEAD" and "HEAD" not in required else request.method
            handled = method.lower() in view.http_method_names and hasattr(view, method.lower())
            if not handled:
                return []  # the view has no handler for this method: DRF answers 405
            if method == "OPTIONS" and method not in required:
                return None  # DRF's built-in OPTIONS: refused unless the view names scopes for it
            if method not in required:
                raise ImproperlyConfigured(
                    f"{type(view).__name__}.required_scopes names no scopes for {method}, which it handles."
                )
            required = required[method]
        if required is None or isinstance(required, str):
            raise ImproperlyConfigured(
                f"{type(view).__name__} uses HasScope: set required_scopes to a list of scope codes "
                "(or a dict of them by HTTP method)."
            )
        return list(required)
