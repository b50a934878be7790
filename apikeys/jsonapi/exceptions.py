"""Exceptions the JSON doors (the key API, the service API) raise; ``api.errors`` turns them into responses.

Kept apart from ``errors`` so that the authentication and parser classes, which
DRF imports while loading its settings, do not import ``rest_framework.views``.
"""

from django.conf import settings
from rest_framework import exceptions, status


class ServiceUnavailable(exceptions.APIException):
    """503: Firebase (or another service omikeys needs) could not be asked; errors adds Retry-After."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The service is temporarily unavailable. Try again shortly."
    default_code = "service_unavailable"


class Conflict(exceptions.APIException):
    """409: the key's state or the owner's active-key limit forbids the change."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the key's current state."
    default_code = "conflict"


class PreconditionFailed(exceptions.APIException):
    """412: an ``If-Match`` precondition does not hold; nothing was changed (RFC 9110, section 13.1.1)."""

    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The precondition in If-Match does not hold; nothing was changed."
    default_code = "precondition_failed"


class TooManyRequests(exceptions.Throttled):
    """429 with ``Retry-After`` and exactly the message given (DRF's adds a sentence of its own)."""

    def __init__(self, wait: int, detail: str):
        super().__init__(wait)
        self.detail = exceptions.ErrorDetail(detail, code=self.default_code)


class PayloadTooLarge(exceptions.APIException):
    """413: a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"

    def __init__(self):
        super().__init__(f"The request body must be at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")


class RequestValidationError(exceptions.APIException):
    """A 422 with a ready list of ``{"loc", "msg", "type"}`` entries."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "validation_error"

    def __init__(self, errors: list[dict]):
        super().__init__(detail="Validation error")
        self.errors = errors

    @classmethod
    def single(cls, loc: list, msg: str, type_: str) -> "RequestValidationError":
        return cls([{"loc": loc, "msg": msg, "type": type_}])
