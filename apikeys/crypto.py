"""Key format, generation and hashing. Standard library only, no Django imports.

A key is ``omi_dev_`` followed by either

- 30 base62 random characters and a 6-character base62 CRC32 checksum (the "checksum" format,
  issued by default; docs/key-format.md), built like GitHub's tokens (``ghp_`` + 30 base62 +
  CRC32 in 6 base62) so that a secret scanner can tell a real key from random text offline
  (:func:`has_valid_checksum`); or
- 32 lowercase hex characters (128 bits from ``secrets``), the format Omi's own service issues
  (the "hex" format: keys issued so, and Omi's imported keys, keep working, and
  ``OMIKEYS_KEY_FORMAT=hex`` keeps issuing it for clients that cannot take the other).

Only a SHA-256 digest is stored: Omi's own scheme, the hex SHA-256 of the secret after
``omi_dev_`` (the 32 hex characters, or the 36 base62 characters with the checksum), so a
hash Omi stored verifies here unchanged. Keys issued before omikeys used that scheme were
hashed over the whole key; their stored hashes carry :data:`LEGACY_HASH_TAG` and keep
verifying (:func:`candidate_hashes`).

A slow password hash (PBKDF2,
bcrypt, argon2) exists to make guessing low-entropy human passwords expensive;
a 128-bit random secret cannot be guessed whatever the hash, so a single
SHA-256 gives the same protection for a leaked table while letting every
verification be one indexed lookup instead of hundreds of milliseconds of
stretching.
"""

import hashlib
import re
import secrets
import urllib.parse
import zlib
from dataclasses import dataclass

from .text import skeleton

KEY_PREFIX = "omi_dev_"
SECRET_BYTES = 16  # 128 bits -> 32 hex characters
SECRET_HEX_LENGTH = SECRET_BYTES * 2
DISPLAY_CHARS = 4  # characters shown at each end of the secret
# Marks a stored hash taken over the whole key (omikeys before it adopted Omi's scheme).
LEGACY_HASH_TAG = "fullkey:"
HASH_HEX_LENGTH = 64
STORED_HASH_MAX_LENGTH = len(LEGACY_HASH_TAG) + HASH_HEX_LENGTH
HASH_RE = re.compile(rf"[0-9a-f]{{{HASH_HEX_LENGTH}}}")

# The checksum format (docs/key-format.md): omi_dev_ + 30 random base62 + a 6-base62 CRC32.
BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # digit values 0..61
_BASE62_VALUE = {char: value for value, char in enumerate(BASE62_ALPHABET)}
RANDOM_LENGTH = 30  # 30 * log2(62) = 178.6 random bits
CHECKSUM_LENGTH = 6  # 62**6 > 2**32: any CRC32 fits
CHECKSUM_SECRET_LENGTH = RANDOM_LENGTH + CHECKSUM_LENGTH
KEY_FORMATS = ("checksum", "hex")

HEX_KEY_RE = re.compile(rf"^{re.escape(KEY_PREFIX)}[0-9a-f]{{{SECRET_HEX_LENGTH}}}$")
CHECKSUM_KEY_RE = re.compile(rf"^{re.escape(KEY_PREFIX)}[0-9A-Za-z]{{{CHECKSUM_SECRET_LENGTH}}}$")
# Either format's shape (a checksum-format key also needs its checksum to hold: is_well_formed).
KEY_RE = re.compile(
    rf"^{re.escape(KEY_PREFIX)}(?:[0-9a-f]{{{SECRET_HEX_LENGTH}}}|[0-9A-Za-z]{{{CHECKSUM_SECRET_LENGTH}}})$"
)
# What a scanner looks for in text, published in docs/key-format.md and the rule files of
# deploy/scanners/ (RE2: no lookarounds; the checksum is checked apart). Group 1 is the key. No \b:
# RE2's is ASCII-only and Python's Unicode-aware, and a key after "_" (OMI_KEY_omi_dev_...) or a
# JSON-escaped newline (\nomi_dev_...) has no word boundary before it. So nothing is required before
# the prefix (itself distinctive), and after the key only a character that cannot continue it.
SCANNER_RE = re.compile(r"(omi_dev_[0-9A-Za-z]{36})(?:[^0-9A-Za-z]|$)")
HEX_SCANNER_RE = re.compile(r"(omi_dev_[0-9a-f]{32})(?:[^0-9A-Za-z]|$)")
# Anything that looks like a raw Omi secret (developer or MCP key, or a service token, in the hex
# format; a developer key in the checksum format, whether its checksum holds or not), in any case,
# anywhere in a text. Used to stop secrets being pasted into names and reasons.
RAW_KEY_IN_TEXT_RE = re.compile(
    rf"omi_(?:dev|mcp|svc)_[0-9a-f]{{{SECRET_HEX_LENGTH}}}|omi_dev_[0-9a-z]{{{CHECKSUM_SECRET_LENGTH}}}",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class GeneratedKey:
    """A new key: the plaintext (shown once), its display prefix and its stored hash."""

    plaintext: str
    display_prefix: str
    hashed: str

    def __repr__(self) -> str:  # keep the secret out of tracebacks and debug output
        return f"GeneratedKey(display_prefix={self.display_prefix!r})"


def base62(number: int, width: int = CHECKSUM_LENGTH) -> str:
    """``number`` (>= 0) in base 62 with :data:`BASE62_ALPHABET` (``0``-``9``, ``A``-``Z``, ``a``-``z``:
    digit values 0 to 61, most significant first), left-padded with ``0`` to ``width`` characters.

    Raises ``ValueError`` for a negative number or one that needs more than ``width`` digits.
    """
    if number < 0:
        raise ValueError("base62 encodes numbers >= 0")
    if number >= 62**width:
        raise ValueError(f"{number} needs more than {width} base62 digits")
    digits = []
    while number:
        number, digit = divmod(number, 62)
        digits.append(BASE62_ALPHABET[digit])
    return "".join(reversed(digits)).rjust(width, "0")


def checksum(body: str) -> str:
    """The 6 base62 checksum characters that end a key whose first 38 characters are ``body``.

    ``body`` is ``omi_dev_`` and the 30 random characters; the checksum is the CRC-32 (ISO-HDLC,
    as ``zlib.crc32`` and Go's ``crc32.ChecksumIEEE``: polynomial 0x04C11DB7 reflected, initial and
    final XOR 0xFFFFFFFF) of its ASCII bytes, as an unsigned number in :func:`base62`, padded to 6.
    Covering the prefix too means a secret copied under another prefix fails the check.
    """
    return base62(zlib.crc32(body.encode("ascii")))


def has_valid_checksum(text: str) -> bool:
    """True when ``text`` is ``omi_dev_`` + 36 base62 characters whose last 6 are the :func:`checksum` of
    the rest. No database: a scanner (or a leak report) tells a real key from lookalikes with this alone."""
    if not isinstance(text, str) or not CHECKSUM_KEY_RE.fullmatch(text):
        return False
    # Decoding the 6 characters costs less than encoding the CRC (this runs on every verification);
    # a value over 2**32 - 1 can equal no CRC. The checksum is no secret: a plain comparison will do.
    value = 0
    for char in text[-CHECKSUM_LENGTH:]:
        value = value * 62 + _BASE62_VALUE[char]
    return value == zlib.crc32(text[:-CHECKSUM_LENGTH].encode("ascii"))


def generate_key(key_format: str = "checksum") -> GeneratedKey:
    """Return a fresh key with its display prefix and hash, computed together.

    ``key_format``: "checksum" (``omi_dev_`` + 30 random base62 + 6 base62 of CRC32, see
    :func:`checksum`) or "hex" (``omi_dev_`` + 32 hex, Omi's format); ``ValueError`` for anything else.
    """
    if key_format == "checksum":
        body = KEY_PREFIX + "".join(secrets.choice(BASE62_ALPHABET) for _ in range(RANDOM_LENGTH))
        plaintext = body + checksum(body)
    elif key_format == "hex":
        plaintext = KEY_PREFIX + secrets.token_hex(SECRET_BYTES)
    else:
        raise ValueError(f"unknown key format {key_format!r}; one of {', '.join(KEY_FORMATS)}")
    return GeneratedKey(plaintext=plaintext, display_prefix=display_prefix(plaintext), hashed=hash_key(plaintext))


def hash_key(plaintext: str) -> str:
    """The stored hash of a key: SHA-256, hex, of its secret part (everything after ``omi_dev_``: the
    32 hex characters, or the 36 base62 characters of the checksum format, checksum included).

    Omi's scheme (its ``hashed_key``: ``sha256(secret_part)``), so Omi's stored hashes verify unchanged.
    """
    return hashlib.sha256(plaintext.removeprefix(KEY_PREFIX).encode("utf-8")).hexdigest()


def legacy_hash_key(plaintext: str) -> str:
    """The stored hash of a key issued before Omi's scheme: :data:`LEGACY_HASH_TAG` + SHA-256 hex of the whole key.

    The tag keeps the two schemes apart in the same columns (a tagged value can never
    equal an untagged one), and travels with the hash when a rotation moves it to
    ``previous_key_hash``.
    """
    return LEGACY_HASH_TAG + hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def candidate_hashes(plaintext: str) -> tuple[str, str]:
    """Both stored forms a presented key may have: ``(hash_key(plaintext), legacy_hash_key(plaintext))``.

    Verification looks both up in one indexed statement.
    """
    return hash_key(plaintext), legacy_hash_key(plaintext)


def is_stored_hash(text: str) -> bool:
    """True when text has the shape of a hash in Omi's scheme: 64 lowercase hex characters."""
    return isinstance(text, str) and HASH_RE.fullmatch(text) is not None


def display_prefix(plaintext: str) -> str:
    """``omi_dev_abcd...wxyz``: recognisable to its owner, useless to anyone else.

    Eight characters of the secret are shown: of a hex key, 32 of its 128 bits, leaving 96 secret; of a
    checksum-format key, the first 4 random characters (23.8 bits) and the last 4 of the checksum. The
    checksum is computed from the random part, so its 4 shown characters (about 23.8 bits of the CRC32's
    32) tell something about it too: about 178.6 - 23.8 - 23.8 = 131 bits remain hidden, still far beyond
    guessing.
    """
    secret = plaintext[len(KEY_PREFIX) :]
    return f"{KEY_PREFIX}{secret[:DISPLAY_CHARS]}...{secret[-DISPLAY_CHARS:]}"


def is_well_formed(text: str) -> bool:
    """True when text is exactly an omikeys key: ``omi_dev_`` + 32 lowercase hex, or ``omi_dev_`` + 36
    base62 whose checksum holds (:func:`has_valid_checksum`). No database is asked either way."""
    if not isinstance(text, str):
        return False
    return bool(HEX_KEY_RE.fullmatch(text)) or has_valid_checksum(text)


# A key's shape whatever its prefix says: two short words joined by "_" or "-" (omi_dev_,
# omi-mcp-, a prefix with a lookalike letter), then exactly 32 hex digits; or omi_dev_ (with
# either separator) and 36 letters and digits, the checksum format (case-folded, so its checksum
# cannot be checked here). Matched in a skeleton.
SECRET_AFTER_PREFIX_RE = re.compile(
    rf"[^\W\d_]{{2,4}}[_-][^\W\d_]{{2,4}}[_-][0-9a-f]{{{SECRET_HEX_LENGTH}}}(?![0-9a-f])"
    rf"|omi[_-]dev[_-][0-9a-z]{{{CHECKSUM_SECRET_LENGTH}}}(?![0-9a-z])"
)


# Runs of letters and digits at least as long as a checksum-format secret: a secret pasted without its prefix.
BASE62_RUN_RE = re.compile(rf"[0-9A-Za-z]{{{CHECKSUM_SECRET_LENGTH},}}")
PERCENT_DECODINGS = 2  # a URL's query is often encoded once, sometimes twice; deeper is not followed


def contains_raw_key(text: str) -> bool:
    """True when text contains something that looks like a raw Omi secret (developer or MCP key, in
    either key format).

    Also when the secret is disguised (matched in ``text.skeleton``): written in fullwidth or
    other compatibility forms, in upper case, with Cyrillic or Greek lookalikes in its prefix,
    or broken up by characters that draw nothing (default-ignorables, combining marks,
    spaces and line separators); when it is percent-encoded (``omi%5Fdev%5F...``, decoded up to
    :data:`PERCENT_DECODINGS` times); and when a checksum-format secret stands without its prefix (any
    36 letters and digits, within a longer run too, whose checksum holds for ``omi_dev_``: 1 in 2**32 of
    random text).
    """
    for _ in range(PERCENT_DECODINGS + 1):
        if RAW_KEY_IN_TEXT_RE.search(text) or SECRET_AFTER_PREFIX_RE.search(skeleton(text)) or _bare_secret(text):
            return True
        decoded = urllib.parse.unquote(text)
        if decoded == text:
            return False
        text = decoded
    return False


def _bare_secret(text: str) -> bool:
    """True when some 36 consecutive letters and digits of ``text`` are a checksum-format secret."""
    for run in BASE62_RUN_RE.finditer(text):
        chars = run.group()
        for start in range(len(chars) - CHECKSUM_SECRET_LENGTH + 1):
            if has_valid_checksum(KEY_PREFIX + chars[start : start + CHECKSUM_SECRET_LENGTH]):
                return True
    return False


# Service tokens: the bearer credential of another service (a ServiceClient), never of a person.
SERVICE_TOKEN_PREFIX = "omi_svc_"
SERVICE_TOKEN_RE = re.compile(rf"^{re.escape(SERVICE_TOKEN_PREFIX)}[0-9a-f]{{{SECRET_HEX_LENGTH}}}$")


def generate_service_token() -> GeneratedKey:
    """A fresh service token (``omi_svc_`` + 32 hex, 128 bits), its display prefix and its hash, together.

    Built like an API key, with its own prefix so that neither credential can ever be
    taken for the other, and hashed over the whole token (:func:`hash_service_token`).
    """
    plaintext = SERVICE_TOKEN_PREFIX + secrets.token_hex(SECRET_BYTES)
    secret = plaintext[len(SERVICE_TOKEN_PREFIX) :]
    shown = f"{SERVICE_TOKEN_PREFIX}{secret[:DISPLAY_CHARS]}...{secret[-DISPLAY_CHARS:]}"
    return GeneratedKey(plaintext=plaintext, display_prefix=shown, hashed=hash_service_token(plaintext))


def hash_service_token(plaintext: str) -> str:
    """The stored hash of a service token: SHA-256, hex, of the whole token (as for API keys, one fast hash
    is enough for 128 random bits: see the module docstring)."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def is_service_token(text: str) -> bool:
    """True for a token shaped like a service token: ``omi_svc_`` in any case (the secret itself not checked)."""
    return text[: len(SERVICE_TOKEN_PREFIX)].lower() == SERVICE_TOKEN_PREFIX


def is_well_formed_service_token(text: str) -> bool:
    """True when text has exactly the shape of a service token: ``omi_svc_`` and 32 lowercase hex characters."""
    return bool(SERVICE_TOKEN_RE.fullmatch(text))
