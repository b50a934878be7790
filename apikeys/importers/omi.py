"""Omi's Developer API keys, from an export of its Firestore collection ``dev_api_keys``, imported by the lifecycle.

The export is NDJSON: one document per line, ``{"id": "<document id>", "data": {<fields>}}``
(optionally ``"create_time"``, the document's creation time), plain or gzip-compressed.
:class:`OmiImporter` streams it: each line is read, checked and repaired the way Omi's
own backend repairs legacy records (``backend/database/api_key_metadata.py``:
``project_api_key_metadata`` and ``normalize_api_key_scopes``), its owner found or made
by the one-user-per-uid rule, and the keys handed to ``lifecycle.import_keys`` in
batches. The reading and checking (:class:`DocumentReader`), and the search for
repeated document ids and hashes, run in a child process while the parent writes
(:func:`read_in_process`). Memory stays bounded whatever the file's size: one batch at a
time, and the document ids and hashes already seen kept in a temporary SQLite file, not
in memory.
"""

import datetime
import gc
import gzip
import io
import json
import multiprocessing
import re
import signal
import sqlite3
import sys
import tempfile
import time
import unicodedata
import uuid
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from .. import crypto, firebase, lifecycle
from ..audit import Actor
from ..models import KEY_NAME_MAX_LENGTH, OMI_DOCUMENT_ID_MAX_LENGTH, ApiKey, Scope, User, validate_key_name

# The four read scopes of the contract: what a key recorded without scopes gets by default.
CONTRACT_READ_SCOPES = ("action_items:read", "conversations:read", "goals:read", "memories:read")
# What Omi's own backend shows for a record whose name or prefix is unusable (api_key_metadata.py).
LEGACY_NAME = "Legacy Developer API key"
UNKNOWN_PREFIX = "omi_dev_legacy"
PREFIX_RE = re.compile(r"omi_dev_[0-9a-f]{4}\.\.\.[0-9a-f]{4}")
# Where Omi's record has no usable creation time, nor the export its document's: Omi shows the epoch.
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
# What reading one line or one field may raise on hostile input: each refuses that line (or
# repairs that field), never stops the import. RecursionError: JSON nested thousands deep;
# OverflowError: a time out of datetime's range once moved to UTC.
UNREADABLE = (ValueError, OverflowError, RecursionError, TypeError, ArithmeticError)
# Document ids that are not UUIDs get uuid5(OMI_DOCUMENT_NAMESPACE, document id): the same id on every import.
OMI_DOCUMENT_NAMESPACE = uuid.UUID("5b0c3f2e-7d1a-5e43-9a8e-0f6d2c1b4a97")
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Characters a document id or uid may not hold: they are printed to terminals and shown in the
# admin. Unicode general categories Cc (control), Cf (format: the bidirectional overrides and
# isolates U+202A-U+202E, U+2066-U+2069, zero-width characters), Cs (lone surrogates, which no
# database accepts), Zl and Zp (line and paragraph separators).
UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Distinct unknown scopes listed in the report; the rest are counted under UNKNOWN_SCOPES_OTHER.
KEPT_UNKNOWN_SCOPES = 100
UNKNOWN_SCOPES_OTHER = "(other)"
UNKNOWN_SCOPE_MAX_LENGTH = 100
FIREBASE_UID_MAX_LENGTH = 128
MAX_LINE_BYTES = 1024 * 1024
FIREBASE_THREADS = 4
# Documents written per transaction. On SQLite each commit writes every index page the batch
# touched and the keys are random, so fewer, larger batches write much less: 5,000 took a
# sixth less CPU than 1,000 on a million documents, for about 30 MB more memory (docs/performance.md).
DEFAULT_BATCH_SIZE = 5000
MAX_BATCH_SIZE = 10_000
OWNER_CACHE_SIZE = 20_000
# An imported time later than now is stored as now: a future rotated_at would block every
# rotation (If-Match and the rotation's own ordering), a future last_used_at every later
# use's stamp. Up to this much ahead is clock skew, clamped silently; beyond, counted and warned.
FUTURE_TOLERANCE = datetime.timedelta(minutes=5)
KEPT_REFUSALS = 1000  # refusals listed in the report (all are counted, and each is printed as it happens)


class ImportAborted(Exception):
    """The import cannot go on (Firebase unreachable, a bad option); the message says why and what to do."""


class Refusal:
    """Why a line of the export was not imported, besides the lifecycle's own reasons (``lifecycle.ImportRefusal``)."""

    NOT_UTF8 = "not_utf8"
    LINE_TOO_LONG = "line_too_long"
    NOT_JSON = "not_json"
    BAD_DOCUMENT = "bad_document"
    BAD_DOCUMENT_ID = "bad_document_id"
    DUPLICATE_DOCUMENT = "duplicate_document"
    MISSING_HASH = "missing_hash"
    BAD_USER_ID = "bad_user_id"
    UNKNOWN_SCOPE = "unknown_scope"
    OWNER_DISABLED = "owner_disabled"
    OWNER_DELETED = "owner_deleted"
    OWNER_INACTIVE = "owner_inactive"
    BAD_VALUE = "bad_value"
    SCOPES_NOT_A_LIST = "scopes_not_a_list"

    MESSAGES = {
        NOT_UTF8: "the line is not UTF-8 text",
        LINE_TOO_LONG: f"the line is longer than {MAX_LINE_BYTES:,} bytes",
        NOT_JSON: "the line is not JSON",
        BAD_DOCUMENT: 'the line is not an object with an "id" and a "data" object',
        BAD_DOCUMENT_ID: (
            f"the document id is not a Firestore document id (1 to {OMI_DOCUMENT_ID_MAX_LENGTH} bytes, no '/'), "
            "it holds a control, format or bidirectional character, or it holds a raw key"
        ),
        DUPLICATE_DOCUMENT: "the same document id is on an earlier line",
        MISSING_HASH: "hashed_key is missing",
        BAD_USER_ID: "user_id is missing or not a Firebase uid",
        UNKNOWN_SCOPE: "the key has a scope omikeys does not know (--unknown-scopes skip)",
        OWNER_DISABLED: "the owner's Firebase account is disabled (--inactive-owners refuse)",
        OWNER_DELETED: "the owner's Firebase account no longer exists (--inactive-owners refuse)",
        OWNER_INACTIVE: "the owner is deactivated in omikeys (--inactive-owners refuse)",
        BAD_VALUE: "a field holds a value that cannot be read (out of range, too deeply nested, wrong type)",
        SCOPES_NOT_A_LIST: "scopes is neither a list nor null (Omi grants nothing for such a value)",
    }

    @classmethod
    def message(cls, reason: str) -> str:
        """The sentence for a reason of this class or of ``lifecycle.ImportRefusal``."""
        return cls.MESSAGES.get(reason) or lifecycle.ImportRefusal.MESSAGES.get(reason, reason)


# Why an owner may hold no key, as lifecycle.ImportedKey.revoke_reason and as the refusal when refused.
OWNER_STATES = {
    "firebase_disabled": Refusal.OWNER_DISABLED,
    "firebase_deleted": Refusal.OWNER_DELETED,
    "inactive": Refusal.OWNER_INACTIVE,
}


@dataclass(frozen=True)
class Options:
    """How to import: see the ``importomikeys`` command's options, which fill this."""

    default_scopes: tuple[str, ...] = CONTRACT_READ_SCOPES
    unknown_scopes: str = "drop"  # or "skip": refuse the key
    inactive_owners: str = "revoke"  # or "refuse"
    ask_firebase: bool = True
    dry_run: bool = False
    prune: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    source_name: str = "-"


@dataclass
class Report:
    """What an import did (or, in a dry run, would do): counts, and the first refusals in full."""

    dry_run: bool = False
    documents: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    revoked: int = 0
    refused: int = 0
    pruned: int = 0
    owners_created: int = 0
    refused_by_reason: Counter = field(default_factory=Counter)
    repaired: Counter = field(default_factory=Counter)
    unknown_scopes: Counter = field(default_factory=Counter)
    unknown_scopes_other: int = 0  # occurrences of unknown scopes beyond the KEPT_UNKNOWN_SCOPES listed
    conflicts: Counter = field(default_factory=Counter)  # lifecycle.ImportConflict values: kept as omikeys has them
    default_scopes_given: int = 0
    owners_not_eligible: Counter = field(default_factory=Counter)
    firebase_asked: bool = True
    prune_skipped: str = ""
    refusals: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """True when anything was refused or the prune asked for did not happen: the command exits non-zero."""
        return bool(self.refused or self.prune_skipped)

    def as_dict(self) -> dict:
        """The report as JSON-ready data."""
        return {
            "dry_run": self.dry_run,
            "documents_read": self.documents,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "revoked": self.revoked,
            "pruned": self.pruned,
            "refused": self.refused,
            "refused_by_reason": dict(sorted(self.refused_by_reason.items())),
            "owners_created": self.owners_created,
            "owners_not_eligible": dict(sorted(self.owners_not_eligible.items())),
            "firebase_asked": self.firebase_asked,
            "repaired": dict(sorted(self.repaired.items())),
            "default_scopes_given": self.default_scopes_given,
            "unknown_scopes": dict(sorted(self.unknown_scopes.items()))
            | ({UNKNOWN_SCOPES_OTHER: self.unknown_scopes_other} if self.unknown_scopes_other else {}),
            "conflicts": dict(sorted(self.conflicts.items())),
            "prune_skipped": self.prune_skipped or None,
            "refusals": self.refusals,
            "refusals_listed": len(self.refusals),
            "seconds": round(self.seconds, 3),
            "documents_per_second": round(self.documents / self.seconds) if self.seconds else None,
        }

    def count_unknown_scopes(self, codes: list[str]) -> None:
        """Count unknown scopes: at most :data:`KEPT_UNKNOWN_SCOPES` distinct ones are listed,
        the rest counted together under :data:`UNKNOWN_SCOPES_OTHER`, so the report stays small."""
        for code in codes:
            if code in self.unknown_scopes or len(self.unknown_scopes) < KEPT_UNKNOWN_SCOPES:
                self.unknown_scopes[code] += 1
            else:
                self.unknown_scopes_other += 1

    def refuse(self, line: int, document_id: str | None, reason: str, detail: str = "") -> dict:
        """Count a refusal; returns it as the report lists it."""
        self.refused += 1
        self.refused_by_reason[reason] += 1
        refusal = {
            "line": line,
            "document_id": document_id,
            "reason": reason,
            "message": detail or Refusal.message(reason),
        }
        if len(self.refusals) < KEPT_REFUSALS:
            self.refusals.append(refusal)
        return refusal


# ---- reading the file


def open_export(path: str, stdin=None) -> tuple[io.BufferedIOBase, io.BufferedIOBase, int | None]:
    """``(lines, raw, size)``: the export's bytes (gunzipped when it is gzip), the file under them
    (whose position tells progress), and its size in bytes when known. ``-`` is ``stdin`` (a binary stream).

    Gzip is recognised by its magic bytes, whatever the name. Raises ``OSError`` when unreadable.
    """
    if path == "-":
        try:
            # A reader of its own on the descriptor: the reading process (read_in_process) closes its
            # copy of sys.stdin when it starts, as multiprocessing does in every child.
            raw = open(stdin.fileno(), "rb", closefd=False)  # noqa: SIM115 (the caller closes it)
        except (AttributeError, OSError, ValueError):
            raw = stdin
        size = None
    else:
        raw = open(path, "rb")  # noqa: SIM115 (the caller closes it)
        size = Path(path).stat().st_size if Path(path).is_file() else None
    buffered = raw if hasattr(raw, "peek") else io.BufferedReader(raw)
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=buffered), raw, size
    return buffered, raw, size


def read_lines(stream) -> Iterator[tuple[int, str | None, str | None]]:
    """``(line number, text, refusal reason)`` for each non-blank line; text is None when refused.

    A line longer than :data:`MAX_LINE_BYTES` is skipped without being held in memory.
    """
    number = 0
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = stream.readline(MAX_LINE_BYTES)
            yield number, None, Refusal.LINE_TOO_LONG
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            yield number, None, Refusal.NOT_UTF8
            continue
        text = text.lstrip("\ufeff") if number == 1 else text
        if text.strip():
            yield number, text, None


# ---- one document


def parse_timestamp(value) -> datetime.datetime | None:
    """A Firestore timestamp in any form export tools write, as an aware UTC datetime; None for null.

    Forms: an ISO 8601 string (naive means UTC); ``{"_seconds": s, "_nanoseconds": n}``
    (firebase-admin for Node.js, firestore-export); ``{"seconds": s, "nanos": n}``
    (protobuf JSON; s may be a string); ``{"__datatype__": "timestamp", "value": ...}``
    and ``{"__time__": "<ISO 8601>"}`` (node-firestore-import-export). Raises
    ``ValueError`` for anything else.
    """
    if value is None:
        return None
    if isinstance(value, str):
        moment = datetime.datetime.fromisoformat(value.strip())
        try:
            return moment.replace(tzinfo=datetime.UTC) if moment.tzinfo is None else moment.astimezone(datetime.UTC)
        except OverflowError as exc:  # 0001-01-01T00:00:00+14:00 is before datetime.min in UTC
            raise ValueError("the time is out of range in UTC") from exc
    if isinstance(value, dict):
        if value.get("__datatype__") == "timestamp" and "value" in value:
            return parse_timestamp(value["value"])
        if "__time__" in value:
            return parse_timestamp(value["__time__"])
        for seconds_key, nanos_key in (("_seconds", "_nanoseconds"), ("seconds", "nanos")):
            if seconds_key in value:
                seconds = _whole_number(value[seconds_key])
                nanos = _whole_number(value.get(nanos_key, 0))
                if not 0 <= nanos < 1_000_000_000:
                    raise ValueError("nanoseconds out of range")
                try:
                    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC) + datetime.timedelta(
                        microseconds=nanos // 1000
                    )
                except (OverflowError, OSError) as exc:
                    raise ValueError("seconds out of range") from exc
    raise ValueError(f"not a timestamp: {value!r:.60}")


def _whole_number(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("not a whole number")
    return int(value)


def key_id_for(document_id: str) -> uuid.UUID:
    """The omikeys id of an Omi document: the document id itself when it is a UUID (with
    hyphens, as Omi writes them, in either case), else ``uuid5(OMI_DOCUMENT_NAMESPACE, document_id)``."""
    if UUID_RE.fullmatch(document_id):
        return uuid.UUID(document_id)
    return uuid.uuid5(OMI_DOCUMENT_NAMESPACE, document_id)


def repaired_name(value) -> tuple[str, bool]:
    """``(name, repaired)``: Omi's rule (stripped; empty, not a string, or holding a raw key:
    :data:`LEGACY_NAME`), then omikeys' (control characters become spaces, longer than
    100 characters is shortened, anything else the rules refuse: :data:`LEGACY_NAME`)."""
    name = value.strip() if isinstance(value, str) else ""
    if not name or crypto.contains_raw_key(name):
        return LEGACY_NAME, True
    cleaned = " ".join("".join(" " if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in name).split())
    if len(cleaned) > KEY_NAME_MAX_LENGTH:
        cleaned = cleaned[: KEY_NAME_MAX_LENGTH - 1].rstrip() + "…"
    try:
        validate_key_name(cleaned)
    except ValidationError:
        return LEGACY_NAME, True
    return cleaned, cleaned != name


@dataclass
class Candidate:
    """A document that passed the checks that need no database: what the lifecycle will be given."""

    line: int
    document_id: str
    key_id: uuid.UUID
    uid: str
    name: str
    key_prefix: str
    key_hash: str
    scope_codes: list[str]
    created_at: datetime.datetime
    last_used_at: datetime.datetime | None
    rotated_at: datetime.datetime | None
    # The earlier line of the file whose candidate has the same hashed_key (set by the reading process).
    hash_on_line: int | None = None


class LineRefused(Exception):
    """A line that cannot become a key: ``reason`` (a :class:`Refusal` value) and the document id if known."""

    def __init__(self, reason: str, document_id: str | None = None, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.document_id = document_id
        self.detail = detail


def document_id_of(document) -> str:
    """The document id of a parsed line, or :class:`LineRefused`."""
    if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
        raise LineRefused(Refusal.BAD_DOCUMENT)
    document_id = document.get("id")
    if (
        not isinstance(document_id, str)
        or not document_id
        or "/" in document_id
        or len(document_id.encode("utf-8", "surrogatepass")) > OMI_DOCUMENT_ID_MAX_LENGTH
        or crypto.contains_raw_key(document_id)  # kept on the key and printed: never a secret
        or not printable(document_id)
    ):
        raise LineRefused(Refusal.BAD_DOCUMENT_ID)
    return document_id


def printable(text: str) -> bool:
    """False when ``text`` holds a character of :data:`UNPRINTABLE_CATEGORIES`."""
    return not any(unicodedata.category(ch) in UNPRINTABLE_CATEGORIES for ch in text)


def _uid(value) -> str | None:
    # Omi's rule (api_key_auth_user_id), and Firebase's length limit.
    if (
        not isinstance(value, str)
        or not value
        or value != value.strip()
        or len(value) > FIREBASE_UID_MAX_LENGTH
        or crypto.contains_raw_key(value)
        or not printable(value)
    ):
        return None
    return value


# ---- reading the documents, in a process of their own


@dataclass
class Parsed:
    """One line of the export as :class:`DocumentReader` found it: what the importer counts and writes.

    ``candidate`` is set when the line can become a key, ``refusal`` (reason, detail) when it
    cannot; ``document_id`` once the line's id is readable, and ``document_on_line`` when an
    earlier line has the same id (:meth:`SeenStore.mark`). The rest is for the report: the
    fields repaired, the warnings in the order they arose, whether the default scopes were
    given, and the unknown scopes met.
    """

    line: int
    document_id: str | None = None
    document_on_line: int | None = None
    candidate: Candidate | None = None
    refusal: tuple[str, str] | None = None
    repaired: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    default_scopes: bool = False
    unknown_scopes: list[str] = field(default_factory=list)


class DocumentReader:
    """Checks and repairs one line of the export at a time, touching no database: what can run
    beside the writing, in another process. ``scope_codes``: the scopes omikeys knows."""

    def __init__(self, options: Options, scope_codes: frozenset[str]):
        self.options = options
        self.scope_codes = scope_codes

    def parse(self, line: int, text: str | None, reason: str | None) -> Parsed:
        """The :class:`Parsed` of one line from :func:`read_lines` (``reason`` set when it could not be read)."""
        parsed = Parsed(line)
        try:
            if reason:
                raise LineRefused(reason)
            try:
                document = json.loads(text)
            except RecursionError:
                raise LineRefused(Refusal.NOT_JSON, detail="the line is JSON nested too deeply to read") from None
            except UNREADABLE:
                raise LineRefused(Refusal.NOT_JSON) from None
            parsed.document_id = document_id_of(document)
            try:
                parsed.candidate = self._map(parsed, document)
            except UNREADABLE as exc:
                detail = f"{Refusal.message(Refusal.BAD_VALUE)}: {type(exc).__name__}"
                raise LineRefused(Refusal.BAD_VALUE, detail=detail) from None
        except LineRefused as refused:
            parsed.refusal = (refused.reason, refused.detail)
        return parsed

    def _map(self, parsed: Parsed, document: dict) -> Candidate:
        line, document_id = parsed.line, parsed.document_id
        data = document["data"]
        hashed = data.get("hashed_key")
        if hashed is None:
            raise LineRefused(Refusal.MISSING_HASH)
        if not crypto.is_stored_hash(hashed):
            raise LineRefused(lifecycle.ImportRefusal.BAD_HASH)
        uid = _uid(data.get("user_id"))
        if uid is None:
            raise LineRefused(Refusal.BAD_USER_ID)
        repaired = parsed.repaired
        if data.get("id") not in (None, document_id):
            # The document id is canonical, as in Omi's backend; an inner id that disagrees is overruled.
            # One that is missing (older records) or null repairs nothing: there is nothing to overrule.
            repaired.append("document_id")
        name, name_repaired = repaired_name(data.get("name"))
        if name_repaired:
            repaired.append("name")
        prefix = data.get("key_prefix")
        if not (isinstance(prefix, str) and PREFIX_RE.fullmatch(prefix)):
            prefix = UNKNOWN_PREFIX
            repaired.append("key_prefix")
        created_at = self._moment(parsed, data, "created_at", count=False)
        if created_at is None:
            created_at = self._moment(parsed, document, "create_time", count=False) or EPOCH
            repaired.append("created_at")
        last_used_at = self._moment(parsed, data, "last_used_at")
        rotated_at = self._moment(parsed, data, "rotated_at")
        now = timezone.now()
        created_at, last_used_at, rotated_at = (
            self._not_future(parsed, name, moment, now)
            for name, moment in (("created_at", created_at), ("last_used_at", last_used_at), ("rotated_at", rotated_at))
        )
        return Candidate(
            line=line,
            document_id=document_id,
            key_id=key_id_for(document_id),
            uid=uid,
            name=name,
            key_prefix=prefix,
            key_hash=hashed,
            scope_codes=self._scope_codes(parsed, data),
            created_at=created_at,
            last_used_at=last_used_at,
            rotated_at=rotated_at,
        )

    @staticmethod
    def _not_future(
        parsed: Parsed, name: str, moment: datetime.datetime | None, now: datetime.datetime
    ) -> datetime.datetime | None:
        """``moment``, or ``now`` when it is later: counted as repaired ("<name>_in_future") and warned
        when more than :data:`FUTURE_TOLERANCE` ahead."""
        if moment is None or moment <= now:
            return moment
        if moment - now > FUTURE_TOLERANCE:
            parsed.repaired.append(f"{name}_in_future")
            parsed.warnings.append(f"line {parsed.line}: {name} {moment.isoformat()} is in the future; stored as now")
        return now

    @staticmethod
    def _moment(parsed: Parsed, data: dict, name: str, count: bool = True) -> datetime.datetime | None:
        # Omi repairs an unreadable time rather than refuse the key (_coerce_utc_datetime).
        try:
            return parse_timestamp(data.get(name))
        except UNREADABLE as exc:
            if count:
                parsed.repaired.append(name)
            parsed.warnings.append(f"line {parsed.line}: {name} cannot be read ({str(exc):.80}); treated as absent")
            return None

    def _scope_codes(self, parsed: Parsed, data: dict) -> list[str]:
        value = data.get("scopes")
        if value is None:
            parsed.default_scopes = True
            return list(self.options.default_scopes)
        if not isinstance(value, list):
            # Omi's normalize_api_key_scopes reads only lists: a string such as "memories:write" grants nothing.
            raise LineRefused(
                Refusal.SCOPES_NOT_A_LIST,
                detail=(
                    f"scopes is a {type(value).__name__} ({value!r:.60}), not a list or null: Omi grants nothing for it"
                ),
            )
        known = [code for code in value if isinstance(code, str) and code in self.scope_codes]
        unknown = [
            # Shown on terminals and in the report: anything unprintable escaped, and shortened.
            (code if isinstance(code, str) and code.isprintable() else repr(code))[:UNKNOWN_SCOPE_MAX_LENGTH]
            for code in value
            if code not in known
        ]
        if unknown:
            parsed.unknown_scopes = unknown
            listed = ", ".join(map(repr, unknown))
            if self.options.unknown_scopes == "skip":
                raise LineRefused(Refusal.UNKNOWN_SCOPE, detail=f"unknown scopes {listed} (--unknown-scopes skip)")
            parsed.warnings.append(
                f"line {parsed.line} (document {parsed.document_id}): unknown scopes {listed} dropped"
            )
        return list(dict.fromkeys(known))


# Lines the reading process sends at a time: few enough messages, and little held in the pipe.
READ_CHUNK = 500
# How long to wait for the reading process to stop once the import has ended or failed, in seconds.
READER_STOP_SECONDS = 5


class ReaderFailed(ImportAborted):
    """The reading process stopped without finishing the file and without saying why (killed, out of memory)."""


def read_in_process(stream, reader: DocumentReader, seen_path: Path) -> Generator[Parsed, None, None]:
    """The :class:`Parsed` lines of ``stream`` (bytes, as :func:`read_lines` reads it), read and checked
    in a child process while the caller writes, with repeated document ids and hashes marked
    (:meth:`SeenStore.mark`) in the store at ``seen_path``, which the child creates and which
    the caller may open once the generator is exhausted.

    The child is forked, so it reads the caller's open ``stream`` (a file, a pipe, standard
    input), which the caller must not read meanwhile. Memory stays bounded: the child waits
    while the pipe holds :data:`READ_CHUNK` lines the caller has not taken. An ``OSError`` or
    ``EOFError`` the child meets (an unreadable file, a truncated gzip) is raised here, once
    the lines before it have been yielded; :class:`ReaderFailed` when the child dies.
    Closing the generator (``close()``, or leaving a ``for`` early) stops the child.
    """
    context = multiprocessing.get_context("fork")  # the child needs the open stream and Django's loaded state
    receiving, sending = context.Pipe(duplex=False)
    for output in (sys.stdout, sys.stderr):
        output.flush()  # else the child's copy of anything unwritten would be written twice
    child = context.Process(
        target=_read_into, args=(stream, reader, sending, seen_path), name="importomikeys-reader", daemon=True
    )
    child.start()
    sending.close()
    try:
        while True:
            try:
                kind, payload = receiving.recv()
            except EOFError:
                child.join(READER_STOP_SECONDS)
                raise ReaderFailed(
                    f"The process reading the file stopped (exit code {child.exitcode}) before the end of the file. "
                    "Batches already written stay; running the import again continues."
                ) from None
            if kind == "lines":
                yield from payload
            elif kind == "failed":
                raise payload
            else:
                return
    finally:
        receiving.close()  # a child still sending gets a broken pipe and stops
        child.join(READER_STOP_SECONDS)
        if child.is_alive():
            child.terminate()
            child.join(READER_STOP_SECONDS)


def _read_into(stream, reader: DocumentReader, sending, seen_path: Path) -> None:
    """The reading process: every line of ``stream`` through ``reader``, marked against the lines before
    it in the store at ``seen_path``, sent in chunks, then "end" once the store is closed, or "failed"
    with an ``OSError`` or ``EOFError`` after the lines that could be read and checked."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the import through the parent, which stops this
    seen = None
    chunk = []
    try:
        seen = SeenStore(seen_path)
        for number, text, reason in read_lines(stream):
            chunk.append(reader.parse(number, text, reason))
            if len(chunk) >= READ_CHUNK:
                seen.mark(chunk)
                lines, chunk = chunk, []
                sending.send(("lines", lines))
        seen.mark(chunk)
        lines, chunk = chunk, []
        sending.send(("lines", lines))
        seen.close()  # committed before the caller may open it
        sending.send(("end", None))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the import stopped early: nobody reads any more
    except (OSError, EOFError, zlib.error, sqlite3.Error) as exc:
        if isinstance(exc, sqlite3.Error):
            failure = OSError(f"the temporary file of the document ids and hashes seen failed ({exc})")
        elif isinstance(exc, zlib.error):  # gzip data that is corrupt rather than cut short (that is EOFError)
            failure = OSError(f"the gzip data is corrupt ({exc})")
        else:
            failure = exc
        _send_failure(sending, seen, chunk, failure)
    finally:
        sending.close()


def _send_failure(sending, seen: "SeenStore | None", chunk: list[Parsed], failure: Exception) -> None:
    """Send the lines read before ``failure`` if they can be checked for repeats (else none of them), then it."""
    try:
        if chunk and seen is not None:
            try:
                seen.mark(chunk)
            except sqlite3.Error:
                chunk = []  # unchecked lines are not imported; running again imports them
            if chunk:
                sending.send(("lines", chunk))
        sending.send(("failed", failure))
    except (BrokenPipeError, ConnectionResetError):
        pass


# ---- what is remembered across batches


class SeenStore:
    """What the import has met so far, in a SQLite file at ``path`` (created if missing): the document
    ids and hashes of earlier lines (:meth:`mark`, in the reading process), and the owners already
    counted (:meth:`new_owners`, in the writing one). Duplicates are found, and ``--prune`` knows
    what the file held, without holding a million ids in memory. One process uses one file."""

    def __init__(self, path: Path, *, finished: bool = False):
        if finished:
            # Another process's store, read only: a file that is missing is an error, never an empty store
            # (--prune would take every imported key for one the file no longer holds).
            self._db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
            return
        self._db = sqlite3.connect(path)
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-16000;"
            "CREATE TABLE IF NOT EXISTS documents (id TEXT PRIMARY KEY, line INTEGER) WITHOUT ROWID;"
            "CREATE TABLE IF NOT EXISTS hashes (hash TEXT PRIMARY KEY, line INTEGER) WITHOUT ROWID;"
            "CREATE TABLE IF NOT EXISTS owners (uid TEXT PRIMARY KEY) WITHOUT ROWID;"
        )

    def close(self) -> None:
        """Commit and close the file (it stays, for another process to open)."""
        self._db.commit()
        self._db.close()

    def _earlier(self, table: str, column: str, values: list[str]) -> dict[str, int]:
        found = {}
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(self._db.execute(f"SELECT {column}, line FROM {table} WHERE {column} IN ({marks})", chunk))
        return found

    def _claim(self, table: str, column: str, pairs: list[tuple[str, int]]) -> list[int | None]:
        """Record ``(value, line)`` pairs in file order; for each, the first line that held its value
        if that was an earlier line (of this call or a previous one), else None."""
        earlier = self._earlier(table, column, [value for value, _ in pairs])
        first = {}
        found = []
        for value, line in pairs:
            on_line = earlier.get(value, first.get(value))
            if on_line is None:
                first[value] = line
            elif on_line == line:
                on_line = None  # this very line, recorded by an earlier call: not a repeat
            found.append(on_line)
        self._db.executemany(f"INSERT INTO {table} VALUES (?, ?)", first.items())
        return found

    def mark(self, lines: list["Parsed"]) -> None:
        """Mark the repeats among ``lines`` (consecutive lines of the file, in order), and remember them.

        A readable document id held by an earlier line sets ``document_on_line``: of two lines
        with one id, the first is kept, whatever else is wrong with either. Then each
        candidate of a line not so marked is compared by hash with the earlier candidates:
        ``candidate.hash_on_line`` is the first line that offered the same ``hashed_key``.
        """
        with_ids = [parsed for parsed in lines if parsed.document_id is not None]
        on_lines = self._claim("documents", "id", [(parsed.document_id, parsed.line) for parsed in with_ids])
        for parsed, on_line in zip(with_ids, on_lines, strict=True):
            parsed.document_on_line = on_line
        candidates = [
            parsed.candidate
            for parsed in lines
            if parsed.candidate is not None and parsed.refusal is None and parsed.document_on_line is None
        ]
        on_lines = self._claim("hashes", "hash", [(candidate.key_hash, candidate.line) for candidate in candidates])
        for candidate, on_line in zip(candidates, on_lines, strict=True):
            candidate.hash_on_line = on_line
        self._db.commit()

    def new_owners(self, uids: list[str]) -> int:
        """How many of ``uids`` were not recorded before; records them."""
        before = self._db.total_changes
        self._db.executemany("INSERT OR IGNORE INTO owners VALUES (?)", ((uid,) for uid in uids))
        return self._db.total_changes - before

    def unseen(self, document_ids: list[str]) -> list[str]:
        """Those of ``document_ids`` the file did not hold."""
        seen = self._earlier("documents", "id", document_ids)
        return [document_id for document_id in document_ids if document_id not in seen]


@dataclass(frozen=True)
class Account:
    """An owner as Firebase knows it: the email (None when Firebase was not asked) and whether it may hold keys."""

    email: str | None
    state: str = "active"  # or "firebase_disabled", "firebase_deleted"


class OwnerDirectory:
    """The owners' Firebase accounts, asked in batches of 100 uids (firebase-admin ``get_users``),
    a few calls at once, and remembered for the most recent :data:`OWNER_CACHE_SIZE` uids."""

    def __init__(self, ask_firebase: bool):
        self.ask_firebase = ask_firebase
        self._cache: OrderedDict[str, Account] = OrderedDict()
        self._pool = ThreadPoolExecutor(FIREBASE_THREADS) if ask_firebase else None

    def close(self) -> None:
        """Stop the threads that ask Firebase."""
        if self._pool:
            self._pool.shutdown()

    def accounts(self, uids: set[str]) -> tuple[dict[str, Account], dict[str, Account]]:
        """``(accounts of all uids, those just asked)``; raises :class:`ImportAborted` if Firebase cannot be asked."""
        known, asked = {}, {}
        missing = []
        for uid in uids:
            if uid in self._cache:
                self._cache.move_to_end(uid)
                known[uid] = self._cache[uid]
            else:
                missing.append(uid)
        if not self.ask_firebase:
            asked = dict.fromkeys(missing, Account(email=None))
        elif missing:
            chunks = [
                missing[i : i + firebase.GET_USERS_BATCH] for i in range(0, len(missing), firebase.GET_USERS_BATCH)
            ]
            try:
                for found, not_found in self._pool.map(firebase.get_users, chunks):
                    for uid, account in found.items():
                        asked[uid] = Account(account.email, "firebase_disabled" if account.disabled else "active")
                    for uid in not_found:
                        asked[uid] = Account(None, "firebase_deleted")
            except firebase.AuthUnavailable as exc:
                raise ImportAborted(
                    f"Firebase could not be asked about the keys' owners: {exc} Nothing more was imported; "
                    "batches already written stay, and running the import again continues. Check "
                    "GOOGLE_APPLICATION_CREDENTIALS (or FIREBASE_AUTH_EMULATOR_HOST), or pass --no-firebase "
                    "to import without owners' emails and without checking for disabled accounts."
                ) from exc
        for uid, account in asked.items():
            self._cache[uid] = account
        while len(self._cache) > OWNER_CACHE_SIZE:
            self._cache.popitem(last=False)
        return known | asked, asked


# ---- the import

# SQLite's page cache for this connection during an import, in KiB. Keys, hashes and document
# ids are random, so every insert touches pages all over five indexes: with SQLite's default
# 2 MB the cache thrashes once the tables outgrow it, and a million keys take several
# times longer.
SQLITE_IMPORT_CACHE_KIB = 65536


class _SQLitePageCache:
    """A larger page cache on the default SQLite connection while an import runs; nothing on PostgreSQL."""

    def __init__(self):
        self.before = None
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                self.before = cursor.execute("PRAGMA cache_size").fetchone()[0]
                cursor.execute(f"PRAGMA cache_size = -{SQLITE_IMPORT_CACHE_KIB}")

    def restore(self) -> None:
        if self.before is not None:
            with connection.cursor() as cursor:
                cursor.execute(f"PRAGMA cache_size = {int(self.before)}")


@contextmanager
def collector_frozen() -> Iterator[None]:
    """Keep the objects the process holds now out of the cyclic garbage collector's passes
    (``gc.freeze``) until the block ends, however it ends.

    An import allocates enough per batch to start full collections, and each would walk
    every object Django and omikeys loaded (hundreds of thousands). Process-wide: a freeze
    the caller made already is left as it is, neither repeated nor undone here.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class OmiImporter:
    """Imports one export: ``OmiImporter(options, actor).run(stream)`` returns the :class:`Report`.

    ``notify(kind, text)`` receives each refusal ("refused"), warning ("warning") and
    note ("note") as it happens, and ``progress(report)`` is called after each batch.
    Raises :class:`ImportAborted` when it cannot go on.
    """

    def __init__(
        self,
        options: Options,
        actor: Actor,
        notify: Callable[[str, str], None] = lambda kind, text: None,
        progress: Callable[[Report], None] = lambda report: None,
    ):
        self.options = options
        self.actor = actor
        self.notify = notify
        self.progress = progress
        self.report = Report(dry_run=options.dry_run, firebase_asked=options.ask_firebase)
        self.scopes = {scope.code: scope for scope in Scope.objects.all()}
        unknown = [code for code in options.default_scopes if code not in self.scopes]
        if unknown or not options.default_scopes:
            raise ImportAborted(
                f"--default-scopes names no scope or unknown ones ({', '.join(unknown) or 'none given'}); "
                f"known scopes: {', '.join(sorted(self.scopes))}."
            )
        self.unreadable_lines = 0

    def run(self, stream) -> Report:
        """Read every line of ``stream`` (bytes), import in batches, then prune if asked.

        The lines are read and checked in a child process (:func:`read_in_process`) while
        this one writes: on SQLite the writing is most of the work, and the two overlap.
        Meanwhile the process's objects are out of the garbage collector's passes
        (:func:`collector_frozen`).
        """
        with collector_frozen():
            return self._run(stream)

    def _run(self, stream) -> Report:
        started = time.monotonic()
        # Undone in reverse order however the import ends: the reading process is stopped before
        # the folder of the two stores (one per process) is removed.
        with ExitStack() as cleanup:
            work = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="importomikeys-")))
            seen = SeenStore(work / "owners.sqlite3")
            cleanup.callback(seen.close)
            lines_seen = work / "lines.sqlite3"  # the reading process's: repeated ids and hashes
            parsed_lines = read_in_process(stream, DocumentReader(self.options, frozenset(self.scopes)), lines_seen)
            cleanup.callback(parsed_lines.close)
            owners = OwnerDirectory(self.options.ask_firebase)
            cleanup.callback(owners.close)
            cache = _SQLitePageCache()
            cleanup.callback(cache.restore)
            self._read(parsed_lines, seen, owners, started)
            if self.options.prune:
                self._prune(lines_seen)
        self.report.seconds = time.monotonic() - started
        self.progress(self.report)
        return self.report

    def _read(self, parsed_lines: Iterator["Parsed"], seen: "SeenStore", owners: "OwnerDirectory", started: float):
        """Count, check and import every line the reading process sends, a batch at a time."""
        batch: list[Candidate] = []
        while True:
            try:
                parsed = next(parsed_lines, None)
            except (OSError, EOFError):
                if batch:  # what was read before the damage is imported; running again continues
                    self._import(batch, seen, owners)
                raise
            if parsed is None:
                break
            self.report.documents += 1
            candidate = self._accept(parsed)
            if candidate is not None:
                batch.append(candidate)
            if len(batch) >= self.options.batch_size:
                self._import(batch, seen, owners)
                batch = []
                self.report.seconds = time.monotonic() - started
                self.progress(self.report)
        if batch:
            self._import(batch, seen, owners)

    def _refuse(self, line: int, document_id: str | None, reason: str, detail: str = "") -> None:
        refusal = self.report.refuse(line, document_id, reason, detail)
        where = f"line {line}" + (f" (document {document_id})" if document_id else "")
        self.notify("refused", f"{where}: refused, {refusal['message']} [{reason}]")

    def _accept(self, parsed: "Parsed") -> Candidate | None:
        """Count what the reader found on one line; the candidate to import, or None when refused.

        A document id on an earlier line refuses the line before anything else of it counts.
        """
        if parsed.document_on_line is not None:
            detail = f"the same document id is on line {parsed.document_on_line}"
            self._refuse(parsed.line, parsed.document_id, Refusal.DUPLICATE_DOCUMENT, detail)
            return None
        self.report.repaired.update(parsed.repaired)
        for warning in parsed.warnings:
            self.notify("warning", warning)
        self.report.default_scopes_given += parsed.default_scopes
        if parsed.unknown_scopes:
            self.report.count_unknown_scopes(parsed.unknown_scopes)
        if parsed.refusal is not None:
            reason, detail = parsed.refusal
            if reason in (Refusal.NOT_UTF8, Refusal.LINE_TOO_LONG, Refusal.NOT_JSON, Refusal.BAD_DOCUMENT):
                self.unreadable_lines += 1
            self._refuse(parsed.line, parsed.document_id, reason, detail)
            return None
        return parsed.candidate

    def _import(self, batch: list[Candidate], seen: SeenStore, owners: OwnerDirectory) -> None:
        ready = []
        for candidate in batch:
            if candidate.hash_on_line is not None:
                detail = f"the same hashed_key is on line {candidate.hash_on_line}"
                self._refuse(candidate.line, candidate.document_id, lifecycle.ImportRefusal.HASH_IN_USE, detail)
            else:
                ready.append(candidate)
        if not ready:
            return
        accounts, asked = owners.accounts({candidate.uid for candidate in ready})
        for uid, account in asked.items():
            if account.state != "active":
                self.report.owners_not_eligible[account.state] += 1
                outcome = "refused" if self.options.inactive_owners == "refuse" else "imported revoked"
                state = "disabled" if account.state == "firebase_disabled" else "deleted"
                self.notify("note", f"owner uid {uid}: the Firebase account is {state}; its keys are {outcome}")
        with transaction.atomic():
            users, created = User.objects.for_firebase_uids({uid: account.email for uid, account in accounts.items()})
            # Counted through the store: a dry run rolls each batch back, and must not count an owner twice.
            self.report.owners_created += seen.new_owners(created)
            keys = []
            for candidate in ready:
                key = self._imported_key(candidate, users.get(candidate.uid), accounts[candidate.uid])
                if key is not None:
                    keys.append(key)
            for result in lifecycle.import_keys(keys, actor=self.actor, dry_run=self.options.dry_run):
                self._count(result)
            if self.options.dry_run:
                transaction.set_rollback(True)

    def _imported_key(self, candidate: Candidate, owner: User | None, account: Account):
        state = account.state if account.state != "active" else None
        if owner is None:
            self._refuse(candidate.line, candidate.document_id, Refusal.BAD_USER_ID, "no user can be made for this uid")
            return None
        if state is None and not owner.is_active:
            state = "inactive"
        if state and self.options.inactive_owners == "refuse" and not self._imported_earlier(candidate):
            # "refuse" makes no new key for such an owner; a key imported earlier is revoked below,
            # as in the default mode: no working key is left to an owner who may hold none.
            self._refuse(candidate.line, candidate.document_id, OWNER_STATES[state])
            return None
        return lifecycle.ImportedKey(
            key_id=candidate.key_id,
            source_id=candidate.document_id,
            owner=owner,
            name=candidate.name,
            key_prefix=candidate.key_prefix,
            key_hash=candidate.key_hash,
            scopes=[self.scopes[code] for code in candidate.scope_codes],
            created_at=candidate.created_at,
            last_used_at=candidate.last_used_at,
            rotated_at=candidate.rotated_at,
            revoke_reason=state,
            source={
                "source": "omi",
                "file": self.options.source_name,
                "document_id": candidate.document_id,
                "line": candidate.line,
            },
        )

    @staticmethod
    def _imported_earlier(candidate: Candidate) -> bool:
        """Whether an earlier import made this document's key and it is not revoked (one indexed read)."""
        return ApiKey.objects.filter(
            pk=candidate.key_id, omi_document_id=candidate.document_id, revoked_at__isnull=True
        ).exists()

    def _count(self, result: lifecycle.ImportResult) -> None:
        key = result.key
        if result.outcome == lifecycle.ImportOutcome.REFUSED:
            self._refuse(key.source["line"], key.source_id, result.reason)
            return
        setattr(self.report, result.outcome, getattr(self.report, result.outcome) + 1)
        if result.conflict:
            self.report.conflicts[result.conflict] += 1
            message = lifecycle.ImportConflict.MESSAGES[result.conflict]
            self.notify("warning", f"line {key.source['line']} (document {key.source_id}): {message}")
        self.report.revoked += result.revoked

    def _prune(self, lines_seen: Path) -> None:
        """Revoke the keys imported from Omi earlier that the file no longer holds (Omi deletes revoked keys)."""
        if self.unreadable_lines:
            self.report.prune_skipped = (
                f"{self.unreadable_lines} line(s) could not be read, so the file may lack documents Omi still has: "
                "nothing was pruned. Fix the file and run again."
            )
            self.notify("refused", "prune skipped: " + self.report.prune_skipped)
            return
        if not self.report.documents:
            self.report.prune_skipped = "the file holds no documents: pruning would revoke every imported key."
            self.notify("refused", "prune skipped: " + self.report.prune_skipped)
            return
        seen = SeenStore(lines_seen, finished=True)  # the reading process has closed it
        try:
            imported = ApiKey.objects.filter(omi_document_id__isnull=False, revoked_at__isnull=True).order_by("pk")
            last = None
            while True:
                page = imported.filter(pk__gt=last) if last else imported
                rows = list(page.values_list("pk", "omi_document_id")[:1000])
                if not rows:
                    return
                last = rows[-1][0]
                gone = set(seen.unseen([document_id for _, document_id in rows]))
                for api_key in ApiKey.objects.filter(pk__in=[pk for pk, document_id in rows if document_id in gone]):
                    if self.options.dry_run or lifecycle.revoke_key(api_key, actor=self.actor):
                        self.report.pruned += 1
                        self.report.revoked += 1
                        done = "would be pruned, revoked (dry run)" if self.options.dry_run else "pruned, revoked"
                        self.notify("note", f"key {api_key.pk} (document {api_key.omi_document_id}): {done}")
        finally:
            seen.close()
