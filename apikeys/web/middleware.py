"""Content Security Policy for the end-user pages: our own code only, Firebase Auth for sign-in."""

import secrets

from django.conf import settings
from django.utils.functional import SimpleLazyObject

# Where the browser half of Firebase sign-in talks to.
FIREBASE_ENDPOINTS = ("https://identitytoolkit.googleapis.com", "https://securetoken.googleapis.com")


# Statuses whose pages Django's debug views draw under DEBUG (a technical 404, or the
# traceback page of a 500 or a refused request); they are all inline styles and scripts.
DEBUG_PAGE_STATUSES = {400, 404, 500}


def content_security_policy(nonce: str, *, debug_page: bool = False) -> str:
    """The web pages' ``Content-Security-Policy`` header value, allowing inline code with ``nonce`` only.

    ``debug_page`` (only under DEBUG, for Django's own error pages) allows inline styles and
    scripts instead of the nonce, which those pages do not carry; a browser ignores
    ``'unsafe-inline'`` next to a nonce, so the nonce is left out there.
    """
    if debug_page:
        script, style = "'self' 'unsafe-inline'", "'self' 'unsafe-inline'"
    else:
        script, style = f"'self' 'nonce-{nonce}'", "'self'"
    if settings.FIREBASE_AUTH_EMULATOR_HOST:
        connect = f"http://{settings.FIREBASE_AUTH_EMULATOR_HOST}"
    else:
        connect = " ".join(FIREBASE_ENDPOINTS)
    return "; ".join(
        [
            "default-src 'none'",
            # The nonce is for the import map, which a browser only accepts inline.
            f"script-src {script}",
            f"style-src {style}",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src 'self' {connect}",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ]
    )


class ContentSecurityPolicyMiddleware:
    """Adds a strict CSP to the web pages (the ``web`` URL namespace) and a nonce for their templates.

    The admin and the API docs are left alone: they ship inline code of their own.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.csp_nonce = SimpleLazyObject(lambda: secrets.token_urlsafe(18))
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        is_web_page = (match is not None and match.namespace == "web") or getattr(request, "wants_csp", False)
        if is_web_page and "Content-Security-Policy" not in response:
            debug_page = settings.DEBUG and response.status_code in DEBUG_PAGE_STATUSES
            response["Content-Security-Policy"] = content_security_policy(str(request.csp_nonce), debug_page=debug_page)
        return response
