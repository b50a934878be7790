"""A JSON parser with a size limit and no crash on pathological input."""

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from ..jsonapi.exceptions import PayloadTooLarge
from ..jsonapi.parsing import loads_strict


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, with Django's body limit applied and NaN/Infinity rejected.

    Django refuses a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` when its length is
    declared; the same limit is applied here to a body that declares none.

    Decoding is ``jsonapi.parsing.loads_strict``'s: deeply nested input, NaN or an object that
    names a field twice is a malformed body (422), not a server error.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge()
        try:
            return loads_strict(raw)
        except ValueError as exc:
            raise ParseError(str(exc)) from None
