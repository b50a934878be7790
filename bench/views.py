"""The two bench-only endpoints served next to the project's own GET /v1/dev/key.

Both return a body like GET /v1/dev/key's (the same fields, about 330 bytes),
built in memory, with the same Cache-Control header, so the only difference
between them is the permission check:

- OpenView: no authentication at all, the ceiling for this stack.
- LibraryKeyView: djangorestframework-api-key's HasAPIKey, configured as that
  library's documentation shows (no authentication classes, the permission only).
"""

from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_api_key.permissions import HasAPIKey

BODY = {
    "id": "6f1f0c3e-5d0a-4b7e-9a53-2a8e0d7c4b91",
    "name": "bench",
    "key_prefix": "omi_dev_4573...2442",
    "created_at": "2026-01-15T10:21:21.773120Z",
    "last_used_at": "2026-01-15T10:22:04.118402Z",
    "expires_at": None,
    "status": "active",
    "scopes": ["action_items:read", "conversations:read", "goals:read", "memories:read"],
    "uid": "bench-measured-owner",
}


class OpenView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        return Response(BODY, headers={"Cache-Control": "no-store"})


class LibraryKeyView(APIView):
    authentication_classes = []
    permission_classes = [HasAPIKey]

    def get(self, request):
        return Response(BODY, headers={"Cache-Control": "no-store"})
