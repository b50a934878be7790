"""How a key's audit events read on its page: what happened, who did it, from where, in plain words."""

import datetime
import re
from dataclasses import dataclass

from django.utils.html import format_html

from .. import audit
from ..models import KeyEvent
from ..templatetags.key_names import key_name

# The page shows this many of a key's newest events; older ones stay in the database (and the admin).
HISTORY_LENGTH = 50

# Browsers and clients in the order to look for them: many user agents name several
# (Edge's also says Chrome and Safari), so the most specific comes first.
_CLIENTS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("HeadlessChrome/", "Headless Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Version/", "Safari"),
    ("curl/", "curl"),
    ("python-requests/", "Python requests"),
    ("python-httpx/", "Python httpx"),
    ("Go-http-client/", "Go"),
    ("node-fetch", "Node.js"),
    ("Postman", "Postman"),
)
_SYSTEMS = (
    ("Windows", "Windows"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)
SHORT_AGENT_LENGTH = 40


def short_user_agent(user_agent: str) -> str:
    """A browser's long user agent as "Chrome 131 on Linux"; other agents cut to a readable length."""
    user_agent = user_agent.strip()
    if not user_agent:
        return ""
    for marker, name in _CLIENTS:
        position = user_agent.find(marker)
        if position < 0:
            continue
        major = re.match(r"(\d+)", user_agent[position + len(marker) :])
        client = f"{name} {major.group(1)}" if major and "/" in marker else name
        system = next((label for token, label in _SYSTEMS if token in user_agent), None)
        return f"{client} on {system}" if system else client
    if len(user_agent) <= SHORT_AGENT_LENGTH:
        return user_agent
    return user_agent[: SHORT_AGENT_LENGTH - 1].rstrip() + "…"


def _moment(value) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class EventRow:
    """One line of a key's history as its owner reads it."""

    at: datetime.datetime
    action: str  # the KeyEvent.Action value, for styling
    what: str
    until: datetime.datetime | None  # a moment the "what" refers to (grace end, new expiry)
    who: str
    via: str
    ip_address: str
    user_agent: str  # shortened
    full_user_agent: str


def _what(event: KeyEvent) -> tuple[str, datetime.datetime | None]:
    details = event.details or {}
    if event.action == KeyEvent.Action.CREATED:
        expires = _moment(details.get("expires_at"))
        return ("Created, expires", expires) if expires else ("Created, never expires", None)
    if event.action == KeyEvent.Action.ROTATED:
        grace_ends = _moment(details.get("previous_key_expires_at"))
        if grace_ends:
            return ("Rotated; old secret accepted until", grace_ends)
        return ("Rotated; old secret stopped at once", None)
    if event.action == KeyEvent.Action.EXPIRY_CHANGED:
        expires = _moment(details.get("expires_at"))
        return ("Expiry changed to", expires) if expires else ("Expiry removed: never expires", None)
    if event.action == KeyEvent.Action.REVOKED:
        return ("Revoked", None)
    if event.action == KeyEvent.Action.RENAMED:
        return (format_html("Renamed to “{}”", key_name(details.get("name", ""))), None)
    if event.action == KeyEvent.Action.SCOPES_CHANGED:
        return ("Scopes changed to " + (", ".join(details.get("scopes") or []) or "none"), None)
    if event.action == KeyEvent.Action.LEAKED:
        where = details.get("url")
        what = format_html("Reported found in public at {}", where) if where else "Reported found in public"
        return (what, None)
    return (event.get_action_display().capitalize(), None)


def _who(event: KeyEvent, viewer) -> str:
    if event.actor_kind == KeyEvent.ActorKind.USER and event.actor_id == viewer.pk:
        return "you"
    if event.actor_kind == KeyEvent.ActorKind.STAFF:
        return "Omi staff"
    if event.actor_kind == KeyEvent.ActorKind.COMMAND:
        # The label is "<command> (run by <OS user>)"; the server's OS account is not the owner's business.
        return "Omi staff, command " + event.actor_label.split(" (run by ", 1)[0]
    if event.actor_kind == KeyEvent.ActorKind.SYSTEM:
        # "Omi", with a note where there is more to say ("recorded before the audit log existed").
        note = event.actor_label if event.actor_label not in ("", audit.CODE.label) else ""
        return f"Omi ({note})" if note else "Omi"
    return event.actor_label or "someone else"


def _grace_end_as_it_happened(api_key, grace_ends, cut):
    """When a rotation's replaced secret really stopped (or stops): the grace period's end, unless a later
    rotation, the revocation or the key's expiry came first; the history never claims longer."""
    candidates = [grace_ends]
    if cut is not None:
        candidates.append(cut)
    if api_key.expires_at is not None:
        candidates.append(api_key.expires_at)
    return min(candidates)


def event_rows(events, viewer) -> list[EventRow]:
    """The rows of the history table for ``viewer``, the key's owner.

    Where staff acted, their address and browser are theirs, not the owner's, and are left out.
    """
    rows = []
    ended = None  # when the next (later) rotation or the revocation ended a replaced secret
    ends = []
    for event in events:  # newest first: each event sees what ended its grace period
        ends.append(ended)
        if event.action in (KeyEvent.Action.ROTATED, KeyEvent.Action.REVOKED):
            ended = event.at
    for event, cut in zip(events, ends, strict=True):
        what, until = _what(event)
        if event.action == KeyEvent.Action.ROTATED and until is not None:
            until = _grace_end_as_it_happened(event.api_key, until, cut)
        own = event.actor_kind == KeyEvent.ActorKind.USER
        rows.append(
            EventRow(
                at=event.at,
                action=event.action,
                what=what,
                until=until,
                who=_who(event, viewer),
                via=event.get_via_display(),
                ip_address=(event.ip_address or "") if own else "",
                user_agent=short_user_agent(event.user_agent) if own else "",
                full_user_agent=event.user_agent if own else "",
            )
        )
    return rows
