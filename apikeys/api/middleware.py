"""Answers on the API's paths (/v1/) that no API view makes: never cached, and JSON in every mode."""

from http import HTTPStatus

from django.http import JsonResponse

from .errors import is_api_path

# The detail of an answer Django made as an HTML page (its debug pages, under DEBUG).
GENERIC_DETAILS = {400: "Bad request.", 404: "Not found.", 500: "Internal server error."}


def generic_detail(status: int) -> str:
    """A short detail for an answer of ``status`` that came without one: "Not found.", "Bad request."..."""
    if status in GENERIC_DETAILS:
        return GENERIC_DETAILS[status]
    try:
        return f"{HTTPStatus(status).phrase}."
    except ValueError:
        return "Error."


class ApiResponseMiddleware:
    """For every request under ``/v1/``: ``Cache-Control: no-store``, and JSON instead of an HTML page.

    The key views set ``no-store`` and answer JSON themselves; this covers the answers
    made elsewhere. With ``DEBUG`` on, Django answers an uncaught exception, a refused
    Host header or a 404 raised outside the API's views with its HTML debug page; an API
    client gets the ``{"detail": ...}`` it gets in production instead (the traceback is
    still logged by Django, as always). First in ``MIDDLEWARE``, so it sees the answers
    of every other middleware too.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not is_api_path(request):
            return response
        if response.status_code >= 400 and response.get("Content-Type", "").startswith("text/html"):
            response = JsonResponse({"detail": generic_detail(response.status_code)}, status=response.status_code)
        if not response.has_header("Cache-Control"):
            response["Cache-Control"] = "no-store"
        return response
