"""Errors as data: the one place exceptions become the contract's JSON shapes.

* ``ErrorResponse``: ``{"detail": "message"}`` for 401, 404, 405, 413, 503...
* ``HTTPValidationError`` (422): ``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}``,
  with the error ``type`` names a FastAPI/pydantic client already knows.
"""

import logging

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from ..jsonapi.exceptions import PayloadTooLarge, RequestValidationError, ServiceUnavailable

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5

# DRF's built-in error codes, renamed to the pydantic names clients know.
# Codes raised by omikeys' own fields and validators are already final.
_TYPE_FOR_CODE = {
    "required": "missing",
    "null": "string_type",
    "blank": "string_too_short",
    "max_length": "string_too_long",
    "not_a_list": "list_type",
    "empty": "too_short",
    "null_characters_not_allowed": "string_control_characters",
    "surrogate_characters_not_allowed": "string_control_characters",
}


def validation_error_entries(detail) -> list[dict]:
    """A DRF ``ValidationError.detail`` as pydantic-style entries, one per location.

    DRF runs every validator of a field and reports each failure; like pydantic,
    the API reports the first problem found at each location.
    """
    first_per_loc = {}
    for entry in flatten_validation_errors(detail):
        first_per_loc.setdefault(tuple(entry["loc"]), entry)
    return list(first_per_loc.values())


def flatten_validation_errors(detail, loc: tuple = ("body",)) -> list[dict]:
    """Walk a DRF ``ValidationError.detail`` tree into pydantic-style entries.

    Dict keys and list indexes become ``loc`` items; a serializer-level
    (non-field) error stays at the parent's location.
    """
    if isinstance(detail, dict):
        errors = []
        for key, value in detail.items():
            child = loc if key == api_settings.NON_FIELD_ERRORS_KEY else (*loc, key)
            errors.extend(flatten_validation_errors(value, child))
        return errors
    if isinstance(detail, list):
        if all(isinstance(item, exceptions.ErrorDetail) for item in detail):
            return [_entry(loc, item) for item in detail]
        errors = []
        for index, value in enumerate(detail):
            if value:  # ListField reports children positionally; empty means "no error here"
                errors.extend(flatten_validation_errors(value, (*loc, index)))
        return errors
    return [_entry(loc, detail)]


def core_validation_entries(error: DjangoValidationError) -> list[dict]:
    """A lifecycle ``ValidationError`` (keyed by field) as entries: the first problem of each field."""
    return [
        _entry(("body", field), exceptions.ErrorDetail(errors[0].messages[0], code=errors[0].code))
        for field, errors in error.error_dict.items()
    ]


# One wording per kind of error, whichever serializer field raised it: DRF's default
# "This field is required." and the fields that already say pydantic's "Field required."
# would otherwise answer the same mistake in two ways.
_MESSAGE_FOR_CODE = {"required": "Field required."}


def _entry(loc: tuple, error) -> dict:
    code = getattr(error, "code", None) or "value_error"
    message = _MESSAGE_FOR_CODE.get(code, str(error))
    return {"loc": list(loc), "msg": message, "type": _TYPE_FOR_CODE.get(code, code)}


def exception_handler(exc, context):
    """DRF's ``EXCEPTION_HANDLER``: map every expected failure to its documented shape."""
    if isinstance(exc, RequestValidationError):
        return Response({"detail": exc.errors}, status=exc.status_code)
    if isinstance(exc, exceptions.ValidationError):
        return Response({"detail": validation_error_entries(exc.detail)}, status=422)
    if isinstance(exc, DjangoValidationError) and hasattr(exc, "error_dict"):
        # The core's refusal of a value the serializer accepted (say, an expiry that passed meanwhile).
        return Response({"detail": core_validation_entries(exc)}, status=422)
    if isinstance(exc, exceptions.ParseError):
        return Response(
            {"detail": [{"loc": ["body"], "msg": f"JSON decode error: {exc.detail}", "type": "json_invalid"}]},
            status=422,
        )
    if isinstance(exc, exceptions.UnsupportedMediaType):
        msg = "The request body must be JSON, sent with 'Content-Type: application/json'."
        return Response({"detail": [{"loc": ["body"], "msg": msg, "type": "content_type"}]}, status=422)
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django's 500 handler answers and logs it
    if isinstance(exc, exceptions.NotAuthenticated):
        request = context.get("request")
        authenticators = getattr(request, "authenticators", None) or [None]
        response.data = {
            "detail": getattr(
                authenticators[0],
                "missing_credentials_message",
                "Authentication required. Send 'Authorization: Bearer <Firebase ID token>'.",
            )
        }
    if isinstance(exc, ServiceUnavailable):
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def is_api_path(request) -> bool:
    """True for the API's paths (``/v1`` and ``/v1/...``), which answer JSON in every mode."""
    return request.path == "/v1" or request.path.startswith("/v1/")


def not_found(request, exception=None):
    """``handler404``: JSON on the API's paths, Django's page elsewhere (under DEBUG, ``api.middleware``
    turns Django's debug page into the same JSON)."""
    if is_api_path(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """``handler500``: never a stack trace; JSON on the API's paths."""
    if is_api_path(request):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return defaults.server_error(request)


def bad_request(request, exception=None):
    """``handler400``: e.g. a disallowed Host header."""
    if is_api_path(request):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)
