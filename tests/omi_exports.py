"""Omi's dev_api_keys documents as Omi's backend writes them, and export files of them (NDJSON, plain or gzip)."""

import gzip
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

from apikeys.importers.omi import OMI_DOCUMENT_NAMESPACE


@dataclass(frozen=True)
class OmiKey:
    """A key as Omi's generate_dev_api_key makes it: the plaintext its user holds, the stored hash and prefix."""

    plaintext: str
    hashed_key: str
    key_prefix: str


def omi_key() -> OmiKey:
    # Omi's backend/utils/dev_api_keys.py: hashed_key is sha256 of the 32-hex secret part.
    secret = secrets.token_hex(16)
    return OmiKey(
        f"omi_dev_{secret}", hashlib.sha256(secret.encode()).hexdigest(), f"omi_dev_{secret[:4]}...{secret[-4:]}"
    )


def firestore_auto_id() -> str:
    """A document id like Firestore's own: 20 letters and digits."""
    return secrets.token_urlsafe(15).replace("-", "a").replace("_", "b")[:20]


def document(key: OmiKey, uid: str, *, document_id: str | None = None, **fields) -> dict:
    """One line of an export, ``{"id": ..., "data": {...}}``, with the fields Omi's create_dev_key writes.

    ``fields`` replace or add data fields; a value of ``...`` (Ellipsis) removes that field.
    """
    document_id = document_id or str(uuid.uuid4())
    data = {
        "id": document_id,
        "user_id": uid,
        "name": "My integration",
        "hashed_key": key.hashed_key,
        "key_prefix": key.key_prefix,
        "created_at": "2025-03-04T05:06:07.123456+00:00",
        "last_used_at": None,
        "app_id": "developer_api",
        "scopes": ["memories:read", "conversations:read"],
    }
    data.update(fields)
    return {"id": document_id, "data": {name: value for name, value in data.items() if value is not ...}}


def key_id(document_id: str) -> uuid.UUID:
    """The omikeys id the importer gives a document: itself if a UUID (either case), else uuid5 of it."""
    try:
        if str(uuid.UUID(document_id)) == document_id.lower():
            return uuid.UUID(document_id)
    except ValueError:
        pass
    return uuid.uuid5(OMI_DOCUMENT_NAMESPACE, document_id)


def write_export(path: Path, lines: list, *, gz: bool = False) -> Path:
    """Write ``lines`` (documents as dicts, or raw str/bytes lines) as NDJSON, gzip-compressed if ``gz``."""
    body = b"".join(
        (line if isinstance(line, bytes) else (line if isinstance(line, str) else json.dumps(line)).encode()) + b"\n"
        for line in lines
    )
    path.write_bytes(gzip.compress(body) if gz else body)
    return path
