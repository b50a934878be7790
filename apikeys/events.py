"""Outgoing events: the one place a change becomes an event for webhook endpoints (the outbox).

Every key change is audited by ``audit.record`` inside the change's transaction, and
``audit.record`` calls :func:`emit_for_key_event` there: the event and one pending
:class:`~apikeys.models.Delivery` per subscribed endpoint are written in that same
transaction, so a change rolled back sends nothing and a committed one is never lost.
Once the transaction commits, an immediate attempt is queued for the worker; the worker's
scheduled pass (``apikeys.tasks``) picks up anything that queueing missed.

Audit action -> event type: created -> key.created, rotated -> key.rotated, revoked ->
key.revoked, disabled -> key.disabled, enabled -> key.enabled,
renamed / scopes_changed / expiry_changed -> key.updated, leaked -> key.leaked (with
``data.leak``: source, url and action; a revocation for a leak also sends key.revoked). "imported" makes
no event: the importer writes its audit records in bulk, and a first import of Omi's
existing keys must not queue a million deliveries. A key an import revokes (one imported
earlier, working here, whose owner is now disabled or deleted at the issuer) sends
key.revoked like every other revocation: receivers that cache keys must drop it. key.expired comes from a scheduled
pass (:func:`emit_expired`), user.keys_revoked and user.erased from :func:`emit_user_event`.

An event is written only when at least one enabled endpoint subscribes to its type: an
endpoint receives the changes made after it was registered (in other processes, from at
most 10 seconds after: :func:`subscriptions`).
"""

import datetime
import logging
import uuid

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import EVENT_TYPE_NAMES, ApiKey, Delivery, Event, KeyEvent, User, WebhookEndpoint

logger = logging.getLogger("apikeys.events")

KEY_EVENT_TYPES = {
    KeyEvent.Action.CREATED: "key.created",
    KeyEvent.Action.ROTATED: "key.rotated",
    KeyEvent.Action.REVOKED: "key.revoked",
    KeyEvent.Action.DISABLED: "key.disabled",
    KeyEvent.Action.ENABLED: "key.enabled",
    KeyEvent.Action.RENAMED: "key.updated",
    KeyEvent.Action.SCOPES_CHANGED: "key.updated",
    KeyEvent.Action.EXPIRY_CHANGED: "key.updated",
    KeyEvent.Action.LEAKED: "key.leaked",
}
# What a key.updated event says changed, by audit action.
CHANGED_FIELDS = {
    KeyEvent.Action.RENAMED: "name",
    KeyEvent.Action.SCOPES_CHANGED: "scopes",
    KeyEvent.Action.EXPIRY_CHANGED: "expires_at",
}
SUBSCRIPTIONS_CACHE_KEY = "omikeys:webhooks:subscriptions"
SUBSCRIPTIONS_CACHE_SECONDS = 10
# How far back the key.expired pass looks for expiries it has not reported.
EXPIRY_LOOKBACK = datetime.timedelta(days=7)


def rfc3339(moment: datetime.datetime | None) -> str | None:
    """A moment as RFC 3339 in UTC with a "Z" (``2027-06-01T12:00:00.123456Z``), or None."""
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def actor_data(kind: str, via: str, user: User | None, label: str) -> dict:
    """How an event names who acted: kind, via, and a user's Firebase uid or another actor's label.

    Never an email, an address or a user agent: staff are named by their account id.
    """
    data = {"kind": kind, "via": via}
    if kind == KeyEvent.ActorKind.USER and user is not None:
        data["uid"] = user.firebase_uid
    elif kind == KeyEvent.ActorKind.STAFF:
        data["staff_id"] = user.pk if user is not None else None
    else:
        data["label"] = label
    return data


def key_data(api_key: ApiKey) -> dict:
    """The key as events describe it, read from the database now (inside the change's transaction)."""
    current = ApiKey.objects.select_related("owner").get(pk=api_key.pk)
    return {
        "key_id": str(current.pk),
        "owner_uid": current.owner.firebase_uid,
        "name": current.name,
        "scopes": sorted(current.scopes.values_list("code", flat=True)),
        "status": str(current.status),
        "expires_at": rfc3339(current.expires_at),
    }


def subscriptions() -> dict[str, list[int]]:
    """{event type: ids of the enabled endpoints that receive it}, kept in the cache for 10 seconds.

    Every key change asks, so it is read from the database at most once per 10 seconds per
    cache (per process with the default local cache; shared with Redis). The functions that
    change endpoints (``apikeys.webhooks``) forget it, so in this process (with Redis: in
    all of them) a change applies at once; other processes follow within 10 seconds.
    Deliveries made meanwhile for an endpoint just disabled are not sent (the worker skips
    disabled endpoints). When the cache does not answer, whatever its backend raises, the
    database is read: a key change never fails for the cache (as the throttles, ``limits``).
    """
    try:
        table = cache.get(SUBSCRIPTIONS_CACHE_KEY)
    except Exception:  # DependencyUnavailable from ours; redis or memcached errors from others
        table = None
    if table is None:
        table = {}
        for pk, event_types in WebhookEndpoint.objects.filter(enabled=True).values_list("pk", "event_types"):
            for event_type in event_types or []:
                table.setdefault(event_type, []).append(pk)
        try:
            cache.set(SUBSCRIPTIONS_CACHE_KEY, table, SUBSCRIPTIONS_CACHE_SECONDS)
        except Exception:  # as above
            pass
    return table


def forget_subscriptions() -> None:
    """Drop the cached subscriptions now and when the current transaction commits (an endpoint changed)."""

    def forget():
        try:
            cache.delete(SUBSCRIPTIONS_CACHE_KEY)
        except Exception:  # as in subscriptions
            pass

    forget()
    transaction.on_commit(forget)


def subscribed_endpoints(event_type: str) -> list[int]:
    """The ids of the enabled endpoints that receive ``event_type`` (see :func:`subscriptions`)."""
    return subscriptions().get(event_type, [])


def emit(
    event_type: str,
    data: dict,
    *,
    at: datetime.datetime | None = None,
    dedup_key: str | None = None,
    endpoints: list[int] | None = None,
):
    """Write one event and a pending delivery per subscribed endpoint; returns the Event or None.

    Call it inside the transaction of the change it reports. None when no enabled endpoint
    subscribes to ``event_type``. With ``dedup_key``, a second event with the same key
    raises ``IntegrityError`` (the caller's savepoint decides). Raises ``ValueError`` for an
    unknown type. The immediate delivery attempt is queued when the transaction commits.
    ``endpoints``: the ids of the subscribed endpoints, when the caller has just read them.
    """
    if event_type not in EVENT_TYPE_NAMES:
        raise ValueError(f"unknown event type {event_type!r}; one of {', '.join(EVENT_TYPE_NAMES)}")
    if endpoints is None:
        endpoints = subscribed_endpoints(event_type)
    if not endpoints:
        return None
    at = at or timezone.now()
    event_id = uuid.uuid4()
    payload = {"id": str(event_id), "type": event_type, "timestamp": rfc3339(at), "data": data}
    event = Event.objects.create(id=event_id, type=event_type, payload=payload, created_at=at, dedup_key=dedup_key)
    Delivery.objects.bulk_create(
        [Delivery(event=event, endpoint_id=pk, next_attempt_at=at, created_at=at) for pk in endpoints]
    )
    transaction.on_commit(lambda: queue_attempt(event.pk))
    return event


def queue_attempt(event_id) -> None:
    """Ask the worker to send ``event_id``'s deliveries now; if the queue cannot be reached,
    the scheduled pass sends them within a minute, so this only logs."""
    from django_q.tasks import async_task

    try:
        async_task("apikeys.tasks.deliver_event", str(event_id), task_name=f"deliver {event_id}")
    except Exception:
        logger.warning("could not queue an immediate delivery of event %s; the scheduled pass will send it", event_id)


def emit_for_key_event(key_event: KeyEvent):
    """The outgoing event of one audited key change, or None (imports; no subscribed endpoint)."""
    event_type = KEY_EVENT_TYPES.get(key_event.action)
    endpoints = subscribed_endpoints(event_type) if event_type else []
    if not endpoints:
        return None
    data = key_data(key_event.api_key)
    if key_event.action in CHANGED_FIELDS:
        data["changed"] = [CHANGED_FIELDS[key_event.action]]
    data["actor"] = actor_data(key_event.actor_kind, key_event.via, key_event.actor, key_event.actor_label)
    data["door"] = key_event.via
    if key_event.action == KeyEvent.Action.LEAKED:
        details = key_event.details or {}
        data["leak"] = {
            "source": details.get("source", ""),
            "url": details.get("url", ""),
            "action": details.get("response", ""),
        }
    return emit(event_type, data, at=key_event.at, endpoints=endpoints)


def emit_user_event(event_type: str, user: User, *, actor=None, key_ids=(), at=None):
    """Emit user.keys_revoked or user.erased for ``user``; call it in the change's transaction.

    ``actor`` is an :class:`apikeys.audit.Actor` (None: Python code), ``key_ids`` the ids of
    the keys the change touched. ``data`` carries the owner's uid, the key ids, the actor
    and the door. Returns the Event, or None when no endpoint subscribes. Raises
    ``ValueError`` for a type that is not a user event.
    """
    from .audit import CODE

    if event_type not in ("user.keys_revoked", "user.erased"):
        raise ValueError(f"{event_type!r} is not a user event (user.keys_revoked, user.erased)")
    actor = actor or CODE
    data = {
        "owner_uid": user.firebase_uid,
        "key_ids": sorted(str(key_id) for key_id in key_ids),
        "actor": actor_data(actor.kind, actor.via, actor.user, actor.label),
        "door": actor.via,
    }
    return emit(event_type, data, at=at)


def emit_expired(now: datetime.datetime | None = None) -> int:
    """Emit key.expired once for each key whose expiry passed (in the last 7 days) and was not reported.

    Safe to run in two workers at once: the event's ``dedup_key`` (key id and expiry) is
    unique, so a second pass's insert fails and is skipped. Returns how many it emitted.
    """
    if not subscribed_endpoints("key.expired"):
        return 0
    now = now or timezone.now()
    candidates = (
        ApiKey.objects.unrevoked()
        .filter(expires_at__lte=now, expires_at__gt=now - EXPIRY_LOOKBACK)
        .values_list("pk", "expires_at")
    )
    # An expiry event's time is the expiry itself: those already sent are in the same window.
    reported = set(
        Event.objects.filter(type="key.expired", created_at__gt=now - EXPIRY_LOOKBACK).values_list(
            "dedup_key", flat=True
        )
    )
    emitted = 0
    for key_id, expires_at in candidates:
        dedup_key = f"key.expired:{key_id}:{rfc3339(expires_at)}"
        if dedup_key in reported:
            continue
        try:
            with transaction.atomic():
                api_key = ApiKey.objects.get(pk=key_id)
                if api_key.is_revoked or api_key.expires_at != expires_at:
                    continue  # changed since the query
                data = {
                    **key_data(api_key),
                    "status": str(ApiKey.Status.EXPIRED),
                    "actor": actor_data(KeyEvent.ActorKind.SYSTEM, KeyEvent.Via.CODE, None, "key expiry"),
                    "door": KeyEvent.Via.CODE,
                }
                if emit("key.expired", data, at=expires_at, dedup_key=dedup_key):
                    emitted += 1
        except IntegrityError:
            continue  # another pass reported this expiry first
    if emitted:
        logger.info("key.expired events emitted count=%s", emitted)
    return emitted
