"""GitHub's secret-scanning signatures: its published public keys (fetched, cached) and the check of a request.

GitHub signs each secret-scanning alert it sends a partner (docs.github.com, "Secret scanning partner
program"): ``Github-Public-Key-Identifier`` names one of the keys published at
https://api.github.com/meta/public_keys/secret_scanning (``{"public_keys": [{"key_identifier": "...",
"key": "-----BEGIN PUBLIC KEY-----...", "is_current": true}]}``), and ``Github-Public-Key-Signature`` is
the base64 of a DER-encoded ECDSA P-256 signature, with SHA-256, of the raw request body. The check uses
``cryptography`` (already a dependency for Fernet) rather than a library of its own.
"""

import base64
import binascii
import json
import logging

import urllib3
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger("apikeys.leaks")

KEYS_CACHE_KEY = "omikeys:leaks:github-public-keys"
# Set while a fetch made because of an unknown identifier is recent: an unknown identifier is looked up
# again at most this often, so requests with made-up identifiers cannot make omikeys hammer GitHub.
REFETCH_MARK_KEY = "omikeys:leaks:github-public-keys:refetched"
REFETCH_INTERVAL_SECONDS = 10
MAX_KEYS_BYTES = 256 * 1024
MAX_SIGNATURE_CHARS = 512
MAX_IDENTIFIER_CHARS = 200


class KeysUnavailable(Exception):
    """GitHub's public keys could not be fetched (down, slow past the timeout, or an answer that is not them)."""


class SignatureRefused(Exception):
    """The request is not signed by GitHub: missing headers, an unknown key identifier, a bad signature."""


def fetch_keys() -> dict[str, str]:
    """{key identifier: PEM public key} from ``OMIKEYS_GITHUB_KEYS_URL``, waiting at most
    ``OMIKEYS_GITHUB_KEYS_TIMEOUT`` seconds to connect and as long for the answer; cached for
    ``OMIKEYS_GITHUB_KEYS_CACHE_SECONDS``. Raises :class:`KeysUnavailable`."""
    timeout = settings.OMIKEYS_GITHUB_KEYS_TIMEOUT
    try:
        with urllib3.PoolManager(timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=False) as pool:
            response = pool.request(
                "GET",
                settings.OMIKEYS_GITHUB_KEYS_URL,
                headers={"Accept": "application/json", "User-Agent": "omikeys"},
                preload_content=False,
            )
            try:
                body = response.read(MAX_KEYS_BYTES + 1)
            finally:
                response.release_conn()
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KeysUnavailable(f"GitHub's public keys could not be fetched: {type(exc).__name__}") from None
    if response.status != 200 or len(body) > MAX_KEYS_BYTES:
        raise KeysUnavailable(f"GitHub's public keys answered {response.status}")
    try:
        entries = json.loads(body.decode("utf-8"))["public_keys"]
        keys = {entry["key_identifier"]: entry["key"] for entry in entries}
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items()):
            raise TypeError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise KeysUnavailable("GitHub's public keys answer is not the expected JSON") from None
    _cache_set(KEYS_CACHE_KEY, keys, settings.OMIKEYS_GITHUB_KEYS_CACHE_SECONDS)
    return keys


def public_key(identifier: str) -> str:
    """The PEM public key GitHub names ``identifier``: from the cache, else fetched (:func:`fetch_keys`);
    an identifier the cached keys lack makes one fetch (at most one per :data:`REFETCH_INTERVAL_SECONDS`),
    since GitHub may have published a new key. Raises :class:`SignatureRefused` for an identifier GitHub
    does not publish, :class:`KeysUnavailable` when the keys cannot be had."""
    keys = _cache_get(KEYS_CACHE_KEY)
    if keys is None or identifier not in keys and _cache_add(REFETCH_MARK_KEY, REFETCH_INTERVAL_SECONDS):
        keys = fetch_keys()
    if identifier not in keys:
        raise SignatureRefused("Github-Public-Key-Identifier names no key GitHub publishes.")
    return keys[identifier]


def verify(body: bytes, identifier: str | None, signature: str | None) -> None:
    """Check that ``body`` was signed by GitHub: returns None, or raises :class:`SignatureRefused` (nothing
    signed, an unknown identifier, a signature that is not base64 DER or does not hold for these bytes) or
    :class:`KeysUnavailable` (the keys cannot be fetched: the caller answers 503)."""
    if not identifier or not signature:
        raise SignatureRefused("The request must be signed: Github-Public-Key-Identifier and -Signature headers.")
    if len(identifier) > MAX_IDENTIFIER_CHARS or len(signature) > MAX_SIGNATURE_CHARS:
        raise SignatureRefused("The signature headers are too long.")
    try:
        raw_signature = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRefused("Github-Public-Key-Signature is not base64.") from None
    pem = public_key(identifier)
    try:
        key = serialization.load_pem_public_key(pem.encode("utf-8"))
    except (ValueError, UnsupportedAlgorithm):
        logger.error("GitHub's public key %s could not be read", identifier)
        raise SignatureRefused("The key GitHub publishes under this identifier cannot be read.") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SignatureRefused("The key GitHub publishes under this identifier is not an ECDSA key.")
    try:
        key.verify(raw_signature, body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise SignatureRefused("The signature does not match the request body.") from None


def _cache_get(name):
    try:
        return cache.get(name)
    except Exception:  # the cache down (Redis): fetch instead, as events.subscriptions does
        return None


def _cache_set(name, value, timeout) -> None:
    try:
        cache.set(name, value, timeout)
    except Exception:  # as above
        pass


def _cache_add(name, timeout) -> bool:
    try:
        return cache.add(name, True, timeout)
    except Exception:  # as above: without a cache, each unknown identifier is looked up
        return True
