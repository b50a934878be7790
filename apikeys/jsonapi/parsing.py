"""Strict JSON decoding shared by the JSON doors: UTF-8, no NaN or Infinity, no field named twice."""

import json


def loads_strict(raw: bytes):
    """``raw`` (a request body's bytes) decoded as JSON, or ``ValueError`` with a message for the client.

    JSON is UTF-8 (RFC 8259, section 8.1): a charset parameter is ignored, never trusted as a codec name.
    NaN and Infinity are refused (not JSON). An object that names a field twice
    (``{"name": "a", "name": "b"}``) is refused: RFC 8259 (section 4) leaves its meaning to the
    parser, and which value wins must not be a guess. Deeply nested input, which raises
    ``RecursionError`` inside ``json``, is a malformed body like any other (bytes that are not UTF-8 raise
    ``UnicodeDecodeError``, itself a ``ValueError``).
    """
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_unique_fields)
    except RecursionError:
        raise ValueError("JSON nested too deeply.") from None


def _unique_fields(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object as a dict; ``ValueError`` naming the first field given more than once."""
    obj = {}
    for field, value in pairs:
        if field in obj:
            raise ValueError(f"Duplicate field {json.dumps(field)}: each field may appear once")
        obj[field] = value
    return obj


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")
