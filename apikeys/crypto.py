"""Key format, generation and hashing. Standard library only, no Django imports.

A key is ``omi_dev_`` followed by 32 lowercase hex characters (128 bits from
``secrets``), the format Omi's own service issues.

Only a SHA-256 digest is stored: Omi's own scheme, the hex SHA-256 of the 32-hex
secret after ``omi_dev_``, so a hash Omi stored verifies here unchanged. Keys issued
before omikeys used that scheme were hashed over the whole key; their stored hashes
carry :data:`LEGACY_HASH_TAG` and keep verifying (:func:`candidate_hashes`).

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

KEY_RE = re.compile(rf"^{re.escape(KEY_PREFIX)}[0-9a-f]{{{SECRET_HEX_LENGTH}}}$")
# Anything that looks like a raw Omi secret (developer or MCP key, or a service token), in any case,
# anywhere in a text. Used to stop secrets being pasted into names.
RAW_KEY_IN_TEXT_RE = re.compile(rf"omi_(?:dev|mcp|svc)_[0-9a-f]{{{SECRET_HEX_LENGTH}}}", re.IGNORECASE)


@dataclass(frozen=True)
class GeneratedKey:
    """A new key: the plaintext (shown once), its display prefix and its stored hash."""

    plaintext: str
    display_prefix: str
    hashed: str

    def __repr__(self) -> str:  # keep the secret out of tracebacks and debug output
        return f"GeneratedKey(display_prefix={self.display_prefix!r})"


def generate_key() -> GeneratedKey:
    """Return a fresh key with its display prefix and hash, computed together."""
    plaintext = KEY_PREFIX + secrets.token_hex(SECRET_BYTES)
    return GeneratedKey(plaintext=plaintext, display_prefix=display_prefix(plaintext), hashed=hash_key(plaintext))


def hash_key(plaintext: str) -> str:
    """The stored hash of a key: SHA-256, hex, of its secret part (the 32 hex characters after ``omi_dev_``).

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

    Eight of the 32 hex characters are shown (32 bits), leaving 96 bits secret.
    """
    secret = plaintext[len(KEY_PREFIX) :]
    return f"{KEY_PREFIX}{secret[:DISPLAY_CHARS]}...{secret[-DISPLAY_CHARS:]}"


def is_well_formed(text: str) -> bool:
    """True when text has exactly the shape of an omikeys key."""
    return bool(KEY_RE.fullmatch(text))


# A key's shape whatever its prefix says: two short words joined by "_" or "-" (omi_dev_,
# omi-mcp-, a prefix with a lookalike letter), then exactly 32 hex digits. Matched in a skeleton.
SECRET_AFTER_PREFIX_RE = re.compile(
    rf"[^\W\d_]{{2,4}}[_-][^\W\d_]{{2,4}}[_-][0-9a-f]{{{SECRET_HEX_LENGTH}}}(?![0-9a-f])"
)


def contains_raw_key(text: str) -> bool:
    """True when text contains something that looks like a raw Omi secret (developer or MCP key).

    Also when the secret is disguised (matched in ``text.skeleton``): written in fullwidth or
    other compatibility forms, in upper case, with Cyrillic or Greek lookalikes in its prefix,
    or broken up by characters that draw nothing (default-ignorables, combining marks,
    spaces and line separators).
    """
    return bool(RAW_KEY_IN_TEXT_RE.search(text) or SECRET_AFTER_PREFIX_RE.search(skeleton(text)))


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
