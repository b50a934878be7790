"""Answers on the API's paths (/v1/) that no API view makes: never cached, and JSON even under DEBUG."""

import logging

from django.conf import settings
from django.core import signals
from django.http import JsonResponse

from .errors import INTERNAL_ERROR_BODY, is_api_path

logger = logging.getLogger("django.request")


class ApiResponseMiddleware:
    """For every request under ``/v1/``: ``Cache-Control: no-store``, and a JSON 500 under DEBUG.

    The key views set ``no-store`` themselves; this covers the answers made elsewhere
    (an unknown path's 404, a 500, a refused Host). With ``DEBUG`` on, Django would answer
    an uncaught exception with its HTML debug page; an API client gets the JSON 500 it
    gets in production, and the traceback goes to the log (the ``django.request``
    logger, as Django's own handler logs it).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if is_api_path(request) and not response.has_header("Cache-Control"):
            response["Cache-Control"] = "no-store"
        return response

    def process_exception(self, request, exception):
        if not (settings.DEBUG and is_api_path(request)):
            return None  # handler500 answers JSON when DEBUG is off
        signals.got_request_exception.send(sender=None, request=request)
        logger.error(
            "Internal Server Error: %s",
            request.path,
            exc_info=exception,
            extra={"status_code": 500, "request": request},
        )
        return JsonResponse(INTERNAL_ERROR_BODY, status=500)
