"""Email notices to keys' owners: the one place a change becomes a notice, and the worker's sending of them.

What is sent when (docs/notifications.md says it for users and operators):

- ``key_created``: every key issued (not imported), whoever issued it; it cannot be turned off.
  Worded for who acted: the owner's own session gets the "if this was not you, revoke it" warning;
  a key staff, a command or a service created says so and advises no revocation (:func:`item`).
- ``key_rotated``: every new secret issued for a key (a rotation), whoever rotated it, the owner
  included (a stolen session could otherwise mint a working secret unnoticed); it cannot be turned off.
  A rotation by anyone else tells the owner to rotate the key themselves (:func:`rotated_for_you`).
- ``changed_by_other``: a key revoked, disabled, enabled, renamed, rescoped or given another
  expiry by anyone but its owner (staff, a service client, a command, Python code); the owner's
  ``NotificationSettings.changes_by_others``. Keys an import revokes send none: the import writes
  its records in bulk, and their owner's account was disabled or deleted at the issuer.
- ``key_leaked``: a key reported found in public (GitHub secret scanning, a person's report:
  ``lifecycle.handle_leak``), with where it was found and whether it was revoked; it cannot be turned
  off. The revocation that follows it sends no ``changed_by_other`` of its own.
- ``expires_7d``, ``expires_1d``, ``expired``: a scheduled pass (:func:`write_expiry_notices`),
  for the latest milestone a key has reached, unless it had already passed when the expiry was set
  (a key made to expire in 2 days gets no 7-day notice); ``expired`` only for expiries of the last
  :data:`EXPIRED_LOOKBACK`. ``expiry_reminders`` and ``expired`` settings.

A mail shows one block per key (:func:`by_key`), with a line per notice of it, and its subject counts
keys, never notices.

Notices go to active owners only (never to a deactivated or erased account), at the email address
Firebase gave (``User.email``) as it is when the mail is sent (the notice records the address used);
an owner without one gets a notice recorded as skipped. Each notice has a unique ``dedup_key`` (the
audited change's id, or the key, milestone and expiry), so however many passes or workers run, each
is written once.

Sending (:func:`send_due`): notices are written in the change's transaction (``audit.record`` calls
:func:`for_key_event`); when it commits, an immediate task is queued for the worker, and a scheduled
pass every minute picks up what it missed. A worker claims the due notices of one owner and kind with a
lease (``locked_until``, ``lease_token``) and sends them as one mail (so revoking fifty keys at once is
one mail listing fifty, not fifty mails); the lease keeps any other worker off them. A mail server that
refuses the connection, times out (``EMAIL_TIMEOUT`` a step, three times it for the whole exchange)
or answers 4xx leaves them pending, tried again after the waits of ``OMIKEYS_NOTICE_RETRY_SCHEDULE``,
then failed; a permanent refusal (5xx for the recipient or the message) fails them at once. A mail
the server answered 2xx to its data is sent, whatever happens after.
"""

import datetime
import logging
import smtplib
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend as SmtpEmailBackend
from django.db import connection, transaction
from django.db.models import F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from . import metrics
from .events import rfc3339
from .models import ApiKey, KeyEvent, Notice, NotificationSettings, User

logger = logging.getLogger("apikeys.notices")

Kind = Notice.Kind

# The audited actions that, made by someone other than the owner, are worth a mail.
CHANGE_ACTIONS = frozenset(
    {
        KeyEvent.Action.REVOKED,
        KeyEvent.Action.DISABLED,
        KeyEvent.Action.ENABLED,
        KeyEvent.Action.RENAMED,
        KeyEvent.Action.SCOPES_CHANGED,
        KeyEvent.Action.EXPIRY_CHANGED,
    }
)
# How long before its expiry each reminder is due; "expired" at the expiry itself.
MILESTONES = {
    Kind.EXPIRES_IN_7_DAYS: datetime.timedelta(days=7),
    Kind.EXPIRES_IN_1_DAY: datetime.timedelta(days=1),
    Kind.EXPIRED: datetime.timedelta(0),
}
# How far back the expiry pass looks for expiries to report: no mail about keys that expired
# long ago (such as every old key when this feature is first deployed).
EXPIRED_LOOKBACK = datetime.timedelta(days=7)
# Which NotificationSettings field lets an owner turn each kind off (key_created, key_rotated: none,
# always sent).
SETTING_OF = {
    Kind.CHANGED_BY_OTHER: "changes_by_others",
    Kind.EXPIRES_IN_7_DAYS: "expiry_reminders",
    Kind.EXPIRES_IN_1_DAY: "expiry_reminders",
    Kind.EXPIRED: "expired",
}
MAX_PER_MAIL = 50  # notices of one owner and kind put in one mail; more wait for the next mail
CLAIM_TRIES = 5
ERROR_MAX_LENGTH = 300
NO_ADDRESS = "The owner has no email address on record."
MAIL_OFF = "Mail is not configured (EMAIL_URL), so notices are not sent."
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


def lease_seconds() -> float:
    """How long a worker holds the notices it is sending, in seconds: twice the longest a mail can take
    (:func:`longest_delivery_seconds`, four times ``EMAIL_TIMEOUT``) and a minute for the database
    around it, so a lease never ends while its mail may still be under way."""
    return 2 * longest_delivery_seconds() + 60


# Writing -------------------------------------------------------------------------------------


def for_key_event(key_event: KeyEvent) -> Notice | None:
    """The notice of one audited key change, written now (inside the change's transaction), or None.

    key_created for "created", key_rotated for "rotated" and key_leaked for "leaked", whoever acted (none of
    them can be turned off); changed_by_other for the
    :data:`CHANGE_ACTIONS` when the actor is not the key's owner acting as a user, unless the owner
    turned those off; None for anything else, and for an owner who is inactive or erased. The worker
    is asked to send it when the transaction commits.
    """
    api_key = key_event.api_key
    if key_event.action == KeyEvent.Action.REVOKED and (key_event.details or {}).get("leak"):
        return None  # the key_leaked notice of the same report says it was revoked
    if key_event.action == KeyEvent.Action.LEAKED:
        kind = Kind.KEY_LEAKED
        owner = api_key.owner  # handle_leak holds it: no query
        recipient, active, erased = owner.email, owner.is_active, owner.is_erased
    elif key_event.action == KeyEvent.Action.CREATED:
        kind = Kind.KEY_CREATED
        owner = api_key.owner  # the issuing code holds it: no query
        recipient, active, erased = owner.email, owner.is_active, owner.is_erased
    elif key_event.action == KeyEvent.Action.ROTATED or key_event.action in CHANGE_ACTIONS:
        rotated = key_event.action == KeyEvent.Action.ROTATED
        if not rotated and by_owner(key_event, api_key.owner_id):
            return None
        kind = Kind.KEY_ROTATED if rotated else Kind.CHANGED_BY_OTHER
        row = (
            User.objects.filter(pk=api_key.owner_id)
            .values("email", "is_active", "deactivation_reason", "notification_settings__changes_by_others")
            .first()
        )
        if row is None or (not rotated and row["notification_settings__changes_by_others"] is False):
            return None
        recipient, active = row["email"], row["is_active"]
        erased = row["deactivation_reason"] == User.Deactivation.ERASED
    else:
        return None
    if not active or erased:
        return None
    notice = _unsaved(
        kind,
        user_id=api_key.owner_id,
        api_key=api_key,
        key_event=key_event,
        dedup_key=f"{kind}:{key_event.pk}",
        recipient=recipient,
        subject=subject_for(kind, [api_key.name]),
        at=key_event.at,
    )
    notice.save(force_insert=True)
    if notice.status == Notice.Status.PENDING:
        queue_on_commit(notice.user_id)
    else:
        transaction.on_commit(lambda: metrics.record_notice(kind, "skipped"))
    return notice


def by_owner(key_event: KeyEvent, owner_id) -> bool:
    """Whether the key's owner (``owner_id``) made this change themselves, signed in as a user (their own
    session): only then does a mail show the address and client it came from."""
    return key_event.actor_kind == KeyEvent.ActorKind.USER and key_event.actor_id == owner_id


def _unsaved(kind, *, user_id, api_key, dedup_key, recipient, subject, at, key_event=None) -> Notice:
    """A notice not yet saved: pending and due at once, or skipped (no address, mail off) with the reason."""
    status, reason = Notice.Status.PENDING, ""
    if not recipient:
        status, reason = Notice.Status.SKIPPED, NO_ADDRESS
    elif not settings.OMIKEYS_SEND_EMAIL:
        status, reason = Notice.Status.SKIPPED, MAIL_OFF
    return Notice(
        kind=kind,
        user_id=user_id,
        api_key=api_key,
        key_event=key_event,
        dedup_key=dedup_key,
        recipient=recipient or "",
        subject=subject[:200],
        status=status,
        last_error=reason,
        next_attempt_at=at if status == Notice.Status.PENDING else None,
        created_at=at,
    )


def milestone(expires_at: datetime.datetime, set_at: datetime.datetime, now: datetime.datetime) -> str | None:
    """The expiry notice a key is due now: the latest milestone reached (expired, 1 day, 7 days ahead),
    or None when none is reached, or the one reached had already passed when the expiry was set."""
    for kind in (Kind.EXPIRED, Kind.EXPIRES_IN_1_DAY, Kind.EXPIRES_IN_7_DAYS):
        moment = expires_at - MILESTONES[kind]
        if now >= moment:
            return kind if set_at < moment else None
    return None


def expiry_dedup_key(kind: str, key_id, expires_at: datetime.datetime) -> str:
    """The dedup key of an expiry notice: one per key, milestone and expiry (a new expiry, new notices)."""
    return f"{kind}:{key_id}:{rfc3339(expires_at)}"


def write_expiry_notices(now: datetime.datetime | None = None) -> int:
    """Write the expiry notices due now (see the module's docstring); returns how many this call wrote.

    A key's expiry was "set" when it was created or at its last "expiry_changed" event. Safe to run
    twice, or in two workers at once: the unique ``dedup_key`` makes every insert after the first do
    nothing (``bulk_create(ignore_conflicts=True)``: ON CONFLICT DO NOTHING on both databases).
    """
    now = now or timezone.now()
    last_change = (
        KeyEvent.objects.filter(api_key=OuterRef("pk"), action=KeyEvent.Action.EXPIRY_CHANGED)
        .order_by("-at")
        .values("at")[:1]
    )
    candidates = (
        ApiKey.objects.unrevoked()
        .filter(
            owner__is_active=True,
            expires_at__gt=now - EXPIRED_LOOKBACK,
            expires_at__lte=now + MILESTONES[Kind.EXPIRES_IN_7_DAYS],
        )
        .annotate(expiry_set_at=Coalesce(Subquery(last_change), F("created_at")))
        .values(
            "pk",
            "name",
            "owner_id",
            "expires_at",
            "expiry_set_at",
            "owner__email",
            "owner__notification_settings__expiry_reminders",
            "owner__notification_settings__expired",
        )
    )
    wanted = {}
    for row in candidates.iterator(chunk_size=2000):
        kind = milestone(row["expires_at"], row["expiry_set_at"], now)
        if kind is None or row[f"owner__notification_settings__{SETTING_OF[kind]}"] is False:
            continue
        dedup_key = expiry_dedup_key(kind, row["pk"], row["expires_at"])
        wanted[dedup_key] = _unsaved(
            kind,
            user_id=row["owner_id"],
            api_key=ApiKey(pk=row["pk"]),
            dedup_key=dedup_key,
            recipient=row["owner__email"],
            subject=subject_for(kind, [row["name"]], time_left(row["expires_at"], now)),
            at=now,
        )
    written = 0
    keys = list(wanted)
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        known = set(Notice.objects.filter(dedup_key__in=chunk).values_list("dedup_key", flat=True))
        new = [wanted[key] for key in chunk if key not in known]
        # Another pass may write some of these between the read and the insert: theirs stand.
        Notice.objects.bulk_create(new, ignore_conflicts=True)
        written += len(new)
        for notice in new:
            if notice.status == Notice.Status.SKIPPED:
                metrics.record_notice(notice.kind, "skipped")
    if written:
        logger.info("expiry notices written count=%s", written)
    return written


# Queueing ------------------------------------------------------------------------------------


class _SendOnCommit:
    """The one commit hook of a transaction that wrote notices: queues one task per owner, however many
    notices (revoking all of a user's keys writes one per key)."""

    def __init__(self):
        self.user_ids = []

    def __call__(self):
        for user_id in self.user_ids:
            queue_sending(user_id)


def queue_on_commit(user_id) -> None:
    """Queue the sending of ``user_id``'s notices when the current transaction commits (at once outside one)."""
    conn = transaction.get_connection()
    if conn.in_atomic_block:
        # Django keeps the hooks of the transaction as (savepoint ids, callable, robust); a hook of a
        # savepoint rolled back is gone from it, so a new one is registered then.
        for _, hook, _ in conn.run_on_commit:
            if isinstance(hook, _SendOnCommit):
                if user_id not in hook.user_ids:
                    hook.user_ids.append(user_id)
                return
    hook = _SendOnCommit()
    hook.user_ids.append(user_id)
    transaction.on_commit(hook)


def queue_sending(user_id) -> None:
    """Ask the worker to send ``user_id``'s due notices now; if the queue cannot be reached, the
    scheduled pass sends them within a minute, so this only logs: a change never fails for it."""
    from django_q.tasks import async_task

    try:
        async_task("apikeys.tasks.send_notices", user_id, task_name=f"notices of user {user_id}")
    except Exception:
        logger.warning("could not queue the sending of user %s's notices; the scheduled pass will send them", user_id)


# Sending -------------------------------------------------------------------------------------


def _unlocked(now):
    return Q(locked_until__isnull=True) | Q(locked_until__lte=now)


def claim(*, now=None, user_id=None, exclude=()) -> list[Notice]:
    """Take the due pending notices of one owner and kind (at most :data:`MAX_PER_MAIL`) for
    this worker, oldest first; [] when none is due.

    They get a lease of :func:`lease_seconds` and a new ``lease_token``: no other worker takes them
    until it ends. ``user_id``: only that owner's; ``exclude``: ids of notices to pass over (those a
    pass has tried already, so a retry due at once waits for the next pass). On
    PostgreSQL rows another worker is claiming are skipped (``SKIP LOCKED``); SQLite has one writer
    at a time, and the guarded update takes only rows still free.
    """
    now = now or timezone.now()
    due = Notice.objects.filter(status=Notice.Status.PENDING, next_attempt_at__lte=now).filter(_unlocked(now))
    if user_id is not None:
        due = due.filter(user_id=user_id)
    if exclude:
        due = due.exclude(pk__in=list(exclude))
    lease_end = now + datetime.timedelta(seconds=lease_seconds())
    passed = set()
    for _ in range(CLAIM_TRIES):
        with transaction.atomic():
            first = (
                due.exclude(user_id__in=passed)
                .order_by("next_attempt_at", "created_at", "id")
                .values_list("user_id", "kind")
                .first()
            )
            if first is None:
                return []
            owner, kind = first
            group = due.filter(user_id=owner, kind=kind).order_by("created_at", "id")
            if connection.features.has_select_for_update_skip_locked:
                group = group.select_for_update(skip_locked=True)
            ids = list(group.values_list("pk", flat=True)[:MAX_PER_MAIL])
            token = uuid.uuid4()
            taken = (
                Notice.objects.filter(pk__in=ids)
                .filter(_unlocked(now))
                .update(locked_until=lease_end, lease_token=token)
            )
        if taken:
            return list(
                Notice.objects.filter(lease_token=token)
                .select_related("api_key", "key_event", "user")
                .order_by("created_at", "id")
            )
        passed.add(owner)
    return []


@dataclass
class Outcome:
    """What sending one mail came to: "sent", "retry", "failed" or "skipped", and why not sent."""

    outcome: str
    error: str = ""
    notices: list = field(default_factory=list)
    recipient_only: bool = False  # "retry" because the server refused only this recipient for now


def send_due(*, now=None, user_id=None, budget_seconds: float | None = None) -> int:
    """Send due notices, one mail per owner and kind, until none is due or the budget is spent.
    Returns how many mails were attempted.

    After a mail the server did not take for a reason that is not the recipient's (a refused
    connection, a timeout, a 4xx to anything but the recipient), the pass stops: the others wait for
    the next pass instead of each costing a timeout. A 4xx for the recipient alone (452: mailbox full)
    reschedules that mail and the pass goes on. ``budget_seconds`` (default: half the lease) bounds the time spent
    starting new mails, so a pass ends well within the worker's task timeout (twice the lease).
    """
    budget = lease_seconds() / 2 if budget_seconds is None else budget_seconds
    deadline = time.monotonic() + budget
    attempted = 0
    tried = set()
    while time.monotonic() < deadline:
        group = claim(now=now, user_id=user_id, exclude=tried)
        if not group:
            break
        attempted += 1
        tried.update(notice.pk for notice in group)
        result = send(group)
        if result.outcome == "retry" and not result.recipient_only:
            break
    return attempted


def send(group: list[Notice]) -> Outcome:
    """Send a claimed group of notices (one owner and kind) as one mail to the owner's address of now,
    and record the outcome."""
    now = timezone.now()
    live, stale = [], []
    choices = NotificationSettings.for_user(group[0].user)  # one owner per group
    for notice in group:
        (live if still_due(notice, now, choices) else stale).append(notice)
    if stale:
        _record(stale, Outcome("skipped", "No longer true when it was to be sent (the key or the settings changed)."))
    if not live:
        return Outcome("skipped")
    if not settings.OMIKEYS_SEND_EMAIL:
        return _record(live, Outcome("skipped", MAIL_OFF))
    # The owner's address now (claim() read the user with the notices): it may have changed since
    # the notices were written; the notices record the one used.
    recipient = live[0].user.email
    if not recipient:
        return _record(live, Outcome("skipped", NO_ADDRESS), recipient="")
    subject, text, html = render(live, now)
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[recipient],
        # RFC 3834: an automatic message; mail servers and clients send no auto-replies to it.
        headers={"Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(html, "text/html")
    return _record(live, deliver(message), subject, recipient=recipient)


def still_due(notice: Notice, now: datetime.datetime, choices: NotificationSettings | None = None) -> bool:
    """Whether a claimed notice is still worth sending: its owner active, the kind not turned off since
    (``choices``: the owner's settings, read if not given), and an expiry notice still true (the key not
    revoked, the same expiry, no later milestone reached)."""
    user = notice.user
    if not user.is_active or user.is_erased:
        return False
    setting = SETTING_OF.get(notice.kind)
    choices = choices or NotificationSettings.for_user(user)
    if setting and not getattr(choices, setting):
        return False
    if notice.kind in MILESTONES:
        api_key = notice.api_key
        if api_key.is_revoked or api_key.expires_at is None:
            return False
        if notice.dedup_key != expiry_dedup_key(notice.kind, api_key.pk, api_key.expires_at):
            return False
        next_one = {Kind.EXPIRES_IN_7_DAYS: Kind.EXPIRES_IN_1_DAY, Kind.EXPIRES_IN_1_DAY: Kind.EXPIRED}
        later = next_one.get(notice.kind)
        if later is not None and now >= api_key.expires_at - MILESTONES[later]:
            return False  # a later milestone is reached: its own notice says what is true now
    return True


class _Deadline:
    """The whole-mail deadline of one :func:`deliver`: every socket the SMTP client opens is watched (a
    duplicate of it kept), and at the deadline each is shut down, which ends any connect, read or TLS
    handshake blocked on it; a socket opened after the deadline is refused."""

    def __init__(self):
        self.lock = threading.Lock()
        self.passed = threading.Event()
        self.sockets = []

    def watch(self, sock: socket.socket) -> None:
        """Keep a duplicate of ``sock`` to shut it at the deadline; TimeoutError if it passed already."""
        with self.lock:
            if self.passed.is_set():
                raise TimeoutError("the whole-mail deadline passed while connecting")
            self.sockets.append(sock.dup())

    def cut(self) -> None:
        """The deadline: shut every watched socket (both ways)."""
        with self.lock:
            self.passed.set()
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        """Close the duplicates (the SMTP client closes its own sockets)."""
        with self.lock:
            for sock in self.sockets:
                sock.close()
            self.sockets = []


class DeadlineEmailBackend(SmtpEmailBackend):
    """Django's SMTP backend whose connections are watched by a :class:`_Deadline` from the moment their
    socket exists: before the greeting, STARTTLS and AUTH, which Django's ``open()`` does before it
    assigns ``self.connection``. ``deadline``: the :class:`_Deadline` to report sockets to."""

    def __init__(self, *args, deadline: _Deadline, **kwargs):
        super().__init__(*args, **kwargs)
        self.deadline = deadline

    @property
    def connection_class(self):
        base = super().connection_class
        deadline = self.deadline

        class Watched(base):
            def _get_socket(self, host, port, timeout):
                # smtplib's own, but the plain socket is watched before anything is read from it
                # (for SMTP_SSL, before the TLS handshake).
                sock = socket.create_connection((host, port), timeout, self.source_address)
                try:
                    deadline.watch(sock)
                except TimeoutError:
                    sock.close()
                    raise
                if isinstance(self, smtplib.SMTP_SSL):
                    sock = self.context.wrap_socket(sock, server_hostname=self._host)
                return sock

        return Watched


def longest_delivery_seconds() -> float:
    """The longest :func:`deliver` can take, in seconds: the whole-mail deadline (three times
    ``EMAIL_TIMEOUT``), and one more ``EMAIL_TIMEOUT`` for a connection attempt under way at it (refused
    once it ends)."""
    return 4 * settings.EMAIL_TIMEOUT


def deliver(message: EmailMultiAlternatives) -> Outcome:
    """Hand ``message`` to the mail server (``EMAIL_URL``) once; never raises for the server's trouble.

    Every step waits at most ``EMAIL_TIMEOUT`` (Django's SMTP backend), and the whole exchange, from
    the connection through the greeting, STARTTLS, AUTH and the message to QUIT, at most three times
    it (:class:`DeadlineEmailBackend`): a server that answers a byte at a time would otherwise hold the
    worker for ever. "sent" once the server answered the message's data with 2xx, whatever happens
    after (a deadline or an error at QUIT does not make it send again); "failed" for a permanent
    refusal (5xx for the recipient or the message); "retry" otherwise, with ``recipient_only`` set
    when the server refused only this recipient for now (a 4xx to RCPT, such as a full mailbox).
    """
    seconds = settings.EMAIL_TIMEOUT
    deadline = _Deadline()
    options = {"fail_silently": False, "timeout": seconds}
    if settings.EMAIL_BACKEND == SMTP_BACKEND:
        backend = DeadlineEmailBackend(deadline=deadline, **options)
    else:  # the console backend (development), or a test's
        backend = get_connection(**options)
    watchdog = threading.Timer(3 * seconds, deadline.cut)
    watchdog.daemon = True
    watchdog.start()
    taken = 0
    try:
        backend.open()
        taken = backend.send_messages([message])  # the connection is open: it stays open after
    except Exception as error:
        if deadline.passed.is_set():
            return Outcome("retry", f"timed out after {3 * seconds:g} s for the whole mail")
        return classify(error)
    finally:
        watchdog.cancel()
        try:
            backend.close()  # QUIT: nothing said here changes what the server took
        except Exception:
            pass
        deadline.close()
    if taken:
        return Outcome("sent")
    if deadline.passed.is_set():
        return Outcome("retry", f"timed out after {3 * seconds:g} s for the whole mail")
    return Outcome("retry", "the mail server did not take the message")


def classify(error: Exception) -> Outcome:
    """A sending error as "failed" (the server refused this recipient or message for good: 5xx) or
    "retry" (anything else: the server down, slow, busy, or refusing our credentials or sender,
    which staff can fix), with a short printable description."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        answers = "; ".join(f"{code} {_text(message)}" for code, message in error.recipients.values())
        permanent = bool(codes) and all(code >= 500 for code in codes)
        # 421 closes the whole session: the server's trouble, not the recipient's.
        mine = bool(codes) and all(400 <= code < 500 and code != 421 for code in codes)
        return Outcome("failed" if permanent else "retry", f"recipient refused: {answers}", recipient_only=mine)
    if isinstance(error, smtplib.SMTPResponseException):
        answer = f"{error.smtp_code} {_text(error.smtp_error)}"
        permanent = isinstance(error, smtplib.SMTPDataError) and error.smtp_code >= 500
        return Outcome("failed" if permanent else "retry", f"{type(error).__name__}: {answer}")
    if isinstance(error, TimeoutError | socket.timeout):
        return Outcome("retry", f"timed out after {settings.EMAIL_TIMEOUT:g} s")
    if isinstance(error, ConnectionRefusedError):
        return Outcome("retry", "could not connect: connection refused")
    return Outcome("retry", f"{type(error).__name__}: {error}")


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def printable(text: str) -> str:
    """``text`` with every unprintable character made a space: a server's answer goes to the log and admin."""
    return "".join(character if character.isprintable() else " " for character in text)


def _record(notices: list[Notice], result: Outcome, subject: str | None = None, *, recipient=None) -> Outcome:
    """Store the outcome of the mail of ``notices`` (and the ``subject`` and ``recipient`` address it
    had), for those whose lease this worker still holds."""
    now = timezone.now()
    error = printable(result.error)[:ERROR_MAX_LENGTH]
    attempts = max(notice.attempts for notice in notices) + 1
    outcome = result.outcome
    schedule = settings.OMIKEYS_NOTICE_RETRY_SCHEDULE
    if outcome == "retry" and attempts > len(schedule):
        outcome = "failed"
    changes = {"locked_until": None, "lease_token": None, "last_error": error}
    if subject is not None:
        changes["subject"] = subject[:200]
    if recipient is not None:
        changes["recipient"] = recipient
    if outcome == "sent":
        changes.update(status=Notice.Status.SENT, sent_at=now, next_attempt_at=None, attempts=F("attempts") + 1)
    elif outcome == "skipped":
        changes.update(status=Notice.Status.SKIPPED, next_attempt_at=None)
    elif outcome == "failed":
        changes.update(status=Notice.Status.FAILED, next_attempt_at=None, attempts=F("attempts") + 1)
    else:
        wait = datetime.timedelta(seconds=schedule[attempts - 1])
        changes.update(next_attempt_at=now + wait, attempts=F("attempts") + 1)
    kept = 0
    for token in {notice.lease_token for notice in notices}:
        pks = [notice.pk for notice in notices if notice.lease_token == token]
        kept += Notice.objects.filter(pk__in=pks, lease_token=token).update(**changes)
    if kept < len(notices):
        lost = len(notices) - kept
        logger.warning("notices: %s of %s leases lost before the outcome was recorded", lost, len(notices))
    for notice in notices:
        metrics.record_notice(notice.kind, outcome)
    log = logger.info if outcome in ("sent", "skipped") else logger.warning
    log(
        "notice mail %s kind=%s user=%s notices=%s attempt=%s %s",
        outcome,
        notices[0].kind,
        notices[0].user_id,
        len(notices),
        attempts,
        error,
    )
    return Outcome(outcome, error, notices, result.recipient_only and outcome == "retry")


# Rendering -----------------------------------------------------------------------------------


SUBJECTS = {  # (one key, several keys)
    Kind.KEY_CREATED: (
        "A new API key “{name}” was created on your Omi account",
        "{count} new API keys were created on your Omi account",
    ),
    Kind.KEY_ROTATED: (
        "A new secret was issued for your Omi API key “{name}”",
        "New secrets were issued for {count} of your Omi API keys",
    ),
    Kind.CHANGED_BY_OTHER: (
        "Your Omi API key “{name}” was changed by someone else",
        "{count} of your Omi API keys were changed by someone else",
    ),
    # One key: the time actually left ("in 2 days", "in 35 hours"): a pass may reach a key after its
    # milestone's moment (the first run, a worker down, an imported key). Several: the milestone's bound.
    Kind.EXPIRES_IN_7_DAYS: (
        "Your Omi API key “{name}” expires {left}",
        "{count} of your Omi API keys expire within 7 days",
    ),
    Kind.EXPIRES_IN_1_DAY: (
        "Your Omi API key “{name}” expires {left}",
        "{count} of your Omi API keys expire within a day",
    ),
    Kind.EXPIRED: ("Your Omi API key “{name}” has expired", "{count} of your Omi API keys have expired"),
    Kind.KEY_LEAKED: (
        "Your Omi API key “{name}” was found in public",
        "{count} of your Omi API keys were found in public",
    ),
}
# One key with several notices of a kind in one mail (staff renamed it, rescoped it and moved its expiry
# in one save): the subject still names the one key.
SEVERAL_OF_ONE_KEY = {
    Kind.CHANGED_BY_OTHER: "Changes were made to your Omi API key “{name}” by someone else",
    Kind.KEY_ROTATED: "New secrets were issued for your Omi API key “{name}”",
}


def subject_for(kind: str, names: list[str], left: str = "", notices: int = 1) -> str:
    """The subject of a mail about the keys named ``names`` (one name a key, however many notices of it
    the mail holds; one key, or several, of the same kind); ``notices``: how many notices the mail holds
    in all (several of one key: :data:`SEVERAL_OF_ONE_KEY`); ``left``: the one key's :func:`time_left`,
    for the expiry reminders. The subject counts keys, never changes."""
    one, many = SUBJECTS[kind]
    if len(names) > 1:
        return many.format(count=len(names))
    if notices > 1 and kind in SEVERAL_OF_ONE_KEY:
        return SEVERAL_OF_ONE_KEY[kind].format(name=names[0])
    return one.format(name=names[0], left=left)


def time_left(expires_at: datetime.datetime, now: datetime.datetime) -> str:
    """How long until ``expires_at``, as a reminder says it: "in N days" (rounded) from two days on,
    "in N hours" below, "within the hour", or "now" when it has passed."""
    hours = (expires_at - now).total_seconds() / 3600
    if hours >= 47.5:
        return f"in {round(hours / 24)} days"
    if hours >= 1.5:
        return f"in {round(hours)} hours"
    return "within the hour" if hours > 0 else "now"


def link(name: str, *args) -> str:
    """The absolute address (``OMIKEYS_PUBLIC_URL``) of the web page ``name``. Every page linked requires
    signing in: a mail's link shows or changes nothing by itself."""
    return settings.OMIKEYS_PUBLIC_URL + reverse(name, args=args)


ACTOR_WORDS = {
    KeyEvent.ActorKind.STAFF: "Omi staff",
    KeyEvent.ActorKind.COMMAND: "an Omi administrator",
    KeyEvent.ActorKind.SYSTEM: "Omi's systems",
    KeyEvent.ActorKind.USER: "another account",
}


def actor_words(key_event: KeyEvent) -> str:
    """Who made a change, as the owner reads it: never a staff member's name or address."""
    if key_event.actor_kind == KeyEvent.ActorKind.SERVICE:
        name = key_event.service_client.name if key_event.service_client_id else ""
        return f"an Omi service ({name})" if name else "an Omi service"
    return ACTOR_WORDS.get(key_event.actor_kind, "someone else")


def _moment(value) -> datetime.datetime | None:
    if isinstance(value, str):
        try:
            return datetime.datetime.fromisoformat(value)
        except ValueError:
            return None
    return value


def old_secret_words(details: dict) -> str:
    """The replaced secret as its owner recognises it: "the secret you had (omi_dev_abcd...wxyz)" when the
    rotation's audit details hold its display prefix (``previous_key_prefix``), else "the secret you had"."""
    prefix = details.get("previous_key_prefix")
    return f"the secret you had ({prefix})" if prefix else "the secret you had"


def rotation_lines(details: dict, disabled: bool) -> list[str]:
    """What a rotation did to the secret the owner had (``details``: the "rotated" event's): stopped at
    once, or accepted until ``previous_key_expires_at``. ``disabled``: the key is disabled now, so no
    secret of it works: the old one is then accepted until that time only once the key is enabled."""
    until = _moment(details.get("previous_key_expires_at"))
    old = old_secret_words(details)
    if until is None:
        return [f"It was given a new secret: {old} stopped working at once."]
    if disabled:
        return [
            "It was given a new secret. The key is disabled, so no secret of it works now; "
            f"if it is enabled before {_format(until)}, {old} is accepted until then."
        ]
    return [f"It was given a new secret: {old} keeps working until {_format(until)}."]


def rotated_for_you(key_event: KeyEvent, by: str, disabled: bool) -> list[str]:
    """What the owner must do after someone else (staff, a command, a service: ``by``) rotated their key:
    that secret was never shown to them, so their apps stop when the old one does unless they rotate the
    key themselves, which also stops the old one at once (only the newest replaced secret is kept:
    ``lifecycle.rotate_key``). ``disabled``: the key is disabled now."""
    details = key_event.details or {}
    until = _moment(details.get("previous_key_expires_at"))
    old = old_secret_words(details)
    lines = [f"{by[0].upper()}{by[1:]} issued the new secret, and only they saw it: it was not sent to you."]
    if disabled:
        lines.append(
            "Before you use this key again, rotate it yourself to get a secret you hold, and put that secret "
            "in your apps."
        )
    elif until is None:
        lines.append(
            f"Apps that use {old} stopped working at once. Rotate this key yourself to get a secret you hold, "
            "and put it in your apps."
        )
    else:
        lines.append(
            f"Apps that use {old} stop working at {_format(until)} unless they get a new secret. Before then, "
            "rotate this key yourself to get a secret you hold, and put it in your apps: rotating stops "
            "the secret you had at once."
        )
    lines.append("If you did not expect this rotation, contact Omi's support.")
    return lines


def change_lines(key_event: KeyEvent, disabled: bool = False) -> list[str]:
    """What one change did, in a few plain sentences (the same in the text and HTML parts); ``disabled``:
    the key is disabled now (a rotation's old secret then works only once it is enabled)."""
    details = key_event.details or {}
    action = key_event.action
    when = lambda value: _format(_moment(value)) if value else "never"  # noqa: E731
    if action == KeyEvent.Action.REVOKED:
        lines = ["It was revoked: it no longer works, and cannot be used again."]
    elif action == KeyEvent.Action.DISABLED:
        # Only changes by others are mailed, so this is a staff hold: the owner cannot enable it (enable_key).
        lines = [
            "It was disabled: requests with it are refused until Omi staff enable it again. "
            "If you did not expect this, contact Omi's support."
        ]
    elif action == KeyEvent.Action.ENABLED:
        lines = ["It was enabled again: requests with it work again."]
    elif action == KeyEvent.Action.ROTATED:
        lines = rotation_lines(details, disabled)
    elif action == KeyEvent.Action.RENAMED:
        lines = [f"It was renamed from “{details.get('previous_name', '')}” to “{details.get('name', '')}”."]
    elif action == KeyEvent.Action.SCOPES_CHANGED:
        before = ", ".join(details.get("previous_scopes", [])) or "none"
        after = ", ".join(details.get("scopes", [])) or "none"
        lines = [f"Its scopes were changed from {before} to {after}."]
    elif action == KeyEvent.Action.LEAKED:
        lines = leak_lines(details)
    elif action == KeyEvent.Action.EXPIRY_CHANGED:
        lines = [
            f"Its expiry was changed from {when(details.get('previous_expires_at'))} "
            f"to {when(details.get('expires_at'))}."
        ]
    else:
        lines = [f"It was {key_event.get_action_display()}."]
    if details.get("reason"):
        lines.append(f"Reason given: {details['reason']}")
    return lines


LEAK_SOURCE_WORDS = {"github": "GitHub's secret scanning", "report": "someone who found it"}


def leak_lines(details: dict) -> list[str]:
    """What a "leaked" event says (``details``: source, url, secret, response, note): who reported it, where it
    was found, what was done, and what the owner should do now."""
    source = LEAK_SOURCE_WORDS.get(details.get("source"), "a report")
    # Anyone may report (with a key they hold): where they say it was, and what they say, is not checked.
    anonymous = details.get("source") != "github"
    where = f" at {details['url']}" if details.get("url") else ""
    if where and anonymous:
        where += " (the reporter's word, not checked)"
    which = "A secret this key had before its last rotation" if details.get("secret") == "replaced" else "It"
    lines = [f"{which} was found in public{where}, as reported by {source}."]
    if details.get("note"):
        said = "The reporter, who is not verified, adds" if anonymous else "The report says"
        lines.append(f"{said}: {details['note']}")
    if details.get("response") == "grace_ended":
        lines.append(
            "That old secret was stopped at once (its grace period ended); the key's current secret did not "
            "leak and keeps working. Move any app still using the old secret to the current one, and remove "
            "the old secret from where it was found (and from that place's history)."
        )
    elif details.get("response") == "revoked":
        lines.append(
            "The key was revoked at once: it no longer works. Create a new key, put it in your apps, and "
            "remove the old one from where it was found (and from that place's history)."
        )
    else:
        lines.append(
            "The key still works. Anyone who saw it can use it: rotate or revoke it now, and remove it from "
            "where it was found (and from that place's history)."
        )
    return lines


def _format(moment: datetime.datetime | None) -> str:
    if moment is None:
        return "never"
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def item(notice: Notice, now: datetime.datetime) -> dict:
    """The facts of one notice the templates show: the key, and the change or the expiry (with the time
    left at ``now``). The address and client a change came from only when the owner made it: never a
    staff member's or a service's. ``advice``: what the owner should do about a key created or rotated
    by someone else (staff, a command, a service), in plain sentences; empty when the owner's own
    session acted (the mail then warns that it may have been someone holding their session)."""
    api_key, key_event = notice.api_key, notice.key_event
    data = {
        "key_id": api_key.pk,
        "name": api_key.name,
        "key_prefix": api_key.key_prefix,
        "key_url": link("web:key-detail", api_key.pk),
        "edit_url": link("web:key-edit", api_key.pk),
        "rotate_url": link("web:key-rotate", api_key.pk),
        "expires": _format(api_key.expires_at),
        "left": time_left(api_key.expires_at, now) if api_key.expires_at else "",
    }
    if key_event is not None:
        details = key_event.details or {}
        mine = by_owner(key_event, api_key.owner_id)
        by = actor_words(key_event)
        advice = []
        if not mine and key_event.action == KeyEvent.Action.CREATED:
            advice = [
                f"{by[0].upper()}{by[1:]} created this key for you. "
                "If you did not expect it, contact Omi's support before using it."
            ]
        elif not mine and key_event.action == KeyEvent.Action.ROTATED:
            advice = rotated_for_you(key_event, by, api_key.is_disabled)
        data.update(
            at=_format(key_event.at),
            ip_address=(key_event.ip_address or "not known") if mine else None,
            user_agent=(key_event.user_agent or "not known") if mine else None,
            door=key_event.get_via_display(),
            by=by,
            by_owner=mine,
            advice=advice,
            changes=change_lines(key_event, api_key.is_disabled),
            scopes=", ".join(details.get("scopes", [])),
        )
        if key_event.action == KeyEvent.Action.CREATED:
            data["expires"] = _format(_moment(details.get("expires_at")))
    return data


def by_key(items: list[dict]) -> list[dict]:
    """The :func:`item` facts of a mail grouped by key, in the order of each key's first notice: one
    dict a key, with the key's facts from its latest notice (its name and prefix now) and ``events``,
    its notices' facts in order; ``same_origin`` when they were all made at one moment, by the same
    actor, through the same door (one staff save that renamed, rescoped and moved the expiry): the
    mail then says when and by whom once."""
    groups: dict = {}
    for entry in items:
        group = groups.setdefault(entry["key_id"], {"events": []})
        group.update(entry)
        group["events"].append(entry)
    for group in groups.values():
        origins = {(event.get("at"), event.get("by"), event.get("door")) for event in group["events"]}
        group["same_origin"] = len(origins) == 1
        group["lines"] = [line for event in group["events"] for line in event.get("changes", [])]
    return list(groups.values())


TEMPLATES = {
    Kind.KEY_CREATED: "key_created",
    Kind.KEY_ROTATED: "key_rotated",
    Kind.CHANGED_BY_OTHER: "changed_by_other",
    Kind.EXPIRES_IN_7_DAYS: "expires_soon",
    Kind.EXPIRES_IN_1_DAY: "expires_soon",
    Kind.EXPIRED: "expired",
    Kind.KEY_LEAKED: "key_leaked",
}


def render(notices: list[Notice], now: datetime.datetime | None = None) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of the mail of ``notices`` (one owner and kind), from
    ``templates/notices/<kind>.txt`` and ``.html``. No secret, no hash: a key's display prefix at most;
    every link goes to a page that requires signing in."""
    kind = notices[0].kind
    now = now or timezone.now()
    items = [item(notice, now) for notice in notices]
    keys = by_key(items)
    context = {
        "kind": kind,
        "items": items,
        "keys": keys,
        "count": len(keys),
        "notices": len(items),
        "by_owner": any(entry.get("by_owner") for entry in items),
        "by_others": any(entry.get("by_owner") is False for entry in items),
        "days": MILESTONES[kind].days if kind in MILESTONES else None,
        "keys_url": link("web:key-list"),
        "settings_url": link("web:notification-settings"),
        "can_turn_off": kind in SETTING_OF,
    }
    subject = context["subject"] = subject_for(
        kind, [group["name"] for group in keys], items[0]["left"], notices=len(items)
    )
    name = TEMPLATES[kind]
    text = render_to_string(f"notices/{name}.txt", context)
    html = render_to_string(f"notices/{name}.html", context)
    return subject, text, html


# Erasure -------------------------------------------------------------------------------------


def erase_for_user(user: User) -> int:
    """Forget ``user``'s notices when their personal data is erased (``lifecycle.erase_user``): every
    notice not sent yet is deleted (an erased user is mailed nothing), and those kept, as a record that
    a mail went out, lose their address, subject (a key's name) and the server's last answer (which
    may quote the address). Returns how many notices were deleted or scrubbed."""
    notices = Notice.objects.filter(user=user)
    deleted = notices.filter(status=Notice.Status.PENDING).delete()[0]
    scrubbed = notices.exclude(recipient="", subject="", last_error="").update(recipient="", subject="", last_error="")
    return deleted + scrubbed
