"""What the worker runs (``manage.py qcluster``, django-q2): each task a thin call into the core.

The periodic passes are registered as django-q2 schedules after every ``migrate``
(:func:`ensure_schedules`): deliveries and key.expired about once a minute, the outbox's
retention (``webhooks.prune_events``) once an hour.
"""

from django_q.models import Schedule

from . import events, webhooks

# name: (task, minutes between runs)
SCHEDULES = {
    # Deliveries that are due: retries, and first attempts whose immediate task was lost.
    "omikeys: deliver due webhooks": ("apikeys.tasks.deliver_due", 1),
    # key.expired, once per key and expiry.
    "omikeys: emit key.expired events": ("apikeys.tasks.emit_expired", 1),
    # Outgoing events past OMIKEYS_WEBHOOK_RETENTION_DAYS, once all their deliveries are done.
    "omikeys: prune old webhook events": ("apikeys.tasks.prune_events", 60),
}


def deliver_event(event_id: str) -> int:
    """The immediate attempt of an event's deliveries, queued when its change commits."""
    return webhooks.deliver_event(event_id)


def deliver_due() -> int:
    """The scheduled pass over due deliveries."""
    return webhooks.deliver_due()


def emit_expired() -> int:
    """The scheduled pass that emits key.expired."""
    return events.emit_expired()


def prune_events() -> int:
    """The hourly pass that deletes old outgoing events whose deliveries are done."""
    return webhooks.prune_events()


def ensure_schedules(using: str = "default") -> None:
    """Create (or correct) the worker's periodic schedules in database ``using`` (``SCHEDULES``)."""
    for name, (func, minutes) in SCHEDULES.items():
        Schedule.objects.using(using).update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1},
        )
