"""Importing keys another system issued (Omi's first): each created, brought up to date or refused, and audited.

An importer (``apikeys/importers/``) reads the other system's records and hands them
here as :class:`ImportedKey` values, a batch at a time; this module alone writes the
keys. omikeys never sees their plaintexts: a key arrives as the hash its issuer stored,
which must be in omikeys' own scheme (``crypto.hash_key``: Omi's).
"""

import datetime
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from django.core.exceptions import ValidationError
from django.db import connections, transaction
from django.db.models import Q
from django.utils import timezone

from .. import audit, bulk, crypto
from .. import events as outgoing
from ..audit import Actor
from ..models import ApiKey, KeyEvent, Scope, User, validate_key_name

logger = logging.getLogger("apikeys.lifecycle")

# The columns of a key's scope links: written as plain values, without a model instance per link.
LINK_FIELDS = [ApiKey.scopes.through._meta.get_field("apikey"), ApiKey.scopes.through._meta.get_field("scope")]


@dataclass(frozen=True)
class ImportedKey:
    """A key as its issuer records it: everything but the plaintext.

    ``key_id`` becomes the key's id; ``source_id`` (Omi's Firestore document id) is kept
    on the key as ``omi_document_id`` and recognises it on later imports. ``key_hash`` is
    64 lowercase hex characters in ``crypto.hash_key``'s scheme. ``name`` must pass the
    rules every door applies (the importer repairs names first). ``revoke_reason``, when
    set, imports the key revoked, or revokes it if an earlier import made it: its owner
    may no longer hold keys ("firebase_disabled", "firebase_deleted", "inactive").
    ``source`` goes into the "imported" event's details (file name, document id, ...).
    """

    key_id: uuid.UUID
    source_id: str
    owner: User
    name: str
    key_prefix: str
    key_hash: str
    scopes: Sequence[Scope]
    created_at: datetime.datetime
    last_used_at: datetime.datetime | None = None
    rotated_at: datetime.datetime | None = None
    revoke_reason: str | None = None
    source: dict = field(default_factory=dict)


class ImportOutcome:
    """What :func:`import_keys` did with one :class:`ImportedKey`."""

    CREATED = "created"
    UPDATED = "updated"  # a later use, a rotation made by the issuer, or a revocation
    UNCHANGED = "unchanged"
    REFUSED = "refused"


class ImportRefusal:
    """Why a key was refused: each reason with the sentence reports show."""

    BAD_HASH = "bad_hash"
    BAD_NAME = "bad_name"
    NO_SCOPES = "no_scopes"
    HASH_IN_USE = "hash_in_use"
    ID_IN_USE = "id_in_use"
    OWNER_CHANGED = "owner_changed"
    HASH_CHANGED = "hash_changed"

    MESSAGES = {
        BAD_HASH: "the hash is not 64 lowercase hex characters",
        BAD_NAME: "the name breaks the rules for key names",
        NO_SCOPES: "the key has no scope omikeys knows, and a key needs at least one",
        HASH_IN_USE: "another key already has this hash",
        ID_IN_USE: "the key id belongs to another key",
        OWNER_CHANGED: "the key was imported before for another owner",
        HASH_CHANGED: "the key's secret differs from the one imported before, with no later rotation",
    }


class ImportConflict:
    """Where the issuer's record and omikeys disagree and omikeys' state is kept, with the sentence reports show."""

    ROTATED_HERE = "rotated_in_omikeys"

    MESSAGES = {
        ROTATED_HERE: (
            "the key was rotated in omikeys since it was imported: its secret stays omikeys', "
            "the issuer's different secret is not restored"
        ),
    }


@dataclass(frozen=True)
class ImportResult:
    """The outcome for one key: an :class:`ImportOutcome`, the refusal reason if refused,
    the fields changed if updated, and whether this call revoked the key."""

    key: ImportedKey
    outcome: str
    reason: str | None = None
    changes: tuple[str, ...] = ()
    revoked: bool = False
    conflict: str | None = None  # an ImportConflict: what the issuer's record said that omikeys kept its own way

    @property
    def message(self) -> str:
        """The refusal's sentence, or "" when not refused."""
        return ImportRefusal.MESSAGES.get(self.reason, "") if self.reason else ""


def import_keys(
    keys: Sequence[ImportedKey], *, actor: Actor | None = None, dry_run: bool = False
) -> list[ImportResult]:
    """Import a batch of keys in one transaction; returns one :class:`ImportResult` per key, in order.

    A key not seen before is created (revoked at once if ``revoke_reason`` is set) with
    an "imported" event naming its source. A key imported before (same id and
    ``source_id``) is brought up to date: a later ``last_used_at`` is kept; a different
    hash with a ``rotated_at`` later than the key's last rotation is the issuer's
    rotation, taken with an "imported" event, unless the key has been rotated in omikeys
    (a "rotated" event): then omikeys' secret stays, whatever the issuer's times say, and
    the result carries :attr:`ImportConflict.ROTATED_HERE`;
    ``revoke_reason`` revokes it with a "revoked" event. Name, scopes and expiry are
    omikeys' own after the first import, and a revoked key never changes again.

    Refused (:class:`ImportRefusal`): a malformed hash, name or empty scopes; a hash held
    by another key (either hash column); an id held by a key issued here or imported
    from another document; a different owner than before. The active-key limit does not
    apply: the keys exist already. The whole batch is one transaction, each event in it.
    ``dry_run``: the caller rolls the transaction back; only the log line says so.
    """
    results: list[ImportResult | None] = [None] * len(keys)
    pending = []
    for index, key in enumerate(keys):
        reason = _invalid(key)
        if reason:
            results[index] = ImportResult(key, ImportOutcome.REFUSED, reason)
        else:
            pending.append(index)
    now = timezone.now()
    connection = connections[ApiKey.objects.db]
    key_id_value = partial(ApiKey._meta.pk.get_db_prep_save, connection=connection)
    with transaction.atomic():
        existing = ApiKey.objects.select_for_update().in_bulk([keys[index].key_id for index in pending])
        holders = _hash_holders({keys[index].key_hash for index in pending})
        rotated_here = set(
            KeyEvent.objects.filter(api_key__in=list(existing), action=KeyEvent.Action.ROTATED).values_list(
                "api_key_id", flat=True
            )
        )
        new_keys, links, events, claimed_ids = [], [], [], set()
        for index in pending:
            key = keys[index]
            current = existing.get(key.key_id)
            holder = holders.get(key.key_hash)
            if current is None:
                if key.key_id in claimed_ids:
                    results[index] = ImportResult(key, ImportOutcome.REFUSED, ImportRefusal.ID_IN_USE)
                    continue
                if holder is not None:
                    results[index] = ImportResult(key, ImportOutcome.REFUSED, ImportRefusal.HASH_IN_USE)
                    continue
                api_key = _new_key(key, now)
                new_keys.append(api_key)
                links += [(key_id_value(key.key_id), scope.pk) for scope in key.scopes]
                events.append(
                    audit.unsaved(
                        api_key,
                        KeyEvent.Action.IMPORTED,
                        actor,
                        at=now,
                        **key.source,
                        scopes=sorted(scope.code for scope in key.scopes),
                        **({"revoked": key.revoke_reason} if key.revoke_reason else {}),
                    )
                )
                claimed_ids.add(key.key_id)
                holders[key.key_hash] = key.key_id
                results[index] = ImportResult(key, ImportOutcome.CREATED, revoked=bool(key.revoke_reason))
            else:
                results[index] = _update(current, key, holder, now, actor, events, current.pk in rotated_here)
                if "key_hash" in results[index].changes:
                    holders[key.key_hash] = key.key_id
        bulk.insert(ApiKey, new_keys)
        bulk.insert_values(ApiKey.scopes.through, LINK_FIELDS, links)
        bulk.insert(KeyEvent, events)
        audit.count_on_commit(events)
        # A key that worked here until this import revoked it (its owner was disabled or
        # deleted at the issuer) is a change receivers must hear of, as any other door's
        # revocation: key.revoked, in this transaction. Keys imported already revoked never
        # worked here and send nothing; only these few events are emitted one by one.
        for event in events:
            if event.action == KeyEvent.Action.REVOKED:
                outgoing.emit_for_key_event(event)
    created = sum(result.outcome == ImportOutcome.CREATED for result in results)
    if created and dry_run:
        logger.info("api keys import dry run, nothing written: would create=%s batch=%s", created, len(keys))
    elif created:
        logger.info("api keys imported created=%s batch=%s", created, len(keys))
    return results


def _invalid(key: ImportedKey) -> str | None:
    if not crypto.is_stored_hash(key.key_hash):
        return ImportRefusal.BAD_HASH
    try:
        validate_key_name(key.name)
    except ValidationError:
        return ImportRefusal.BAD_NAME
    if not key.scopes:
        return ImportRefusal.NO_SCOPES
    return None


def _hash_holders(hashes: set[str]) -> dict[str, uuid.UUID]:
    """Which key holds each of ``hashes``, current or replaced: {hash: key id}."""
    holders = {}
    rows = ApiKey.objects.filter(Q(key_hash__in=hashes) | Q(previous_key_hash__in=hashes))
    for pk, current, previous in rows.values_list("pk", "key_hash", "previous_key_hash"):
        holders[current] = pk
        if previous:
            holders[previous] = pk
    return holders


def _new_key(key: ImportedKey, now: datetime.datetime) -> ApiKey:
    return ApiKey(
        id=key.key_id,
        owner=key.owner,
        name=key.name,
        key_prefix=key.key_prefix,
        key_hash=key.key_hash,
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        rotated_at=key.rotated_at,
        revoked_at=now if key.revoke_reason else None,
        omi_document_id=key.source_id,
    )


def _update(current: ApiKey, key: ImportedKey, holder, now, actor, events: list, rotated_here: bool) -> ImportResult:
    """Bring a key imported before up to date with ``key``; the events to write go into ``events``.

    ``rotated_here``: the key has a "rotated" event, so its secret is omikeys' own and stays.
    """
    if current.omi_document_id != key.source_id:
        return ImportResult(key, ImportOutcome.REFUSED, ImportRefusal.ID_IN_USE)
    if current.owner_id != key.owner.pk:
        return ImportResult(key, ImportOutcome.REFUSED, ImportRefusal.OWNER_CHANGED)
    if current.is_revoked:
        return ImportResult(key, ImportOutcome.UNCHANGED)
    if key.revoke_reason:
        # The owner may hold no key: revoked whatever else the record says (a different hash included).
        ApiKey.objects.filter(pk=current.pk).update(revoked_at=now)
        events.append(audit.unsaved(current, KeyEvent.Action.REVOKED, actor, at=now, reason=key.revoke_reason))
        return ImportResult(key, ImportOutcome.UPDATED, changes=("revoked_at",), revoked=True)
    changes = {}
    conflict = None
    if key.key_hash != current.key_hash and rotated_here:
        conflict = ImportConflict.ROTATED_HERE
    elif key.key_hash != current.key_hash:
        last_rotation = current.rotated_at or current.created_at
        issuer_rotated_later = key.rotated_at is not None and key.rotated_at > last_rotation
        if not issuer_rotated_later and current.rotated_at is None:
            return ImportResult(key, ImportOutcome.REFUSED, ImportRefusal.HASH_CHANGED)
        if issuer_rotated_later and holder is not None and holder != current.pk:
            return ImportResult(key, ImportOutcome.REFUSED, ImportRefusal.HASH_IN_USE)
        if issuer_rotated_later:
            # The issuer's rotations end the old secret at once: no grace period carries over.
            # Otherwise the key was rotated here since: omikeys' secret is the newer one.
            changes.update(
                key_hash=key.key_hash,
                key_prefix=key.key_prefix,
                rotated_at=key.rotated_at,
                previous_key_hash=None,
                previous_key_expires_at=None,
            )
    if key.last_used_at is not None and (current.last_used_at is None or key.last_used_at > current.last_used_at):
        changes["last_used_at"] = key.last_used_at
    if not changes:
        return ImportResult(key, ImportOutcome.UNCHANGED, conflict=conflict)
    ApiKey.objects.filter(pk=current.pk).update(**changes)
    if "key_hash" in changes:
        updated = ["key_hash", "key_prefix", "rotated_at"]
        events.append(audit.unsaved(current, KeyEvent.Action.IMPORTED, actor, at=now, **key.source, updated=updated))
    return ImportResult(key, ImportOutcome.UPDATED, changes=tuple(changes), conflict=conflict)
