"""Leaked keys: what happens to a key reported found in public (GitHub secret scanning, a person's report)."""

import datetime
import hashlib
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .. import audit, crypto
from ..audit import Actor
from ..models import ApiKey, KeyEvent

logger = logging.getLogger("apikeys.lifecycle")

LEAK_SOURCES = ("github", "report")
LEAK_ACTIONS = ("revoke", "notify")
# Kept in the "revoked" event's details: the key_leaked notice tells the owner, so no second mail.
LEAK_REVOCATION_REASON = "found in public (reported leaked)"
URL_MAX_LENGTH = 2000
NOTE_MAX_LENGTH = 500

GITHUB = Actor(kind=KeyEvent.ActorKind.SYSTEM, via=KeyEvent.Via.LEAK_REPORT, label="GitHub secret scanning")
REPORT = Actor(kind=KeyEvent.ActorKind.SYSTEM, via=KeyEvent.Via.LEAK_REPORT, label="a leak report")
ACTORS = {"github": GITHUB, "report": REPORT}


@dataclass(frozen=True)
class LeakFinding:
    """What a leak report found for one token.

    ``genuine``: the token is a secret of a key issued here (its current one, or one a rotation replaced),
    whatever the key's state: GitHub's "true_positive". ``acted``: this report recorded a "leaked" event (the
    key was live and the report new); ``revoked``: this report revoked the key (``OMIKEYS_LEAK_ACTION=revoke``).
    ``key_id`` is None when no key matched.
    """

    genuine: bool
    acted: bool = False
    revoked: bool = False
    key_id: object = None


def report_fingerprint(key_hash: str, source: str, day: datetime.date) -> str:
    """Identifies the reports of one secret from one source on one UTC day (hex SHA-256), whatever URL they
    name: a report sent again (GitHub retries; the same person reporting twice), or naming another place,
    finds the event the first one recorded. So the owner gets at most one leak mail a key, source and day:
    with ``OMIKEYS_LEAK_ACTION=notify`` anyone holding a leaked key cannot flood its owner with mails naming
    URLs of their choice."""
    return hashlib.sha256(f"{key_hash}\n{source}\n{day.isoformat()}".encode()).hexdigest()


def handle_leak(candidate_hashes: tuple[str, str], *, source: str, url: str = "", note: str = "") -> LeakFinding:
    """Act on a secret reported found in public, given by its ``crypto.candidate_hashes`` (the plaintext is not
    needed here, so it never has to travel to the worker).

    For a live key (not revoked; for a secret replaced by a rotation, one still in its grace period), in one
    transaction: a "leaked" audit event with ``source`` ("github" or
    "report"), ``url`` and ``note`` (as :func:`without_secrets` gives them), ``secret`` ("current" or
    "replaced") and ``response`` ("revoked", "notified" or "grace_ended"), which mails the owner (notice
    key_leaked, cannot be turned off) and sends ``key.leaked``. For the current secret, with
    ``OMIKEYS_LEAK_ACTION=revoke`` (the default), the key is then revoked (a "revoked" event, ``key.revoked``;
    no second mail). For a secret a rotation replaced, with the same setting, its grace period ends now instead
    (response "grace_ended"): it stops working, and the current secret, which did not leak, keeps working. A
    report of a key already revoked, or of a secret already reported by the same source that UTC day
    (:func:`report_fingerprint`), changes nothing.
    Raises ``ValueError`` for an unknown ``source``.
    """
    if source not in ACTORS:
        raise ValueError(f"unknown leak source {source!r}; one of {', '.join(LEAK_SOURCES)}")
    url, note = without_secrets(url, note)
    hashes = list(candidate_hashes)
    match = ApiKey.objects.filter(Q(key_hash__in=hashes) | Q(previous_key_hash__in=hashes)).first()
    if match is None:
        return LeakFinding(genuine=False)
    now = timezone.now()
    with transaction.atomic():
        # of=("self",): lock the key's row only, not its owner's (PostgreSQL would lock every joined row).
        api_key = ApiKey.objects.select_for_update(of=("self",)).select_related("owner").get(pk=match.pk)
        replaced = api_key.key_hash not in hashes
        live = not api_key.is_revoked and (not replaced or api_key.previous_secret_works(now))
        secret_hash = api_key.key_hash if not replaced else api_key.previous_key_hash
        fingerprint = report_fingerprint(secret_hash, source, now.astimezone(datetime.UTC).date())
        if not live or api_key.events.filter(action=KeyEvent.Action.LEAKED, details__fingerprint=fingerprint).exists():
            return LeakFinding(genuine=True, key_id=api_key.pk)
        # A secret a rotation replaced: only its grace period ends; the current secret never leaked.
        act = settings.OMIKEYS_LEAK_ACTION == "revoke"
        end_grace, revoke = act and replaced, act and not replaced
        actor = ACTORS[source]
        details = {
            "source": source,
            "url": url,
            "fingerprint": fingerprint,
            "secret": "replaced" if replaced else "current",
            "response": "grace_ended" if end_grace else "revoked" if revoke else "notified",
        }
        if note:
            details["note"] = note
        if end_grace:
            ApiKey.objects.filter(pk=api_key.pk).update(previous_key_expires_at=now)
        audit.record(api_key, KeyEvent.Action.LEAKED, actor, at=now, **details)
        revoked = False
        if revoke:
            # As lifecycle.revoke_key, with the leak's details (so notices write no second mail).
            revoked = bool(ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now))
            if revoked:
                audit.record(api_key, KeyEvent.Action.REVOKED, actor, at=now, reason=LEAK_REVOCATION_REASON, leak=True)
    logger.warning(
        "api key reported leaked id=%s owner=%s source=%s revoked=%s", api_key.pk, api_key.owner_id, source, revoked
    )
    return LeakFinding(genuine=True, acted=True, revoked=revoked, key_id=api_key.pk)


WITHHELD = "(withheld: it holds an API key)"


def without_secrets(url: str, note: str) -> tuple[str, str]:
    """A leak report's ``url`` and ``note`` as they may be kept, queued and mailed: cut to :data:`URL_MAX_LENGTH`
    and :data:`NOTE_MAX_LENGTH` characters, and each one that holds a raw key (``crypto.contains_raw_key``: also
    percent-encoded, or a bare checksum-format secret) replaced by :data:`WITHHELD`. Doors call it before a
    report travels anywhere (the task queue is a database table), :func:`handle_leak` again on what it gets."""
    return _no_secret((url or "")[:URL_MAX_LENGTH]), _no_secret((note or "")[:NOTE_MAX_LENGTH])


def _no_secret(text: str) -> str:
    """``text``, or :data:`WITHHELD` when it holds a raw key: a URL or note is kept and mailed, a secret never."""
    return WITHHELD if text and crypto.contains_raw_key(text) else text


def handle_leaked_token(token: str, *, source: str, url: str = "", note: str = "") -> LeakFinding:
    """:func:`handle_leak` for a presented token: one that is not a well-formed key (either format; a
    checksum-format key whose checksum fails) is not genuine, without asking the database."""
    if not isinstance(token, str) or not crypto.is_well_formed(token):
        return LeakFinding(genuine=False)
    return handle_leak(crypto.candidate_hashes(token), source=source, url=url, note=note)
