"""What the worker runs (``manage.py qcluster``, django-q2): each task a thin call into the core.

The periodic passes are registered as django-q2 schedules after every ``migrate``
(:func:`ensure_schedules`): deliveries, key.expired and email notices about once a minute,
expiry notices every five minutes, the outbox's retention (``webhooks.prune_events``) and key usage's
(``lifecycle.prune_usage``) once an hour.
"""

from django_q.models import Schedule

from . import events, lifecycle, notices, webhooks

# name: (task, minutes between runs)
SCHEDULES = {
    # Deliveries that are due: retries, and first attempts whose immediate task was lost.
    "omikeys: deliver due webhooks": ("apikeys.tasks.deliver_due", 1),
    # key.expired, once per key and expiry.
    "omikeys: emit key.expired events": ("apikeys.tasks.emit_expired", 1),
    # Outgoing events past OMIKEYS_WEBHOOK_RETENTION_DAYS, once all their deliveries are done.
    "omikeys: prune old webhook events": ("apikeys.tasks.prune_events", 60),
    # Key usage: hourly counts past 90 days, addresses past OMIKEYS_USAGE_ADDRESS_RETENTION_DAYS.
    "omikeys: prune key usage": ("apikeys.tasks.prune_usage", 60),
    # Email notices that are due: retries, and first attempts whose immediate task was lost.
    "omikeys: send due notices": ("apikeys.tasks.send_due_notices", 1),
    # Expiry reminders (7 days, 1 day) and expired notices, once per key, milestone and expiry.
    "omikeys: write expiry notices": ("apikeys.tasks.write_expiry_notices", 5),
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


def prune_usage() -> int:
    """The hourly pass that removes old usage counts and addresses; the number of rows removed or emptied."""
    report = lifecycle.prune_usage()
    return report.hours + report.addresses + report.last_uses


def send_notices(user_id) -> int:
    """The immediate sending of a user's notices, queued when the change that wrote them commits."""
    return notices.send_due(user_id=user_id)


def send_due_notices() -> int:
    """The scheduled pass over due notices."""
    return notices.send_due()


def write_expiry_notices() -> int:
    """The scheduled pass that writes expiry notices, then sends those due."""
    written = notices.write_expiry_notices()
    if written:
        notices.send_due()
    return written


def handle_leak_report(key_hash: str, legacy_hash: str, well_formed: bool, url: str = "", note: str = "") -> bool:
    """A person's leak report (``POST /v1/leaks/report``), queued by the view so that its answer and timing
    say nothing of the key: the report's key travels as its two candidate hashes (``crypto.candidate_hashes``),
    never as plaintext. True when it acted on a live key."""
    if not well_formed:
        return False
    return lifecycle.handle_leak((key_hash, legacy_hash), source="report", url=url, note=note).acted


def ensure_schedules(using: str = "default") -> None:
    """Create (or correct) the worker's periodic schedules in database ``using`` (``SCHEDULES``)."""
    for name, (func, minutes) in SCHEDULES.items():
        Schedule.objects.using(using).update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1},
        )
