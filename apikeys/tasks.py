"""What the worker runs (``manage.py qcluster``, django-q2): each task a thin call into the core.

The two periodic passes are registered as django-q2 schedules after every ``migrate``
(:func:`ensure_schedules`); django-q2's scheduler starts them about once a minute.
"""

from django_q.models import Schedule

from . import events, webhooks

SCHEDULES = {
    # Deliveries that are due: retries, and first attempts whose immediate task was lost.
    "omikeys: deliver due webhooks": "apikeys.tasks.deliver_due",
    # key.expired, once per key and expiry.
    "omikeys: emit key.expired events": "apikeys.tasks.emit_expired",
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


def ensure_schedules(using: str = "default") -> None:
    """Create (or correct) the worker's periodic schedules in database ``using``, every minute each."""
    for name, func in SCHEDULES.items():
        Schedule.objects.using(using).update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1},
        )
