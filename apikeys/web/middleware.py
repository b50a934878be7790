"""Content Security Policy for the end-user pages: our own code only, Firebase Auth for sign-in."""

import secrets

from django.conf import settings
from django.utils.functional import SimpleLazyObject

# Where the browser half of Firebase sign-in talks to.
FIREBASE_ENDPOINTS = ("https://identitytoolkit.googleapis.com", "https://securetoken.googleapis.com")


def content_security_policy(nonce: str) -> str:
    """The web pages' ``Content-Security-Policy`` header value, allowing inline code with ``nonce`` only."""
    if settings.FIREBASE_AUTH_EMULATOR_HOST:
        connect = f"http://{settings.FIREBASE_AUTH_EMULATOR_HOST}"
    else:
        connect = " ".join(FIREBASE_ENDPOINTS)
    return "; ".join(
        [
            "default-src 'none'",
            # The nonce is for the import map, which a browser only accepts inline.
            f"script-src 'self' 'nonce-{nonce}'",
            "style-src 'self'",
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
            response["Content-Security-Policy"] = content_security_policy(str(request.csp_nonce))
        return response
