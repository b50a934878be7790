"""How the admin shows keys: scope lists, statuses, moments and event details as text."""

from urllib.parse import urlencode

from django.urls import reverse
from django.utils import formats, timezone

from ..models import ApiKey
from ..text import isolated, needs_isolation


def scope_codes(api_key: ApiKey) -> str:
    """The key's scope codes, comma-separated: "goals:write, memories:read"."""
    # .all() rather than a new query, so the prefetch done by the callers is used.
    return ", ".join(scope.code for scope in api_key.scopes.all())


def key_status(api_key: ApiKey) -> str:
    """The label of the key's ApiKey.Status: "Active", "Disabled", "Expired" or "Revoked"."""
    return api_key.status.label


def moment_text(moment, empty: str = "never") -> str:
    """A moment as the admin shows dates: read-only display methods get no formatting, nor empty value, of their own."""
    return empty if moment is None else formats.localize(timezone.template_localtime(moment))


def day_text(moment, empty: str = "never") -> str:
    """The day of a moment in the server's time zone, "2026-11-30": narrow enough for a list column."""
    return empty if moment is None else formats.date_format(timezone.template_localtime(moment), "Y-m-d")


def details_summary(details: dict) -> str:
    """An event's details on one line: "grace seconds: 3600; previous key expires at: ..."."""
    parts = []
    for name, value in details.items():
        if isinstance(value, list):
            value = ", ".join(map(str, value)) or "none"
        elif isinstance(value, str) and needs_isolation(value):
            value = isolated(value)  # a stored name's bidi control cannot reorder the rest of the line
        parts.append(f"{name.replace('_', ' ')}: {'none' if value is None else value}")
    return "; ".join(parts)


def events_url(api_key: ApiKey) -> str:
    """The event list filtered to one key."""
    return f"{reverse('admin:apikeys_keyevent_changelist')}?{urlencode({'api_key__id__exact': api_key.pk})}"
