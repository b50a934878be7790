"""A JSON parser with a size limit and no crash on pathological input."""

import json

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from .exceptions import PayloadTooLarge


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, with Django's body limit applied and NaN/Infinity rejected.

    Django refuses a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` when its length is
    declared; the same limit is applied here to a body that declares none.

    Deeply nested input raises ``RecursionError`` inside ``json``; that is a
    malformed body (422), not a server error.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge()
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
