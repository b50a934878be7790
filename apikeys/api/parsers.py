"""A JSON parser with a size limit and no crash on pathological input."""

import json

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from .exceptions import PayloadTooLarge

MAX_BODY_BYTES = 16 * 1024  # a key request is a name and a handful of scopes


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, accepting at most ``MAX_BODY_BYTES`` and rejecting NaN/Infinity.

    Django itself refuses larger bodies before they are buffered
    (``DATA_UPLOAD_MAX_MEMORY_SIZE``); this limit covers bodies without a length.

    Deeply nested input raises ``RecursionError`` inside ``json``; that is a
    malformed body (422), not a server error.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read(MAX_BODY_BYTES + 1) if stream is not None else b""
        if len(raw) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"The request body must be at most {MAX_BODY_BYTES} bytes.")
        try:
            # JSON is UTF-8 (RFC 8259): a charset parameter is ignored, never trusted as a codec name.
            return json.loads(raw.decode("utf-8"), parse_constant=self._reject_constant)
        except RecursionError:
            raise ParseError("JSON nested too deeply.") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(str(exc)) from None

    @staticmethod
    def _reject_constant(name):
        raise ValueError(f"{name} is not valid JSON")
