"""How log lines look: plain or JSON formatters that redact secrets, and the request id on every record.

Imported by ``LOGGING`` while Django starts, so it imports no models. The request id
is set by :class:`apikeys.request_logging.RequestLogMiddleware` for the duration of a
request and read here through a context variable (one per thread or task).
"""

import contextvars
import logging
import re

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("omikeys_request_id", default=None)

REDACTED = "[redacted]"
# What a log line must never hold, whatever logged it: an API key (omi_dev_ + hex or base62; the
# display prefix "omi_dev_e1f8...7aab" is not one) or a service token (omi_svc_ + hex), a
# JSON Web Token (Firebase ID tokens and session cookies), a 64-hex-digit SHA-256 (a stored
# key hash), the credential of an Authorization header, and the value of a session or CSRF cookie.
SECRETS_RE = re.compile(
    r"(?P<key>omi_(?:dev|svc)_)[A-Za-z0-9]{8,}"
    r"|eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
    r"|(?<![0-9A-Fa-f])[0-9A-Fa-f]{64}(?![0-9A-Fa-f])"
    r"|(?P<scheme>\b(?:Bearer|Basic|Api-Key)\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|(?P<cookie>\b(?:sessionid|csrftoken|session|__session)=)[^\s\"';&]+",
    re.IGNORECASE,
)


# What a line must contain for SECRETS_RE to have anything to find there: checked first,
# with string methods, because the expression costs some 20 times more than these checks
# and almost no line holds any of them.
_TRIGGERS = ("omi_dev_", "omi_svc_", "eyj", "bearer", "basic", "api-key", "session", "csrftoken")
_HEX_DIGITS = bytes.maketrans(b"0123456789abcdefABCDEF", b"h" * 22)
_HEX_RUN = b"h" * 64


def redact(text: str) -> str:
    """``text`` with every secret :data:`SECRETS_RE` recognises replaced by ``[redacted]``.

    A key keeps its ``omi_dev_`` prefix, an Authorization value its scheme and a cookie
    its name, so the line still says what was there.
    """
    lowered = text.lower()
    if any(trigger in lowered for trigger in _TRIGGERS) or _HEX_RUN in text.encode(errors="replace").translate(
        _HEX_DIGITS
    ):
        return SECRETS_RE.sub(_replacement, text)
    return text


def _replacement(match: re.Match) -> str:
    return (match.group("key") or match.group("scheme") or match.group("cookie") or "") + REDACTED


# The SQL literals Django's debug query log prints, quoted strings and bare numbers.
SQL_STRING_RE = re.compile(r"'(?:[^']|'')*'")


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record: the current request's id, or "-" outside a request.

    Django's query log (``django.db.backends``, at DEBUG with a debug cursor) prints each
    statement with its values: it keeps the statements and replaces the values, which
    include key hashes and session keys, with ``?``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        if record.name == "django.db.backends" and isinstance(record.args, tuple) and len(record.args) == 4:
            duration, sql, params, alias = record.args
            record.args = (duration, SQL_STRING_RE.sub("?", str(sql)), f"[{len(params or ())} values]", alias)
            record.sql = record.args[1]
            record.params = record.args[2]
        return True


class PlainFormatter(logging.Formatter):
    """``logging.Formatter`` whose lines, tracebacks included, pass through :func:`redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(BaseJsonFormatter):
    """One JSON object per line (python-json-logger), passed through :func:`redact`.

    Fields: ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``, ``message``,
    ``request_id``, ``exc_info`` when there is a traceback, and the record's extra
    fields (the request log's method, path, status...). Django's ``request`` object,
    which the ``django.request`` logger attaches, is left out: its text holds the query string.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("fmt", "%(levelname)s %(name)s %(message)s %(request_id)s")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", True)
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "request", "server_time"])
        super().__init__(*args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
