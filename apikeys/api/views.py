"""Key API views: parse the request, call the lifecycle, render the contract's shapes."""

import uuid
from collections.abc import Mapping

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import lifecycle
from ..models import ApiKey
from .exceptions import RequestValidationError
from .serializers import (
    DevApiKeyCreatedSerializer,
    DevApiKeyCreateSerializer,
    DevApiKeySerializer,
    ErrorResponseSerializer,
    HTTPValidationErrorSerializer,
)

TAGS = ["API Keys"]
ERROR_401 = OpenApiResponse(ErrorResponseSerializer, description="Missing or invalid authentication credentials.")
ERROR_503 = OpenApiResponse(
    ErrorResponseSerializer, description="Firebase could not be reached to check the token; retry after Retry-After."
)
CREATE_DESCRIPTION = """Create a new Developer API key with optional scopes.

- **name**: Descriptive name for the key (1 to 100 characters after trimming surrounding
  whitespace; must not contain an API key)
- **scopes**: Optional list of scopes. If not provided, defaults to read-only access
  (`conversations:read`, `memories:read`, `action_items:read`, `goals:read`).
  Available scopes: `conversations:read`, `conversations:write`, `memories:read`,
  `memories:write`, `action_items:read`, `action_items:write`, `goals:read`, `goals:write`.

The response's `key` is the only time the secret is shown: store it now.
"""


class KeyAPIView(APIView):
    # No OPTIONS metadata: methods the API does not document answer 405,
    # and the Allow header lists only the documented ones.
    http_method_names = [method for method in APIView.http_method_names if method != "options"]


class KeyListCreateView(KeyAPIView):
    @extend_schema(
        operation_id="listApiKeys",
        summary="List Keys",
        description="The caller's active keys, newest first. The secret is never included.",
        tags=TAGS,
        responses={200: DevApiKeySerializer(many=True), 401: ERROR_401, 503: ERROR_503},
    )
    def get(self, request):
        keys = ApiKey.objects.active().for_owner(request.user).with_scopes()
        return Response(DevApiKeySerializer(keys, many=True).data)

    @extend_schema(
        operation_id="createApiKey",
        summary="Create Key",
        description=CREATE_DESCRIPTION,
        tags=TAGS,
        request=DevApiKeyCreateSerializer,
        responses={
            200: OpenApiResponse(DevApiKeyCreatedSerializer, description="Successful Response"),
            401: ERROR_401,
            413: OpenApiResponse(ErrorResponseSerializer, description="The request body is too large."),
            422: OpenApiResponse(HTTPValidationErrorSerializer, description="Validation Error"),
            503: ERROR_503,
        },
    )
    def post(self, request):
        if not isinstance(request.data, Mapping):
            raise RequestValidationError.single(
                ["body"],
                "Input should be a valid dictionary or object to extract fields from.",
                "model_attributes_type",
            )
        serializer = DevApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = lifecycle.issue_key(owner=request.user, **serializer.validated_data)
        body = DevApiKeyCreatedSerializer(issued.api_key, context={"plaintext": issued.plaintext}).data
        return Response(body, status=status.HTTP_200_OK, headers={"Cache-Control": "no-store"})


class KeyDetailView(KeyAPIView):
    @extend_schema(
        operation_id="revokeApiKey",
        summary="Revoke Key",
        description=(
            "Revoke one of the caller's keys; it stops working at once. Revoking an already "
            "revoked key succeeds again. Unknown ids and other users' keys are 404."
        ),
        tags=TAGS,
        responses={
            204: OpenApiResponse(description="Revoked."),
            401: ERROR_401,
            404: OpenApiResponse(ErrorResponseSerializer, description="No such key for this user."),
            503: ERROR_503,
        },
    )
    def delete(self, request, key_id: str):
        try:
            lifecycle.revoke_key(owner=request.user, key_id=uuid.UUID(key_id))
        except (ValueError, ApiKey.DoesNotExist):
            raise NotFound("No API key with this id.") from None
        return Response(status=status.HTTP_204_NO_CONTENT)
