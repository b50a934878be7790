"""Webhook endpoints and deliveries: signing secrets, safe URLs, and sending events at least once.

- Endpoints: :func:`register_endpoint`, :func:`rotate_secret`, :func:`disable_endpoint`,
  :func:`enable_endpoint`; staff call them from the admin and ``manage.py webhookendpoint``.
- Secrets: ``whsec_`` + base64 of 24 random bytes (the Standard Webhooks form), shown once
  and stored encrypted with Fernet under a key derived from ``SECRET_KEY`` (and
  ``SECRET_KEY_FALLBACKS``, so a key rotation keeps old secrets readable): the worker must
  sign with the secret, so a hash would not do.
- URLs (:func:`check_url`): https only (unless ``OMIKEYS_WEBHOOK_ALLOW_HTTP``), and every
  address the host resolves to must be public unless in ``OMIKEYS_WEBHOOK_ALLOWED_NETWORKS``;
  checked at registration and again at each attempt, which then connects to the very
  address it checked (DNS can change between the two).
- Deliveries (:func:`deliver_due`, :func:`deliver_event`): claim a due delivery with a lease,
  POST the signed event (``standardwebhooks``), record the outcome. 2xx is delivered;
  anything else, a timeout or a refused connection is retried after the waits of
  ``OMIKEYS_WEBHOOK_RETRY_SCHEDULE``, then failed. An endpoint failing every attempt for
  ``OMIKEYS_WEBHOOK_DISABLE_AFTER_DAYS`` days is disabled.
"""

import base64
import datetime
import hashlib
import ipaddress
import json
import logging
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from . import events, metrics
from .models import EVENT_TYPE_NAMES, WEBHOOK_URL_MAX_LENGTH, Delivery, Event, WebhookEndpoint

logger = logging.getLogger("apikeys.webhooks")

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24
ERROR_MAX_LENGTH = 300
EXCERPT_BYTES = 200
USER_AGENT = "omikeys-webhooks/1"
MAX_SECRET_GRACE_HOURS = 168  # a week, as for API keys' rotations
PREVIOUS_SECRET_FIELDS = ("previous_secret_encrypted", "previous_secret_expires_at")
CLAIM_TRIES = 5  # due deliveries another worker took between the read and the claim, before giving up


# Secrets ---------------------------------------------------------------------------------


def generate_secret() -> str:
    """A new signing secret: "whsec_" + base64 of 24 random bytes (Standard Webhooks' form)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _fernet() -> MultiFernet:
    keys = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    derived = [
        Fernet(base64.urlsafe_b64encode(hashlib.sha256(f"omikeys.webhooks.secret:{key}".encode()).digest()))
        for key in keys
    ]
    return MultiFernet(derived)


def encrypt_secret(secret: str) -> str:
    """``secret`` encrypted (a Fernet token) under the current ``SECRET_KEY``."""
    return _fernet().encrypt(secret.encode()).decode()


def decrypt_secret(token: str) -> str:
    """The secret in ``token``, read with ``SECRET_KEY`` or any of ``SECRET_KEY_FALLBACKS``.

    Raises :class:`SecretUnreadable` when none of them encrypted it (the key it was made
    with was dropped): rotate the endpoint's secret.
    """
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "The signing secret cannot be decrypted with DJANGO_SECRET_KEY or DJANGO_SECRET_KEY_FALLBACKS; "
            "rotate the endpoint's secret."
        ) from None


class SecretUnreadable(Exception):
    """An endpoint's stored secret was encrypted under a secret key this process no longer has."""


# URLs ------------------------------------------------------------------------------------


class UnsafeURL(ValueError):
    """A webhook URL that may not be called: its message says why, for staff."""


# NAT64's well-known prefix (RFC 6052): 64:ff9b::a.b.c.d reaches the IPv4 address a.b.c.d
# through a NAT64 gateway, which may well route to the private networks around it.
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches, or None: IPv4-mapped (::ffff:a.b.c.d), NAT64
    (64:ff9b::a.b.c.d, RFC 6052), 6to4 (2002:AABB:CCDD::, RFC 3056) and Teredo's client
    (RFC 4380). Each of them can carry a private or loopback IPv4 address past a check
    that looks at the IPv6 address only."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def _address_refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    allowed = settings.OMIKEYS_WEBHOOK_ALLOWED_NETWORKS
    if any(address in network for network in allowed):
        return False
    if isinstance(address, ipaddress.IPv6Address) and (inner := embedded_ipv4(address)) is not None:
        # The IPv4 address inside decides (a NAT64 address of a public host is public).
        return _address_refused(inner)
    # is_global is False for private, loopback, link-local, unspecified and shared
    # (100.64.0.0/10) addresses. On Python 3.11 it is True for IPv6's reserved ranges
    # (::/8, which holds the IPv4-compatible ::a.b.c.d, 64:ff9b:1::/48 and others) and the
    # deprecated site-local fec0::/10, and multicast addresses can be "global": all refused.
    return (
        not address.is_global
        or address.is_multicast
        or address.is_reserved
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    )


def _parse(url: str):
    if len(url) > WEBHOOK_URL_MAX_LENGTH:
        raise UnsafeURL(f"The URL is longer than {WEBHOOK_URL_MAX_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeURL("This is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURL("Use an https:// URL with a host name.")
    if parts.scheme == "http" and not settings.OMIKEYS_WEBHOOK_ALLOW_HTTP:
        raise UnsafeURL("Use https://: plain http:// webhook URLs are not allowed here (OMIKEYS_WEBHOOK_ALLOW_HTTP).")
    if parts.username or parts.password:
        raise UnsafeURL("Put no user name or password in the URL.")
    return parts, port or (443 if parts.scheme == "https" else 80)


def resolve(url: str) -> tuple:
    """(the URL's parts, its port, the one address to connect to), or :class:`UnsafeURL`.

    Every address the host resolves to must be allowed, not only the first, so a name
    with a public and a private address is refused.
    """
    parts, port = _parse(url)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeURL(f"The host name {parts.hostname!r} does not resolve.") from None
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if address not in addresses:
            addresses.append(address)
    refused = [str(address) for address in addresses if _address_refused(address)]
    if refused or not addresses:
        raise UnsafeURL(
            f"{parts.hostname} resolves to {', '.join(refused)}: a private, loopback, link-local, multicast, "
            "reserved or unspecified address, which webhooks may not call. To allow an internal receiver, "
            "name its network in OMIKEYS_WEBHOOK_ALLOWED_NETWORKS."
        )
    return parts, port, addresses[0]


def check_url(url: str) -> str:
    """``url`` stripped, or ``ValidationError`` (code "unsafe_url") saying why it is refused."""
    url = url.strip()
    try:
        resolve(url)
    except UnsafeURL as error:
        raise ValidationError(str(error), code="unsafe_url") from None
    return url


def check_event_types(event_types) -> list[str]:
    """The event types, each once in the documented order, or ``ValidationError`` (code "event_types")."""
    chosen = set(event_types or [])
    unknown = sorted(chosen - set(EVENT_TYPE_NAMES))
    if unknown:
        raise ValidationError(
            f"Unknown event type {', '.join(unknown)}; choose from {', '.join(EVENT_TYPE_NAMES)}.", code="event_types"
        )
    if not chosen:
        raise ValidationError("Choose at least one event type.", code="event_types")
    return [name for name in EVENT_TYPE_NAMES if name in chosen]


# Endpoints -------------------------------------------------------------------------------


def register_endpoint(url: str, event_types, description: str = "") -> tuple[WebhookEndpoint, str]:
    """Register a webhook endpoint; returns it and its signing secret, which exists only here.

    Raises ``ValidationError`` keyed "url" or "event_types" for a refused URL or an
    unknown/empty list of types.
    """
    errors = {}
    try:
        url = check_url(url)
    except ValidationError as error:
        errors["url"] = error.error_list
    try:
        event_types = check_event_types(event_types)
    except ValidationError as error:
        errors["event_types"] = error.error_list
    if errors:
        raise ValidationError(errors)
    secret = generate_secret()
    endpoint = WebhookEndpoint.objects.create(
        url=url, event_types=event_types, description=description.strip()[:200], secret_encrypted=encrypt_secret(secret)
    )
    events.forget_subscriptions()
    logger.info("webhook endpoint registered id=%s types=%s", endpoint.pk, ",".join(event_types))
    return endpoint, secret


def rotate_secret(endpoint: WebhookEndpoint, grace_hours: float | None = None) -> str:
    """Give ``endpoint`` a new signing secret and return it (shown once).

    The replaced secret keeps signing beside the new one for ``grace_hours`` (default
    ``OMIKEYS_WEBHOOK_SECRET_GRACE_HOURS``; 0: it stops at once): each request then carries
    two signatures, as Standard Webhooks provides for rotations, so the receiver can move
    to the new secret without a failed delivery. A secret already in its grace period is
    dropped. Raises ``ValueError`` for a negative or over-a-week ``grace_hours``.
    """
    grace_hours = settings.OMIKEYS_WEBHOOK_SECRET_GRACE_HOURS if grace_hours is None else grace_hours
    if not 0 <= grace_hours <= MAX_SECRET_GRACE_HOURS:
        raise ValueError(f"The grace period is between 0 and {MAX_SECRET_GRACE_HOURS} hours, not {grace_hours:g}.")
    now = timezone.now()
    secret = generate_secret()
    if grace_hours:
        endpoint.previous_secret_encrypted = endpoint.secret_encrypted
        endpoint.previous_secret_expires_at = now + datetime.timedelta(hours=grace_hours)
    else:
        endpoint.previous_secret_encrypted, endpoint.previous_secret_expires_at = "", None
    endpoint.secret_encrypted = encrypt_secret(secret)
    endpoint.secret_rotated_at = now
    endpoint.save(update_fields=["secret_encrypted", "secret_rotated_at", *PREVIOUS_SECRET_FIELDS])
    logger.info("webhook endpoint secret rotated id=%s grace_hours=%g", endpoint.pk, grace_hours)
    return secret


def signing_secrets(endpoint: WebhookEndpoint, now: datetime.datetime) -> list[str]:
    """The secrets that sign ``endpoint``'s requests now: the current one, then the replaced one
    while its grace period lasts (and it can be read). Raises :class:`SecretUnreadable` when
    the current one cannot be read."""
    secrets_now = [decrypt_secret(endpoint.secret_encrypted)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted and expires is not None and now < expires:
        try:
            secrets_now.append(decrypt_secret(endpoint.previous_secret_encrypted))
        except SecretUnreadable:
            pass  # the new secret still signs
    return secrets_now


def disable_endpoint(endpoint: WebhookEndpoint, reason: str) -> bool:
    """Stop sending to ``endpoint``; False if it was already disabled. Its pending deliveries wait."""
    now = timezone.now()
    changed = WebhookEndpoint.objects.filter(pk=endpoint.pk, enabled=True).update(
        enabled=False, disabled_at=now, disabled_reason=reason[:200]
    )
    endpoint.refresh_from_db(fields=["enabled", "disabled_at", "disabled_reason"])
    if changed:
        events.forget_subscriptions()
        logger.warning("webhook endpoint disabled id=%s reason=%s", endpoint.pk, reason)
    return bool(changed)


def enable_endpoint(endpoint: WebhookEndpoint) -> bool:
    """Send to ``endpoint`` again (its waiting deliveries go at once); False if it was enabled."""
    changed = WebhookEndpoint.objects.filter(pk=endpoint.pk, enabled=False).update(
        enabled=True, disabled_at=None, disabled_reason="", failing_since=None
    )
    if changed:
        events.forget_subscriptions()
        Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.PENDING).update(
            next_attempt_at=timezone.now()
        )
    endpoint.refresh_from_db(fields=["enabled", "disabled_at", "disabled_reason", "failing_since"])
    return bool(changed)


def redeliver(deliveries) -> int:
    """Send these deliveries again, from their first attempt: pending and due now. Returns how many."""
    ids = [delivery.pk for delivery in deliveries]
    count = Delivery.objects.filter(pk__in=ids).update(
        status=Delivery.Status.PENDING, attempts=0, next_attempt_at=timezone.now(), locked_until=None, lease_token=None
    )
    for event_id in set(Delivery.objects.filter(pk__in=ids).values_list("event_id", flat=True)):
        transaction.on_commit(lambda event_id=event_id: _queue(event_id))
    return count


def _queue(event_id) -> None:
    events.queue_attempt(event_id)


# Sending ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """What one attempt got: the HTTP status (None when no answer) and a short error or excerpt."""

    status: int | None
    error: str = ""

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def body_of(event: Event) -> str:
    """The exact JSON body sent for ``event`` (the same at every attempt)."""
    return json.dumps(event.payload, separators=(",", ":"), sort_keys=True)


def signed_headers(event: Event, body: str, secret, now: datetime.datetime) -> dict:
    """The Standard Webhooks headers: webhook-id (the event id), webhook-timestamp, webhook-signature.

    ``secret``: one secret, or a list of them (a rotation's grace period): webhook-signature
    then holds one "v1,<base64>" per secret, separated by spaces, and a receiver holding
    any of them verifies the request (Standard Webhooks, "Signature scheme").
    """
    timestamp = now.astimezone(datetime.UTC)
    signing = [secret] if isinstance(secret, str) else list(secret)
    return {
        "webhook-id": str(event.pk),
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(Webhook(key).sign(str(event.pk), timestamp, body) for key in signing),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


def post(url: str, body: str, headers: dict) -> Attempt:
    """POST ``body`` to ``url`` once: no redirects followed, ``OMIKEYS_WEBHOOK_TIMEOUT`` to connect and per read,
    and twice it for the whole attempt.

    The URL is checked (:func:`resolve`) and the connection made to the address checked.
    The whole-attempt deadline matters: a receiver that answers a byte at a time meets every
    per-read timeout while holding the worker for ever, past the delivery's lease (which
    ``OMIKEYS_WEBHOOK_LEASE_SECONDS`` keeps above twice the timeout). At the deadline the
    socket is shut down from a timer thread, which ends any read blocked on it.
    Returns an :class:`Attempt`; never raises for network trouble.
    """
    try:
        parts, port, address = resolve(url)
    except UnsafeURL as error:
        return Attempt(None, f"refused: {error}")
    seconds = settings.OMIKEYS_WEBHOOK_TIMEOUT
    timeout = urllib3.Timeout(connect=seconds, read=seconds)
    common = {"port": port, "timeout": timeout, "retries": False, "maxsize": 1}
    hostname = ascii_hostname(parts.hostname)
    if parts.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            str(address),
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            server_hostname=hostname,
            assert_hostname=hostname,
            **common,
        )
    else:
        pool = urllib3.HTTPConnectionPool(str(address), **common)
    sockets = []
    pool.ConnectionCls = _watched(pool.ConnectionCls, sockets)
    cut_off = threading.Event()

    def stop_at_deadline():
        cut_off.set()
        for sock in list(sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    watchdog = threading.Timer(2 * seconds, stop_at_deadline)
    watchdog.daemon = True
    default_port = 443 if parts.scheme == "https" else 80
    host = hostname if ":" not in hostname else f"[{hostname}]"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    watchdog.start()
    try:
        response = pool.urlopen(
            "POST",
            target,
            body=body.encode(),
            headers={**headers, "Host": host if port == default_port else f"{host}:{port}"},
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            excerpt = response.read(EXCERPT_BYTES, decode_content=False) or b""
        except (urllib3.exceptions.HTTPError, OSError):
            excerpt = b""
        response.release_conn()
        if cut_off.is_set():
            return Attempt(None, f"timed out after {2 * seconds:g} s for the whole attempt")
        status = response.status
        if 200 <= status < 300:
            return Attempt(status)
        text = excerpt.decode("utf-8", "replace").strip()
        return Attempt(status, f"HTTP {status}" + (f": {text}" if text else ""))
    except urllib3.exceptions.NewConnectionError as error:  # before TimeoutError: urllib3 makes it a subclass
        return Attempt(None, f"could not connect: {_reason(error)}")
    except urllib3.exceptions.TimeoutError:
        return Attempt(None, f"timed out after {seconds:g} s")
    except (urllib3.exceptions.HTTPError, OSError) as error:
        if cut_off.is_set():
            return Attempt(None, f"timed out after {2 * seconds:g} s for the whole attempt")
        return Attempt(None, f"{type(error).__name__}: {_reason(error)}")
    finally:
        watchdog.cancel()
        pool.close()


def _watched(connection_class, sockets: list):
    """``connection_class`` (urllib3's) recording each socket it connects in ``sockets``, for the deadline."""

    class Watched(connection_class):
        def connect(self):
            super().connect()
            sockets.append(self.sock)

    return Watched


def ascii_hostname(hostname: str) -> str:
    """``hostname`` as it goes in the Host header and TLS's server name: an internationalized
    name in its ASCII (IDNA, "xn--") form, which is also what DNS resolved. Header values
    must be ASCII, so a raw "bücher.example" would make the request itself fail."""
    try:
        return hostname.encode("idna").decode("ascii")
    except UnicodeError:
        return hostname


def _reason(error: Exception) -> str:
    text = str(error)
    # urllib3 prefixes the connection object's repr; keep the part after it.
    return text.split(">: ", 1)[-1] if ">: " in text else text


def claim(delivery_id=None, *, now=None, exclude=(), exclude_endpoints=()) -> Delivery | None:
    """Take one due pending delivery (the given one, or the oldest due) for this worker, or None.

    The delivery gets a lease of ``OMIKEYS_WEBHOOK_LEASE_SECONDS`` and a new ``lease_token``;
    no other worker takes it until the lease ends. ``exclude``: ids to pass over (those a
    pass has already tried, so a retry due at once waits for the next pass); ``exclude_endpoints``:
    ids of endpoints to pass over. On PostgreSQL rows other workers are claiming are skipped
    (``SKIP LOCKED``); SQLite has one writer at a time.
    """
    now = now or timezone.now()
    due = Delivery.objects.filter(
        status=Delivery.Status.PENDING, next_attempt_at__lte=now, endpoint__enabled=True
    ).filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now))
    if delivery_id is not None:
        due = due.filter(pk=delivery_id)
    if exclude:
        due = due.exclude(pk__in=exclude)
    if exclude_endpoints:
        due = due.exclude(endpoint_id__in=exclude_endpoints)
    if connection.features.has_select_for_update_skip_locked:
        due = due.select_for_update(skip_locked=True, of=("self",))
    lease_end = now + datetime.timedelta(seconds=settings.OMIKEYS_WEBHOOK_LEASE_SECONDS)
    lost = []
    for _ in range(CLAIM_TRIES):
        with transaction.atomic():
            delivery = due.exclude(pk__in=lost).order_by("next_attempt_at", "pk").first()
            if delivery is None:
                return None
            token = uuid.uuid4()
            # Guarded: where rows cannot be locked (SQLite), another worker may have taken it since the read.
            taken = (
                Delivery.objects.filter(pk=delivery.pk)
                .filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now))
                .update(locked_until=lease_end, lease_token=token)
            )
        if taken:
            delivery.locked_until, delivery.lease_token = lease_end, token
            return delivery
        lost.append(delivery.pk)
    return None


def attempt(delivery: Delivery) -> Attempt:
    """Send a claimed delivery once and record the outcome (see the module's docstring)."""
    delivery = Delivery.objects.select_related("event", "endpoint").get(pk=delivery.pk)
    endpoint, event = delivery.endpoint, delivery.event
    now = timezone.now()
    try:
        signing = signing_secrets(endpoint, now)
    except SecretUnreadable as error:
        result = Attempt(None, str(error))
    else:
        body = body_of(event)
        result = post(endpoint.url, body, signed_headers(event, body, signing, now))
    record(delivery, result)
    return result


def printable(text: str) -> str:
    """``text`` with every control or other unprintable character (CR, LF, ESC, NUL, U+2028...)
    made a space: a receiver's answer goes into the log and the admin, where it must not
    forge log lines or send terminal escape sequences."""
    return "".join(character if character.isprintable() else " " for character in text)


def record(delivery: Delivery, result: Attempt) -> None:
    """Store an attempt's outcome, if this worker still holds the delivery's lease."""
    result = Attempt(result.status, printable(result.error))
    now = timezone.now()
    attempts = delivery.attempts + 1
    changes = {
        "attempts": attempts,
        "last_attempt_at": now,
        "last_response_code": result.status,
        "last_error": result.error[:ERROR_MAX_LENGTH],
        "locked_until": None,
        "lease_token": None,
    }
    schedule = settings.OMIKEYS_WEBHOOK_RETRY_SCHEDULE
    if result.delivered:
        outcome = "delivered"
        changes.update(status=Delivery.Status.DELIVERED, delivered_at=now, next_attempt_at=None, last_error="")
    elif attempts > len(schedule):
        outcome = "failed"
        changes.update(status=Delivery.Status.FAILED, next_attempt_at=None)
    else:
        outcome = "retry"
        changes.update(next_attempt_at=now + datetime.timedelta(seconds=schedule[attempts - 1]))
    with transaction.atomic():
        kept = Delivery.objects.filter(pk=delivery.pk, lease_token=delivery.lease_token).update(**changes)
        if not kept:
            logger.warning("webhook delivery %s: lease lost before its outcome was recorded", delivery.pk)
            return
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
        if result.delivered:
            if endpoint.failing_since is not None:
                WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
        elif endpoint.failing_since is None:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=now)
        elif now - endpoint.failing_since >= datetime.timedelta(days=settings.OMIKEYS_WEBHOOK_DISABLE_AFTER_DAYS):
            days = settings.OMIKEYS_WEBHOOK_DISABLE_AFTER_DAYS
            disable_endpoint(endpoint, f"Every delivery attempt failed for {days} days (last: {result.error})")
    metrics.record_webhook_delivery(outcome)
    log = logger.info if result.delivered else logger.warning
    log(
        "webhook delivery %s event=%s type=%s endpoint=%s attempt=%s status=%s %s",
        outcome,
        delivery.event_id,
        getattr(getattr(delivery, "event", None), "type", ""),
        delivery.endpoint_id,
        attempts,
        result.status,
        result.error[:ERROR_MAX_LENGTH],
    )


def deliver_event(event_id) -> int:
    """Attempt each due delivery of one event (the immediate attempt after a change). Returns how many.

    Endpoints that are failing (``failing_since`` set) are left to the scheduled pass, which
    tries each of them once per pass: a receiver that hangs costs every new event up to
    twice ``OMIKEYS_WEBHOOK_TIMEOUT`` of a worker, which would hold back the deliveries to
    every other endpoint queued behind it.
    """
    sent = 0
    deliveries = Delivery.objects.filter(event_id=event_id, endpoint__failing_since__isnull=True)
    for delivery_id in deliveries.values_list("pk", flat=True):
        delivery = claim(delivery_id)
        if delivery is not None:
            attempt(delivery)
            sent += 1
    return sent


def deliver_due(budget_seconds: float | None = None) -> int:
    """Attempt due deliveries one at a time until none is due or the budget is spent. Returns how many.

    Each delivery is tried at most once per pass, and after an endpoint fails an attempt its
    other deliveries wait for the next pass (about a minute later): one receiver that hangs
    or refuses costs a pass one timeout, not one per waiting delivery, so it cannot starve
    the others. Once it answers, the rest of its backlog follows in the same pass.
    The budget (default: half of ``OMIKEYS_WEBHOOK_LEASE_SECONDS``) bounds the time spent
    starting new attempts, so one pass ends well within the worker's task timeout.
    """
    budget = settings.OMIKEYS_WEBHOOK_LEASE_SECONDS / 2 if budget_seconds is None else budget_seconds
    deadline = time.monotonic() + budget
    tried = []
    failing = set()
    while time.monotonic() < deadline:
        delivery = claim(exclude=tried, exclude_endpoints=failing)
        if delivery is None:
            break
        if not attempt(delivery).delivered:
            failing.add(delivery.endpoint_id)
        tried.append(delivery.pk)
    return len(tried)


# Retention -------------------------------------------------------------------------------

PRUNE_BATCH = 1000


def prune_events(now: datetime.datetime | None = None) -> int:
    """Delete the outgoing events older than ``OMIKEYS_WEBHOOK_RETENTION_DAYS`` whose deliveries are
    all done (delivered or failed), with those deliveries. Returns how many events went.

    Without it the outbox grows by an event and a delivery per endpoint for every key change,
    for ever. An event with a pending delivery stays, whatever its age (a disabled endpoint's
    waiting deliveries). Deleted in batches of 1,000 so no transaction holds the tables long.
    The retention is longer than the key.expired pass looks back (7 days), whose events are
    its memory of what it reported.
    """
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(days=settings.OMIKEYS_WEBHOOK_RETENTION_DAYS)
    done = Event.objects.filter(created_at__lt=cutoff).exclude(
        pk__in=Delivery.objects.filter(status=Delivery.Status.PENDING).values("event_id")
    )
    pruned = 0
    while ids := list(done.values_list("pk", flat=True)[:PRUNE_BATCH]):
        with transaction.atomic():
            Delivery.objects.filter(event_id__in=ids).delete()
            pruned += Event.objects.filter(pk__in=ids).delete()[1].get(Event._meta.label, 0)
    if pruned:
        days = settings.OMIKEYS_WEBHOOK_RETENTION_DAYS
        logger.info("webhook events pruned count=%s older_than_days=%s", pruned, days)
    return pruned
