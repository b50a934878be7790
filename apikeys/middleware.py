"""503 instead of 500 when a dependency cannot answer: JSON with Retry-After on the API, a page elsewhere."""

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

from . import dependencies

logger = logging.getLogger(__name__)

# When the failure came without a breaker's estimate (a lock wait or statement timeout).
DEFAULT_RETRY_AFTER = 5
API_PREFIX = "/v1/"
DETAIL = "The service is temporarily unavailable. Try again shortly."


class DependencyUnavailableMiddleware:
    """Turn a dependency's failure inside a view into 503 with ``Retry-After`` (RFC 9110, 10.2.3).

    Handles :class:`~apikeys.dependencies.DependencyUnavailable` (a breaker open, a
    connect or socket timeout) and Django's ``OperationalError`` and ``InterfaceError``
    (the database went away mid-request, a statement timed out, SQLite's write lock
    was not granted in time). On ``/v1/`` the body is the API's error shape,
    ``{"detail": "..."}``; elsewhere a page that needs neither the database nor a
    session. Other errors are left to Django's 500 handling.

    An outage is logged once by :mod:`apikeys.dependencies`; a database error that
    came without its breaker (mid-request) is logged here in one line, without a
    traceback, and Django's own per-response error line is suppressed.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code == 503 and response.has_header("Retry-After"):
            # A deliberate "try again later" (Firebase's breaker, say): the outage has its one
            # log line already; Django would add an error line for every such response.
            response._has_been_logged = True
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, dependencies.DependencyUnavailable):
            return unavailable_response(request, exception.retry_after)
        if isinstance(exception, (OperationalError, InterfaceError)):
            described = dependencies.describe(exception)
            logger.warning("database error on %s %s: %s", request.method, request.path, described)
            return unavailable_response(request, DEFAULT_RETRY_AFTER)
        return None


def unavailable_response(request, retry_after: int) -> HttpResponse:
    """503 with ``Retry-After: retry_after``: ``{"detail": ...}`` on the API, the 503 page elsewhere."""
    if request.path.startswith(API_PREFIX):
        response = JsonResponse({"detail": DETAIL}, status=503)
    else:
        response = HttpResponse(render_to_string("503.html", {"retry_after": retry_after}), status=503)
    response["Retry-After"] = str(retry_after)
    response["Cache-Control"] = "no-store"
    response._has_been_logged = True  # logged once per outage, not once per response
    return response
