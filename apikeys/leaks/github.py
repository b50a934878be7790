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
import hashlib
import json
import logging
import threading
import time

import urllib3
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger("apikeys.leaks")

# Each cache entry's name ends with a digest of OMIKEYS_GITHUB_KEYS_URL (_names), so keys fetched from one
# source are never taken for another's.
KEYS_CACHE_PREFIX = "omikeys:leaks:github-public-keys"
# An identifier the cached keys lack is looked up again at most this often (GitHub may have published a new
# key), so requests with made-up identifiers cannot make omikeys spend GitHub's 60 unauthenticated calls an hour.
REFETCH_INTERVAL_SECONDS = 60
# After a failed fetch, none is tried for this long: the requests meanwhile answer 503 (or use the last good
# copy) at once, instead of each waiting for GitHub again.
FAILURE_HOLD_SECONDS = 30
# The last keys fetched, kept this long to check alerts with while GitHub cannot be reached.
LAST_GOOD_SECONDS = 7 * 86400
MAX_KEYS_BYTES = 256 * 1024
READ_CHUNK_BYTES = 16 * 1024
MAX_SIGNATURE_CHARS = 512
MAX_IDENTIFIER_CHARS = 200


class KeysUnavailable(Exception):
    """GitHub's public keys could not be had (down, slow past the timeout, an answer that is not them, a fetch
    held back after a failure or under way in another request, or a key that cannot be read): the caller
    answers 503."""


class SignatureRefused(Exception):
    """The request is not signed by GitHub: missing headers, an unknown key identifier, a bad signature."""


def _names() -> dict[str, str]:
    digest = hashlib.sha256(settings.OMIKEYS_GITHUB_KEYS_URL.encode("utf-8")).hexdigest()[:16]
    return {
        name: f"{KEYS_CACHE_PREFIX}:{digest}:{name}" for name in ("fresh", "last-good", "failed", "lock", "refetched")
    }


def fetch_keys(etag: str = "") -> tuple[dict[str, str] | None, str]:
    """``({key identifier: PEM public key}, ETag)`` from ``OMIKEYS_GITHUB_KEYS_URL``, or ``(None, etag)`` when
    GitHub answers 304 to ``If-None-Match: etag`` (the keys have not changed). Sends ``Authorization: Bearer
    OMIKEYS_GITHUB_TOKEN`` when set (unauthenticated calls to api.github.com are limited to 60 an hour).

    The whole exchange (connecting, and reading the answer however slowly it trickles) ends within
    ``OMIKEYS_GITHUB_KEYS_TIMEOUT`` seconds, plus at most that again for the connection. Raises
    :class:`KeysUnavailable`. Caches nothing (:func:`public_key` does)."""
    timeout = settings.OMIKEYS_GITHUB_KEYS_TIMEOUT
    headers = {"Accept": "application/json", "User-Agent": "omikeys"}
    if settings.OMIKEYS_GITHUB_TOKEN:
        headers["Authorization"] = f"Bearer {settings.OMIKEYS_GITHUB_TOKEN}"
    if etag:
        headers["If-None-Match"] = etag
    deadline = time.monotonic() + timeout
    try:
        with urllib3.PoolManager(timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=False) as pool:
            response = pool.request(
                "GET", settings.OMIKEYS_GITHUB_KEYS_URL, headers=headers, preload_content=False, redirect=False
            )
            try:
                body = _read_until(response, deadline)
            finally:
                response.release_conn()
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KeysUnavailable(f"GitHub's public keys could not be fetched: {type(exc).__name__}") from None
    if response.status == 304 and etag:
        return None, etag
    if response.status != 200:
        raise KeysUnavailable(f"GitHub's public keys answered {response.status}")
    try:
        entries = json.loads(body.decode("utf-8"))["public_keys"]
        keys = {entry["key_identifier"]: entry["key"] for entry in entries}
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items()):
            raise TypeError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise KeysUnavailable("GitHub's public keys answer is not the expected JSON") from None
    return keys, response.headers.get("ETag", "")


def _read_until(response, deadline: float) -> bytes:
    """The answer's body, at most :data:`MAX_KEYS_BYTES`, read in chunks as they come until ``deadline``
    (``time.monotonic``): a server trickling bytes cannot hold the request past it (each read alone is
    bounded by the socket timeout, the whole only by this). Raises :class:`KeysUnavailable`."""
    chunks, size = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise KeysUnavailable("GitHub's public keys took longer than OMIKEYS_GITHUB_KEYS_TIMEOUT to read")
        sock = getattr(getattr(response, "connection", None), "sock", None)
        if sock is not None:
            sock.settimeout(left)
        chunk = response.read1(READ_CHUNK_BYTES)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_KEYS_BYTES:
            raise KeysUnavailable("GitHub's public keys answer is too large")


def _refresh(names: dict[str, str]) -> dict[str, str]:
    """Fetch the keys (one request at a time across processes: a cache lock; none for
    :data:`FAILURE_HOLD_SECONDS` after a failure), store them as the fresh copy (for
    ``OMIKEYS_GITHUB_KEYS_CACHE_SECONDS``) and the last good one (:data:`LAST_GOOD_SECONDS`), and return
    them. A 304 keeps the last good copy's keys. Raises :class:`KeysUnavailable`."""
    if _get(names["failed"]):
        raise KeysUnavailable("GitHub's public keys failed to fetch moments ago; not asked again yet")
    lock_seconds = int(2 * settings.OMIKEYS_GITHUB_KEYS_TIMEOUT) + 5
    if not _add(names["lock"], lock_seconds):
        raise KeysUnavailable("GitHub's public keys are being fetched by another request")
    try:
        last = _get(names["last-good"])
        try:
            keys, etag = fetch_keys(last["etag"] if last else "")
        except KeysUnavailable:
            _set(names["failed"], True, FAILURE_HOLD_SECONDS)
            raise
        if keys is None:
            keys = last["keys"]
        entry = {"keys": keys, "etag": etag}
        _set(names["fresh"], entry, settings.OMIKEYS_GITHUB_KEYS_CACHE_SECONDS)
        _set(names["last-good"], entry, LAST_GOOD_SECONDS)
        return keys
    finally:
        _delete(names["lock"])


def public_key(identifier: str) -> str:
    """The PEM public key GitHub names ``identifier``.

    From the cached keys; fetched (:func:`_refresh`) when none are cached, or once per
    :data:`REFETCH_INTERVAL_SECONDS` for an identifier the cached keys lack (GitHub may have published a new
    key). When a fetch cannot be made or fails, the last good copy (up to :data:`LAST_GOOD_SECONDS` old) is
    used. Raises :class:`SignatureRefused` only when keys fetched successfully lack ``identifier``;
    :class:`KeysUnavailable` (503) when no keys can be had, or the identifier is unknown while a fetch is
    failing or held back."""
    names = _names()
    fresh = _get(names["fresh"])
    refetching = False
    if fresh is not None:
        if identifier in fresh["keys"]:
            return fresh["keys"][identifier]
        if not _add(names["refetched"], REFETCH_INTERVAL_SECONDS):
            raise SignatureRefused("Github-Public-Key-Identifier names no key GitHub publishes.")
        refetching = True
    try:
        keys = _refresh(names)
    except KeysUnavailable:
        if refetching:
            _delete(names["refetched"])  # GitHub's retry may fetch again once the failure hold ends
        last = _get(names["last-good"])
        if last is not None and identifier in last["keys"]:
            return last["keys"][identifier]
        raise
    if identifier not in keys:
        raise SignatureRefused("Github-Public-Key-Identifier names no key GitHub publishes.")
    return keys[identifier]


def verify(body: bytes, identifier: str | None, signature: str | None) -> None:
    """Check that ``body`` was signed by GitHub: returns None, or raises :class:`SignatureRefused` (nothing
    signed, an unknown identifier, a signature that is not base64 DER or does not hold for these bytes) or
    :class:`KeysUnavailable` (the keys cannot be had, or the one named cannot be read: the caller answers 503)."""
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
        raise KeysUnavailable("The key GitHub publishes under this identifier cannot be read.") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        logger.error("GitHub's public key %s is not an ECDSA key", identifier)
        raise KeysUnavailable("The key GitHub publishes under this identifier is not an ECDSA key.")
    try:
        key.verify(raw_signature, body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise SignatureRefused("The signature does not match the request body.") from None


# The cache shared by the processes (Redis) may be down: then each process keeps these entries itself, so a
# cache outage cannot turn into a fetch per request.
_local: dict[str, tuple[float, object]] = {}
_local_lock = threading.Lock()


def _local_get(name):
    with _local_lock:
        expires, value = _local.get(name, (0.0, None))
        return value if expires > time.monotonic() else None


def _get(name):
    try:
        return cache.get(name)
    except Exception:  # the cache down: this process's own copy
        return _local_get(name)


def _set(name, value, timeout) -> None:
    try:
        cache.set(name, value, timeout)
    except Exception:
        with _local_lock:
            _local[name] = (time.monotonic() + timeout, value)


def _add(name, timeout) -> bool:
    try:
        return cache.add(name, True, timeout)
    except Exception:
        with _local_lock:
            if _local.get(name, (0.0, None))[0] > time.monotonic():
                return False
            _local[name] = (time.monotonic() + timeout, True)
            return True


def _delete(name) -> None:
    try:
        cache.delete(name)
    except Exception:
        pass
    with _local_lock:
        _local.pop(name, None)
