"""A JSON parser with a size limit and no crash on pathological input."""

import json

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from ..jsonapi.exceptions import PayloadTooLarge


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, with Django's body limit applied and NaN/Infinity rejected.

    Django refuses a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` when its length is
    declared; the same limit is applied here to a body that declares none.

    Deeply nested input raises ``RecursionError`` inside ``json``; that is a
    malformed body (422), not a server error. An object that names a field twice
    (``{"name": "a", "name": "b"}``) is refused too: RFC 8259 (section 4) leaves its
    meaning to the parser, and which value wins must not be a guess.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge()
        try:
            # JSON is UTF-8 (RFC 8259): a charset parameter is ignored, never trusted as a codec name.
            return json.loads(
                raw.decode("utf-8"), parse_constant=self._reject_constant, object_pairs_hook=self._unique_fields
            )
        except RecursionError:
            raise ParseError("JSON nested too deeply.") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(str(exc)) from None

    @staticmethod
    def _unique_fields(pairs: list[tuple[str, object]]) -> dict:
        """A JSON object as a dict; ``ValueError`` naming the first field given more than once."""
        obj = {}
        for field, value in pairs:
            if field in obj:
                raise ValueError(f"Duplicate field {json.dumps(field)}: each field may appear once")
            obj[field] = value
        return obj

    @staticmethod
    def _reject_constant(name):
        raise ValueError(f"{name} is not valid JSON")
