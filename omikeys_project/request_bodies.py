"""WSGI middleware: a request body sent without Content-Length (chunked) is read, within the size limit, or refused.

Django reads ``Content-Length`` bytes of a request body; a body sent with
``Transfer-Encoding: chunked`` has no length, so Django would read it as empty and a
request such as a rotation with a grace period would act as if sent without one.
"""

import io
import json

from django.conf import settings

API_PREFIX = "/v1/"
READ_SIZE = 64 * 1024


def _has_length(environ) -> bool:
    return bool(str(environ.get("CONTENT_LENGTH") or "").strip())


def _is_chunked(environ) -> bool:
    return "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()


class ChunkedBodyMiddleware:
    """Wraps the WSGI application: gives a chunked request body the ``Content-Length`` Django needs.

    * The server has decoded the chunks and marks the end of the body
      (``wsgi.input_terminated``, as gunicorn and mod_wsgi do): the body is read, up to
      ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes (413 beyond it, before reading the rest),
      and handed on with its length.
    * The server cannot (Django's runserver, wsgiref): 411 Length Required, and the
      connection is closed, rather than a body silently read as empty.

    Refusals are JSON (``{"detail": ...}``) under ``/v1/``, plain text elsewhere.
    """

    def __init__(self, application):
        self.application = application

    def __call__(self, environ, start_response):
        if _has_length(environ) or not _is_chunked(environ):
            return self.application(environ, start_response)
        if not environ.get("wsgi.input_terminated"):
            return self._refuse(
                environ,
                start_response,
                "411 Length Required",
                "This server cannot read a chunked request body: send the body with a Content-Length header.",
            )
        limit = body_limit(environ.get("PATH_INFO", ""))
        body = self._read(environ["wsgi.input"], limit)
        if limit is not None and len(body) > limit:
            return self._refuse(
                environ,
                start_response,
                "413 Content Too Large",
                f"The request body must be at most {limit} bytes.",
            )
        environ = {**environ, "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
        return self.application(environ, start_response)

    @staticmethod
    def _read(stream, limit: int | None) -> bytes:
        """The body, or its first ``limit + 1`` bytes when it is longer (enough to know it is too large)."""
        parts, size = [], 0
        while limit is None or size <= limit:
            want = READ_SIZE if limit is None else min(READ_SIZE, limit + 1 - size)
            part = stream.read(want)
            if not part:
                break
            parts.append(part)
            size += len(part)
        return b"".join(parts)

    @staticmethod
    def _refuse(environ, start_response, status: str, message: str):
        if environ.get("PATH_INFO", "").startswith(API_PREFIX):
            body = json.dumps({"detail": message}).encode()
            headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
        else:
            body = (message + "\n").encode()
            headers = [("Content-Type", "text/plain; charset=utf-8")]
        # The rest of the body is left unread. No Content-Length: a server that cannot skip
        # it (runserver) then closes the connection instead of reading the chunks as a
        # request; gunicorn discards it. (An application may not send "Connection: close"
        # itself: a hop-by-hop header, PEP 3333.)
        start_response(status, headers)
        return iter([body])  # not a list: wsgiref would count its length and keep the connection


# GitHub's secret-scanning alerts may be far larger than a request to the key API (docs/leaks.md).
LEAK_ALERT_PATH = "/v1/leaks/github"


def body_limit(path: str) -> int | None:
    """The most bytes a chunked body to ``path`` may have: ``OMIKEYS_LEAK_BODY_MAX_BYTES`` for GitHub's alerts,
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` for everything else (None: no limit)."""
    if path.rstrip("/") == LEAK_ALERT_PATH:
        return settings.OMIKEYS_LEAK_BODY_MAX_BYTES
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE
