"""Every later write to a key: renaming and rescoping, rotating, changing the expiry, pausing, revoking.

Each change is audited in the transaction that makes it. Bad input raises a
``ValidationError`` keyed by field; any other refusal a ``LifecycleError``.
"""

import datetime
import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .. import audit, crypto
from ..audit import Actor
from ..models import ApiKey, KeyEvent, Scope
from .errors import AlreadyRotated, DisabledByStaff, KeyRevoked, NotRotatable
from .issuing import IssuedKey, check_room_for_one_more, choose_scopes, clean_name, field_errors, iso, lock_owner
from .rules import validate_expiry, validate_grace, validate_reason

logger = logging.getLogger("apikeys.lifecycle")


def update_key(
    api_key: ApiKey, *, name: str | None = None, scopes: Iterable[Scope] | None = None, actor: Actor | None = None
) -> list[str]:
    """Rename ``api_key`` and/or replace its scopes; returns the actions recorded ("renamed", "scopes_changed").

    ``None`` leaves that part as it is. Each real change is audited, with the old and
    new values, in the same transaction. The name and scopes follow the rules of
    :func:`issue_key` (``ValidationError`` keyed "name" or "scopes": an empty scope list
    is refused). A revoked key raises :class:`KeyRevoked`.
    A scope change applies to the key's next request.
    """
    if name is not None:
        name = clean_name(name)
    chosen = None if scopes is None else choose_scopes(scopes)
    with transaction.atomic():
        current = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if current.is_revoked:
            raise KeyRevoked("This key has been revoked; it cannot change.")
        now = timezone.now()
        recorded = []
        if name is not None and name != current.name:
            ApiKey.objects.filter(pk=current.pk).update(name=name)
            audit.record(current, KeyEvent.Action.RENAMED, actor, at=now, name=name, previous_name=current.name)
            recorded.append(KeyEvent.Action.RENAMED)
        if chosen is not None:
            before = sorted(current.scopes.values_list("code", flat=True))
            after = [scope.code for scope in chosen]
            if after != before:
                current.scopes.set(chosen)
                audit.record(
                    current, KeyEvent.Action.SCOPES_CHANGED, actor, at=now, scopes=after, previous_scopes=before
                )
                recorded.append(KeyEvent.Action.SCOPES_CHANGED)
    if name is not None:
        api_key.name = name
    if recorded:
        # Logged once the change is committed: inside change_key's transaction it may still roll back.
        line = ("api key updated id=%s owner=%s changes=%s", api_key.pk, api_key.owner_id, ",".join(recorded))
        transaction.on_commit(lambda: logger.info(*line))
    return recorded


# change_key's default for ``expires_at``: leave the expiry as it is (None means "never").
KEEP = object()


def change_key(
    api_key: ApiKey,
    *,
    name: str | None = None,
    scopes: Iterable[Scope] | None = None,
    expires_at: datetime.datetime | None | object = KEEP,
    actor: Actor | None = None,
) -> list[str]:
    """Edit ``api_key`` in place (its secret stays): any of name, scopes and expiry, all or nothing.

    ``name`` and ``scopes`` of ``None`` and ``expires_at`` of :data:`KEEP` leave that part
    as it is; ``expires_at=None`` means never, and an ``expires_at`` equal to the key's leaves
    it too (a past one is not refused). Every part is checked before anything is
    written, under the rules of :func:`issue_key`, and all the refusals are raised together
    as one ``ValidationError`` keyed "name", "scopes", "expires_at". Then the parts change
    in one transaction (:func:`update_key`, :func:`set_expiry`): an expired key given a
    later expiry needs room under the owner's limit (:class:`TooManyKeys`), a revoked key
    raises :class:`KeyRevoked`, and either leaves every part unchanged. Returns the audit
    actions recorded ("renamed", "scopes_changed", "expiry_changed"), empty when nothing changed.
    """
    errors: dict = {}
    cleaned_name = chosen = None
    if name is not None:
        try:
            cleaned_name = clean_name(name)
        except ValidationError as error:
            errors.update(error.error_dict)
    if scopes is not None:
        try:
            chosen = choose_scopes(scopes)
        except ValidationError as error:
            errors.update(error.error_dict)
    if expires_at == api_key.expires_at:
        expires_at = KEEP  # unchanged: not checked again (a form sends the expiry back as it was, a past one too)
    if expires_at is not KEEP:
        try:
            with field_errors("expires_at"):
                validate_expiry(expires_at)
        except ValidationError as error:
            errors.update(error.error_dict)
    if errors:
        raise ValidationError(errors)
    # update_key and set_expiry bring ``api_key`` up to date as they go: put it back if a later part
    # is refused and the transaction rolls back, so the caller never shows a change that was not made.
    before = (api_key.name, api_key.expires_at)
    try:
        with transaction.atomic():
            if expires_at is not KEEP:
                lock_owner(api_key.owner_id)  # the owner before the key, as set_expiry locks them
            recorded = update_key(api_key, name=cleaned_name, scopes=chosen, actor=actor)
            if expires_at is not KEEP and set_expiry(api_key, expires_at, actor=actor):
                recorded.append(KeyEvent.Action.EXPIRY_CHANGED)
    except BaseException:
        api_key.name, api_key.expires_at = before
        raise
    return recorded


ROTATED_FIELDS = ("previous_key_hash", "previous_key_expires_at", "key_hash", "key_prefix", "rotated_at")


def rotate_key(
    api_key: ApiKey,
    *,
    grace_seconds: int = 0,
    expected_prefix: str | None = None,
    actor: Actor | None = None,
) -> IssuedKey:
    """Give ``api_key`` a new secret and return it; id, name, scopes and expiry stay.

    The old secret stops at once, or keeps working for ``grace_seconds`` (0 to
    ``MAX_GRACE_SECONDS``, else ``ValidationError`` keyed "grace_seconds") so clients
    can move over; never past the key's expiry, so ``previous_key_expires_at`` is at the
    latest ``expires_at``. A secret still in the grace period of an earlier rotation stops
    now: only the newest replaced secret is kept.

    ``expected_prefix`` is the display prefix the caller saw; if the secret has
    changed since, nothing happens and :class:`AlreadyRotated` is raised, so a
    form sent twice rotates once, and a rotation that another request made while the
    caller's ran is not undone. The comparison is with the locked row's secret, never
    with clocks (``rotated_at`` may lie in the future after an import, or when another
    host's clock is ahead). A revoked key raises :class:`KeyRevoked`, an expired one
    :class:`NotRotatable`. The caller decides access.
    """
    validate_grace(grace_seconds)
    generated = crypto.generate_key(settings.OMIKEYS_KEY_FORMAT)
    with transaction.atomic():
        current = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        now = timezone.now()
        if current.is_revoked:
            raise KeyRevoked("This key has been revoked; a revoked key cannot be rotated.")
        if current.is_expired(now):
            raise NotRotatable("This key has expired; an expired key cannot be rotated.")
        if expected_prefix is not None and current.key_prefix != expected_prefix:
            raise AlreadyRotated(current)
        grace_ends = now + datetime.timedelta(seconds=grace_seconds) if grace_seconds else None
        if grace_ends and current.expires_at and current.expires_at < grace_ends:
            grace_ends = current.expires_at  # the replaced secret cannot outlive the key
        replaced_prefix = current.key_prefix
        current.previous_key_hash = current.key_hash if grace_ends else None
        current.previous_key_expires_at = grace_ends
        current.key_hash = generated.hashed
        current.key_prefix = generated.display_prefix
        current.rotated_at = now
        current.save(update_fields=ROTATED_FIELDS)
        audit.record(
            current,
            KeyEvent.Action.ROTATED,
            actor,
            at=now,
            grace_seconds=grace_seconds,
            previous_key_expires_at=iso(grace_ends),
            # The replaced secret's display prefix: how the owner recognises it in a notice (apikeys.notices).
            previous_key_prefix=replaced_prefix,
        )
    for field in ROTATED_FIELDS:
        setattr(api_key, field, getattr(current, field))
    logger.info("api key rotated id=%s owner=%s grace=%ss", api_key.pk, api_key.owner_id, grace_seconds)
    return IssuedKey(api_key=api_key, plaintext=generated.plaintext)


def set_expiry(api_key: ApiKey, expires_at: datetime.datetime | None, *, actor: Actor | None = None) -> bool:
    """Change when ``api_key`` expires (``None``: never). Returns False when nothing changed.

    The new value follows :func:`validate_expiry` (``ValidationError`` keyed
    "expires_at"). A revoked key raises :class:`KeyRevoked`. An expired key given a
    later expiry works again, so it needs a place under the owner's active-key
    limit (:class:`TooManyKeys`).
    """
    if expires_at == api_key.expires_at:
        return False
    with field_errors("expires_at"):
        validate_expiry(expires_at)
    with transaction.atomic():
        lock_owner(api_key.owner_id)
        current = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if current.is_revoked:
            raise KeyRevoked("This key has been revoked; its expiry cannot change.")
        if current.is_expired():
            check_room_for_one_more(api_key.owner_id)
        previous = current.expires_at
        ApiKey.objects.filter(pk=api_key.pk).update(expires_at=expires_at)
        audit.record(
            current,
            KeyEvent.Action.EXPIRY_CHANGED,
            actor,
            at=timezone.now(),
            expires_at=iso(expires_at),
            previous_expires_at=iso(previous),
        )
    api_key.expires_at = expires_at
    line = ("api key expiry changed id=%s owner=%s", api_key.pk, api_key.owner_id)
    transaction.on_commit(lambda: logger.info(*line))  # as update_key's line
    return True


def revoke_key(api_key: ApiKey, *, actor: Actor | None = None, reason: str = "") -> bool:
    """Revoke ``api_key``; it stops verifying at once. The caller has decided access
    (a door fetches an owner's key with ``ApiKey.objects.for_owner(user)``). A ``reason``
    (such as "account deleted") is kept in the audit event's details.

    Returns True when this call revoked it, False when it was already revoked (not
    an error). ``api_key.revoked_at`` is up to date afterwards either way. A reason that holds
    a secret raises a ``ValidationError`` keyed "reason" (:func:`validate_reason`), before anything changes.
    """
    validate_reason(reason)
    if api_key.revoked_at is not None:
        return False
    now = timezone.now()
    # The guarded update keeps the first revocation time if two requests race,
    # and only the request that revoked the key records the event.
    with transaction.atomic():
        revoked = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now)
        if revoked:
            audit.record(api_key, KeyEvent.Action.REVOKED, actor, at=now, **({"reason": reason} if reason else {}))
    if revoked:
        api_key.revoked_at = now
        logger.info("api key revoked id=%s owner=%s", api_key.pk, api_key.owner_id)
        return True
    api_key.refresh_from_db(fields=["revoked_at"])
    return False


def disable_key(api_key: ApiKey, *, actor: Actor | None = None, reason: str = "") -> bool:
    """Pause ``api_key``: it stops verifying at once (401 "this key is disabled", code DISABLED) and
    keeps its secret, scopes and expiry, and its place under the owner's active-key limit.

    Returns True when this call disabled it, False when it already was (not an error).
    A revoked key raises :class:`KeyRevoked`. An expired key may be disabled: enabling it
    later does not make it verify. A ``reason`` is kept in the audit event's details. The
    caller has decided access. ``api_key.disabled_at`` is up to date afterwards. A reason that
    holds a secret raises a ``ValidationError`` keyed "reason" (:func:`validate_reason`), before
    anything changes.
    """
    validate_reason(reason)
    now = timezone.now()
    with transaction.atomic():
        # The guarded update keeps the first pause if two requests race; only that one is audited.
        disabled = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True, disabled_at__isnull=True).update(
            disabled_at=now
        )
        if disabled:
            audit.record(api_key, KeyEvent.Action.DISABLED, actor, at=now, **({"reason": reason} if reason else {}))
    if disabled:
        api_key.disabled_at = now
        logger.info("api key disabled id=%s owner=%s", api_key.pk, api_key.owner_id)
        return True
    api_key.refresh_from_db(fields=["revoked_at", "disabled_at"])
    if api_key.is_revoked:
        raise KeyRevoked("This key has been revoked; it cannot be disabled.")
    return False


def enable_key(api_key: ApiKey, *, actor: Actor | None = None) -> bool:
    """Resume a paused ``api_key``: its secrets verify again (if it has not expired meanwhile).

    Returns True when this call enabled it, False when it was not disabled (not an error).
    A revoked key raises :class:`KeyRevoked`: revocation is final. The key kept its place
    under the limit while paused, so no room is needed. ``api_key.disabled_at`` is up to
    date afterwards.

    A staff hold: when ``actor`` is the key's owner (kind "user", through the API or the web) and
    the key was disabled by anyone else (:func:`staff_hold`), :class:`DisabledByStaff` is raised and
    nothing changes; staff, commands and services may enable it.
    """
    now = timezone.now()
    with transaction.atomic():
        if actor is not None and actor.kind == KeyEvent.ActorKind.USER:
            # Locked first: a hold set by a concurrent disable_key is seen here, never undone.
            locked = ApiKey.objects.select_for_update().filter(pk=api_key.pk).first()
            hold = staff_hold(locked) if locked is not None else None
            if hold is not None:
                raise DisabledByStaff(api_key, hold)
        enabled = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True, disabled_at__isnull=False).update(
            disabled_at=None
        )
        if enabled:
            audit.record(api_key, KeyEvent.Action.ENABLED, actor, at=now)
    if enabled:
        api_key.disabled_at = None
        logger.info("api key enabled id=%s owner=%s", api_key.pk, api_key.owner_id)
        return True
    api_key.refresh_from_db(fields=["revoked_at", "disabled_at"])
    if api_key.is_revoked:
        raise KeyRevoked("This key has been revoked; it cannot be enabled.")
    return False


def staff_hold(api_key: ApiKey) -> KeyEvent | None:
    """The "disabled" audit event that holds ``api_key`` paused against its owner, or ``None``.

    A disabled, unrevoked key is held when its last "disabled" event was not made by its owner
    (``KeyEvent.actor`` is someone else, or no person at all: a command, a service, code); the
    owner cannot enable it (:func:`enable_key` raises :class:`DisabledByStaff`). A key the owner
    paused themselves, or with no "disabled" event, is not held. One query, only for a disabled key.
    """
    if api_key.disabled_at is None or api_key.revoked_at is not None:
        return None
    event = (
        KeyEvent.objects.filter(api_key_id=api_key.pk, action=KeyEvent.Action.DISABLED).order_by("-at", "-pk").first()
    )
    if event is None or event.actor_id == api_key.owner_id:
        return None
    return event
