"""Each request's id (``X-Request-ID``) and, with ``OMIKEYS_REQUEST_LOG`` on, one log line per request."""

import logging
import re
import time
import uuid

from django.conf import settings
from django.core.signals import request_finished
from django.dispatch import receiver
from django.utils.functional import empty

from . import log_format
from .audit import client_ip
from .models import ApiKey

logger = logging.getLogger("omikeys.requests")

HEADER = "X-Request-ID"
# An id a proxy sends is used only if it looks like one: 1 to 128 letters, digits, dots,
# colons and hyphens (nginx's $request_id is 32 hex digits). Anything else gets a new id.
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:-]{0,127}")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
MAX_PATH = 1000
MAX_USER_AGENT = 300


class RequestLogMiddleware:
    """Gives each request an id, returns it in ``X-Request-ID``, and logs the request.

    The id is a new random one (32 hex digits), or, with ``OMIKEYS_TRUST_REQUEST_ID``
    on, the ``X-Request-ID`` the proxy in front sent, if it matches
    :data:`REQUEST_ID_RE`. While the request runs, every log record carries it
    (``log_format.RequestIdFilter``). With ``OMIKEYS_REQUEST_LOG`` on, logger
    ``omikeys.requests`` writes one INFO record per request when its response is
    ready, with the fields method, path (never the query string), status,
    duration_ms, remote_addr, user_agent, and, when known, key_id (the API key
    that authenticated), uid (the Firebase uid) and user_id. It never holds a
    credential: keys, tokens and cookies are not read, and the formatters redact any
    that a path or user agent carries.

    Put it first in ``MIDDLEWARE``, so that its duration covers the others too.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        incoming = request.META.get("HTTP_X_REQUEST_ID", "") if settings.OMIKEYS_TRUST_REQUEST_ID else ""
        request.request_id = incoming if REQUEST_ID_RE.fullmatch(incoming) else uuid.uuid4().hex
        # Kept until the response is closed (request_finished, see end_request_id), not
        # reset on the way out: Django's handler logs a 4xx/5xx ("Unauthorized: ...",
        # logger django.request) after the outermost middleware has returned, and that
        # line belongs to this request too.
        log_format.request_id.set(request.request_id)
        try:
            response = self.get_response(request)
        except BaseException:
            end_request_id()
            raise
        response[HEADER] = request.request_id
        if settings.OMIKEYS_REQUEST_LOG:
            log_request(request, response, started)
        return response


@receiver(request_finished, dispatch_uid="omikeys-end-request-id")
def end_request_id(**kwargs) -> None:
    """Forget the request id once the response is closed (Django's ``request_finished``),
    so lines logged between requests carry "-", not the last request's id."""
    log_format.request_id.set(None)


def log_request(request, response, started: float) -> None:
    """Write the request's line to ``omikeys.requests`` (see :class:`RequestLogMiddleware`)."""
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    path = printable(request.path)[:MAX_PATH]
    fields = {
        "method": request.method,
        "path": path,
        "status": response.status_code,
        "duration_ms": duration_ms,
        "remote_addr": client_ip(request),
        "user_agent": printable(request.META.get("HTTP_USER_AGENT", ""))[:MAX_USER_AGENT],
        **who(request),
    }
    logger.info("%s %s %s %.1fms", request.method, path, response.status_code, duration_ms, extra=fields)


def who(request) -> dict:
    """``key_id``, ``uid`` and ``user_id`` of whoever the request was authenticated as, when known.

    Reads only what authentication already set: a user the request never needed is not
    looked up (that would cost a session read).
    """
    found = {}
    auth = request.__dict__.get("auth")  # set by DRF's authentication on the Django request
    if isinstance(auth, ApiKey):
        found["key_id"] = str(auth.pk)
    elif isinstance(auth, dict) and "uid" in auth:  # the claims of a Firebase ID token
        found["uid"] = auth["uid"]
    user = request.__dict__.get("user")
    if getattr(user, "_wrapped", None) is empty:  # AuthenticationMiddleware's lazy user, never read
        user = None
    if user is not None and getattr(user, "is_authenticated", False):
        found["user_id"] = user.pk
        if user.firebase_uid:
            found["uid"] = user.firebase_uid
    return found


def printable(text: str) -> str:
    """``text`` with control characters (a decoded %0A, say) written as ``\\xNN``, so a line stays one line."""
    return CONTROL_RE.sub(lambda match: f"\\x{ord(match.group()):02x}", text)
