"""Who changed a key, and from where: the actor of a change and its audit record."""

import getpass
import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from . import events, metrics, notices
from .models import USER_AGENT_MAX_LENGTH, ApiKey, KeyEvent, ServiceClient, User


def client_ip(request) -> str | None:
    """The calling client's address.

    With ``OMIKEYS_NUM_PROXIES`` = 0 it is the connection's address. Behind N proxies
    it is the address the outermost of them saw, the N-th entry from the right of
    ``X-Forwarded-For``: entries further left are whatever the client chose to send.
    ``None`` when no valid address is known.
    """
    connection = _parse(request.META.get("REMOTE_ADDR"))
    proxies = settings.OMIKEYS_NUM_PROXIES
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if forwarded:
            # A garbled entry from a proxy is no address: fall back to the connection's.
            return _parse(forwarded[-min(proxies, len(forwarded))]) or connection
    return connection


def _parse(address: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(address.strip())) if address else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Actor:
    """Who is making a change, through which door, from which address and user agent."""

    kind: str
    via: str
    user: User | None = None
    label: str = ""
    ip_address: str | None = None
    user_agent: str = ""
    service_client: ServiceClient | None = None

    @classmethod
    def from_request(cls, request, *, via: str) -> "Actor":
        """The signed-in person behind ``request``: the key's owner, or staff in the admin."""
        user = request.user if getattr(request.user, "is_authenticated", False) else None
        kind = KeyEvent.ActorKind.STAFF if via == KeyEvent.Via.ADMIN else KeyEvent.ActorKind.USER
        return cls(
            kind=kind,
            via=via,
            user=user,
            label=user.label if user else "",
            ip_address=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_MAX_LENGTH],
        )

    @classmethod
    def service(cls, client: ServiceClient, request) -> "Actor":
        """A service client acting through the service API: its name, and the address and user agent it called
        from (the service's own, not an end client's)."""
        return cls(
            kind=KeyEvent.ActorKind.SERVICE,
            via=KeyEvent.Via.SERVICE,
            service_client=client,
            label=f"service {client.name}",
            ip_address=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_MAX_LENGTH],
        )

    @classmethod
    def command(cls, name: str) -> "Actor":
        """A management command, named with the operating-system user who ran it."""
        try:
            os_user = getpass.getuser()
        except (KeyError, OSError):
            os_user = "unknown"
        return cls(kind=KeyEvent.ActorKind.COMMAND, via=KeyEvent.Via.COMMAND, label=f"{name} (run by {os_user})")


# Changes made from Python code with no request or command behind them (a shell, a script).
CODE = Actor(kind=KeyEvent.ActorKind.SYSTEM, via=KeyEvent.Via.CODE, label="Python code")


def record(api_key: ApiKey, action: str, actor: Actor | None, *, at, **details) -> KeyEvent:
    """Write one audit event, its outgoing event for webhooks (``apikeys.events``) and its email notice to the
    key's owner (``apikeys.notices``); call it inside the transaction that makes the change."""
    event = unsaved(api_key, action, actor, at=at, **details)
    event.save(force_insert=True)
    count_on_commit([event])
    events.emit_for_key_event(event)
    notices.for_key_event(event)
    return event


def unsaved(api_key: ApiKey, action: str, actor: Actor | None, *, at, **details) -> KeyEvent:
    """The event :func:`record` writes, not yet saved and not yet counted: for changes that write many
    events at once, in the transaction that makes them (imports), which then pass them all to
    :func:`count_on_commit`. These make no outgoing webhook event (``apikeys.events`` says why)."""
    actor = actor or CODE
    return KeyEvent(
        api_key=api_key,
        action=action,
        at=at,
        actor_kind=actor.kind,
        actor=actor.user,
        service_client=actor.service_client,
        actor_label=actor.label[:200],
        via=actor.via,
        ip_address=actor.ip_address,
        user_agent=actor.user_agent,
        details=details,
    )


def count_on_commit(written: Iterable[KeyEvent]) -> None:
    """Count ``written`` events in ``omikeys_key_events_total`` when the transaction commits: a change
    rolled back never happened. One commit hook for all of them, whatever their number."""
    counts = Counter((event.action, event.via) for event in written)
    if counts:
        transaction.on_commit(lambda: metrics.record_key_events(counts))
