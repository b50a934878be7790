"""Data model: users linked to Firebase, scopes, and API keys (stored as hashes only)."""

import uuid

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from . import crypto, text
from .managers import FirebaseUserManager, ScopeQuerySet

KEY_NAME_MAX_LENGTH = 100
# Firestore document ids are at most 1,500 bytes (https://firebase.google.com/docs/firestore/quotas).
OMI_DOCUMENT_ID_MAX_LENGTH = 1500
USER_AGENT_MAX_LENGTH = 300


class User(AbstractUser):
    """A person: an end user signed in with Firebase, or a staff account (no uid).

    Keys belong to active users with a Firebase uid (:meth:`FirebaseUserManager.key_holders`);
    ``lifecycle.ensure_may_hold_keys`` adds Firebase's word on the account when a door has it.
    """

    firebase_uid = models.CharField(
        "Firebase uid",
        max_length=128,
        unique=True,
        null=True,
        blank=True,
        help_text="The Firebase Authentication uid this user signs in as. Empty for staff-only accounts.",
    )

    class Deactivation(models.TextChoices):
        """Why a user was deactivated, so that each kind of deactivation is undone only by what made it."""

        NONE = "", "not recorded (staff, or never deactivated)"
        STAFF = "staff", "by staff"
        FIREBASE_DISABLED = "firebase_disabled", "disabled in Firebase (syncfirebaseusers)"
        FIREBASE_DELETED = "firebase_deleted", "deleted in Firebase (syncfirebaseusers)"
        ERASED = "erased", "erased at a service's request"

    # syncfirebaseusers reactivates only users it deactivated itself (FIREBASE_*), never staff's or an erasure.
    deactivation_reason = models.CharField(
        max_length=20, choices=Deactivation.choices, blank=True, default="", editable=False
    )
    deactivated_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = FirebaseUserManager()

    @property
    def is_erased(self) -> bool:
        """True once the user's personal data was erased (``lifecycle.erase_user``): nothing is copied back."""
        return self.deactivation_reason == self.Deactivation.ERASED

    @property
    def label(self) -> str:
        """How staff tools name this user: the email, else the Firebase uid, else the username."""
        return self.email or self.firebase_uid or self.username

    @staticmethod
    def username_for_uid(uid: str) -> str:
        """The Django username of a Firebase user: "firebase:<uid>" (never a valid form username)."""
        return f"firebase:{uid}"


class Scope(models.Model):
    """A permission a key can carry, such as ``memories:read``.

    The API accepts exactly the scopes in this table, so staff can add one
    without a code change.
    """

    code = models.CharField(
        max_length=64,
        unique=True,
        validators=[
            RegexValidator(
                r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$",
                "Use resource:action in lowercase, for example memories:read.",
            )
        ],
    )
    description = models.CharField(max_length=200)
    is_default = models.BooleanField(
        "part of the read-only default",
        default=False,
        help_text="Keys created without a scope list get every default scope.",
    )

    objects = ScopeQuerySet.as_manager()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


def validate_key_name(value: str) -> None:
    """The rules every door applies to a key's (already stripped) name.

    1 to 100 characters; no control characters or line/paragraph separators; no bidi controls (they reorder the text
    shown after the name in lists and histories); at least one visible character; and
    nothing that looks like an API key, even broken up by invisible characters. Raises
    ``ValidationError`` with the codes string_too_short, string_too_long,
    string_control_characters, string_bidi_control, string_not_visible, secret_in_name.
    """
    if not value:
        raise ValidationError("The name must not be empty.", code="string_too_short")
    if len(value) > KEY_NAME_MAX_LENGTH:
        raise ValidationError(
            f"The name must be at most {KEY_NAME_MAX_LENGTH} characters, not {len(value)}.",
            code="string_too_long",
        )
    if text.has_control(value):
        raise ValidationError(
            "The name must be one line, without control characters or line separators.",
            code="string_control_characters",
        )
    bidi = text.first_bidi_control(value)
    if bidi:
        raise ValidationError(
            f"The name must not contain characters that change the direction of text ({text.code_point(bidi)}).",
            code="string_bidi_control",
        )
    if not text.has_visible(value):
        raise ValidationError(
            "The name must contain at least one visible character (a letter, digit, punctuation or symbol).",
            code="string_not_visible",
        )
    if crypto.contains_raw_key(value):
        raise ValidationError(
            "The name looks like it contains an API key. Never put a secret in a key's name.",
            code="secret_in_name",
        )


class ApiKeyQuerySet(models.QuerySet):
    """``ApiKey.objects``: the reads the doors share."""

    def active(self):
        """Live keys: not revoked and not expired, disabled ones included (they count toward the limit)."""
        return self.unrevoked().exclude(expires_at__lte=timezone.now())

    def disabled(self):
        """Keys paused by ``lifecycle.disable_key`` (any status)."""
        return self.filter(disabled_at__isnull=False)

    def enabled(self):
        """Keys not paused (any status)."""
        return self.filter(disabled_at__isnull=True)

    def unrevoked(self):
        """Keys not revoked, expired ones included: what an owner still sees in a list."""
        return self.filter(revoked_at__isnull=True)

    def for_owner(self, user):
        """``user``'s keys; a door looks a key up through this before acting on it for its owner."""
        return self.filter(owner=user)

    def with_scopes(self):
        """The keys with their scopes prefetched in code order, for lists that show them."""
        return self.prefetch_related(models.Prefetch("scopes", queryset=Scope.objects.order_by("code")))


class ApiKey(models.Model):
    """An issued key. The plaintext is never stored: only its SHA-256 hash.

    Revocation sets ``revoked_at`` and keeps the row for audit.
    """

    class Status(models.TextChoices):
        """What a key is now, derived from ``revoked_at`` and ``expires_at``: the one wording every door shows."""

        ACTIVE = "active", "Active"
        DISABLED = "disabled", "Disabled"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: the (owner, created_at) index and the (owner, request_token) constraint both lead with it.
    owner = models.ForeignKey(User, on_delete=models.PROTECT, related_name="api_keys", db_index=False)
    name = models.CharField(max_length=KEY_NAME_MAX_LENGTH, validators=[validate_key_name])
    key_prefix = models.CharField("display prefix", max_length=32, editable=False)
    # Omi's scheme (crypto.hash_key), or a tagged whole-key hash for keys issued before it (crypto.legacy_hash_key).
    key_hash = models.CharField(max_length=crypto.STORED_HASH_MAX_LENGTH, unique=True, editable=False)
    scopes = models.ManyToManyField(Scope, related_name="api_keys")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="After this moment the key no longer verifies. Empty: never."
    )
    rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    # A paused key (lifecycle.disable_key): it keeps its secret and its place under the active-key limit,
    # and does not verify until lifecycle.enable_key clears this.
    disabled_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="While set, the key is paused: it does not verify."
    )
    # During a rotation's grace period the secret it replaced still verifies, until
    # previous_key_expires_at. Unique, so a hash can only ever name one key.
    previous_key_hash = models.CharField(
        max_length=crypto.STORED_HASH_MAX_LENGTH, unique=True, null=True, blank=True, editable=False
    )
    previous_key_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The one-time token of the form (web page or admin) that asked for this key: a
    # form sent twice (double click, reload) finds its key instead of issuing another.
    # NULL, not "", for keys issued without a token: the unique (owner, request_token) pair must not join them.
    request_token = models.CharField(max_length=64, null=True, blank=True, editable=False)  # noqa: DJ001
    # The Firestore document id of a key imported from Omi (importomikeys); NULL for keys issued here.
    omi_document_id = models.CharField(
        "Omi document id",
        max_length=OMI_DOCUMENT_ID_MAX_LENGTH,
        unique=True,
        null=True,
        blank=True,
        editable=False,
        help_text="The id of the Firestore document in Omi's dev_api_keys this key was imported from.",
    )

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="apikey_owner_created_idx")]
        constraints = [
            models.UniqueConstraint(fields=["owner", "request_token"], name="apikey_owner_request_token_uniq")
        ]

    def __str__(self) -> str:
        # A name stored before the name rules refused bidi controls and invisible names
        # must not reorder the admin's titles and breadcrumbs, nor vanish from them.
        name = self.name
        if not text.has_visible(name):
            name = "(name not visible)"
        elif text.needs_isolation(name):
            name = text.isolated(name)
        return f"{name} ({self.key_prefix})"

    @property
    def is_imported(self) -> bool:
        """True for a key imported from Omi's records rather than issued here."""
        return self.omi_document_id is not None

    @property
    def is_revoked(self) -> bool:
        """True once revoked: a revoked key never verifies or changes again."""
        return self.revoked_at is not None

    def is_expired(self, now=None) -> bool:
        """True when ``expires_at`` is at or before ``now`` (an aware datetime; default: the current time)."""
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    @property
    def is_disabled(self) -> bool:
        """True while the key is paused (``disabled_at`` set): it does not verify, and keeps its secret."""
        return self.disabled_at is not None

    @property
    def is_active(self) -> bool:
        """True while the key is live: neither revoked nor expired. A disabled key is live (it counts toward
        the active-key limit, and can be rotated and enabled) but does not verify: see :attr:`verifies`."""
        return not self.is_revoked and not self.is_expired()

    @property
    def verifies(self) -> bool:
        """True while the key's current secret would be accepted (owner aside): live and not disabled."""
        return self.is_active and not self.is_disabled

    @property
    def status(self) -> "ApiKey.Status":
        """:class:`ApiKey.Status`: revoked wins over expired, expired over disabled; a str, so it compares
        equal to "active" and so on."""
        if self.is_revoked:
            return self.Status.REVOKED
        if self.is_expired():
            return self.Status.EXPIRED
        return self.Status.DISABLED if self.is_disabled else self.Status.ACTIVE

    def previous_secret_works(self, now=None) -> bool:
        """True while the secret replaced by the last rotation is in its grace period."""
        return (
            self.previous_key_hash is not None
            and self.previous_key_expires_at is not None
            and self.previous_key_expires_at > (now or timezone.now())
        )

    def replaced_secret_works_until(self, now=None):
        """Until when the secret replaced by the last rotation still verifies, or None if it does not now.

        The grace period's end, or the key's expiry if that comes first; None once the
        grace period is over or the key is revoked or expired. What every door shows as
        "works until", so none claims a secret works when it does not.
        """
        now = now or timezone.now()
        if self.is_revoked or self.is_expired(now) or not self.previous_secret_works(now):
            return None
        if self.expires_at is not None:
            return min(self.previous_key_expires_at, self.expires_at)
        return self.previous_key_expires_at

    @property
    def replaced_secret_until(self):
        """:meth:`replaced_secret_works_until` now, for templates."""
        return self.replaced_secret_works_until()


class ServiceClientQuerySet(models.QuerySet):
    """``ServiceClient.objects``: clients whose token works."""

    def usable(self):
        """Clients not revoked."""
        return self.filter(revoked_at__isnull=True)


class ServiceClient(models.Model):
    """Another service that calls the service API (``/v1/service/``) with its own bearer token.

    The token (``omi_svc_`` + 32 hex, ``crypto.generate_service_token``) is shown once and
    only its SHA-256 is stored; ``lifecycle.issue_service_client``, ``rotate_service_client``
    and ``revoke_service_client`` write it. Each ``can_*`` flag allows one kind of action
    (:data:`PERMISSIONS`); a client allowed none can do nothing. Revocation keeps the row,
    which the audit records of its actions point at.
    """

    # The flag of each permission, and what it allows: the words the 403 answers and the admin use.
    PERMISSIONS = {
        "can_verify_keys": "verify keys (POST /v1/service/keys/verify)",
        "can_read_user_keys": "read users' keys (GET /v1/service/users/{uid}/keys)",
        "can_act_on_users": "act on users (revoke all their keys, erase them)",
        "can_receive_events": "receive events (webhooks)",
    }

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(
        max_length=100, unique=True, help_text="Which service this is, such as omi-developer-api. Unique."
    )
    can_verify_keys = models.BooleanField("may verify keys", default=False)
    can_read_user_keys = models.BooleanField("may read users' keys", default=False)
    can_act_on_users = models.BooleanField("may act on users", default=False, help_text="Revoke all keys, erase.")
    can_receive_events = models.BooleanField("may receive events", default=False)
    token_prefix = models.CharField("display prefix", max_length=32, editable=False)
    token_hash = models.CharField(max_length=crypto.HASH_HEX_LENGTH, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ServiceClientQuerySet.as_manager()

    class Meta:
        verbose_name = "service client"
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.token_prefix})"

    @property
    def is_revoked(self) -> bool:
        """True once revoked: its token never works again."""
        return self.revoked_at is not None

    def allows(self, permission: str) -> bool:
        """True when the flag ``permission`` (a key of :data:`PERMISSIONS`) is set; an unknown name raises KeyError."""
        if permission not in self.PERMISSIONS:  # a misspelt permission must fail loudly, never deny quietly
            raise KeyError(permission)
        return bool(getattr(self, permission))

    @property
    def permission_names(self) -> list[str]:
        """The flags set, in :data:`PERMISSIONS` order, without the ``can_`` prefix: ["verify_keys", ...]."""
        return [name.removeprefix("can_") for name in self.PERMISSIONS if getattr(self, name)]


class KeyEvent(models.Model):
    """One audited change to a key: who made it, when, from where. Never edited."""

    class Action(models.TextChoices):
        CREATED = "created", "created"
        ROTATED = "rotated", "rotated"
        REVOKED = "revoked", "revoked"
        EXPIRY_CHANGED = "expiry_changed", "expiry changed"
        RENAMED = "renamed", "renamed"
        SCOPES_CHANGED = "scopes_changed", "scopes changed"
        DISABLED = "disabled", "disabled"
        ENABLED = "enabled", "enabled"
        IMPORTED = "imported", "imported"
        # Found where others can see it (GitHub secret scanning, a person's report): details hold the
        # source, the URL where it was found, and what was done ("revoked" or "notified").
        LEAKED = "leaked", "reported leaked"

    class ActorKind(models.TextChoices):
        USER = "user", "the key's owner"
        STAFF = "staff", "a staff member"
        COMMAND = "command", "a management command"
        SYSTEM = "system", "Python code"
        SERVICE = "service", "a service client"

    class Via(models.TextChoices):
        API = "api", "JSON API"
        WEB = "web", "web pages"
        ADMIN = "admin", "admin"
        COMMAND = "command", "command line"
        CODE = "code", "Python code"
        SERVICE = "service", "service API"
        LEAK_REPORT = "leak", "leak reports"

    # No index of its own: keyevent_key_at_idx leads with it.
    api_key = models.ForeignKey(ApiKey, on_delete=models.PROTECT, related_name="events", db_index=False)
    action = models.CharField(max_length=20, choices=Action.choices)
    at = models.DateTimeField(default=timezone.now)
    actor_kind = models.CharField("actor", max_length=10, choices=ActorKind.choices)
    actor = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="key_events",
        help_text="Who acted, if a user.",
    )
    service_client = models.ForeignKey(
        ServiceClient,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="key_events",
        help_text="Who acted, if a service client.",
    )
    # A snapshot taken at the time (an email, a command and the OS user, a service client's name), kept even if
    # the user changes later; erased with the rest of the user's personal data (lifecycle.erase_user).
    actor_label = models.CharField(max_length=200, blank=True)
    via = models.CharField(max_length=10, choices=Via.choices)
    ip_address = models.GenericIPAddressField("IP address", null=True, blank=True)
    user_agent = models.CharField(max_length=USER_AGENT_MAX_LENGTH, blank=True)
    # What changed: for a rotation the grace period, for an expiry change the old and new values.
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = "key event"
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["api_key", "-at"], name="keyevent_key_at_idx")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.api_key.key_prefix} by {self.actor_label or self.actor_kind}"


# Outgoing events (apikeys.events) and their signed webhook deliveries (apikeys.webhooks).
EVENT_TYPES = (
    ("key.created", "key.created: a key was issued"),
    ("key.updated", "key.updated: a key's name, scopes or expiry changed"),
    ("key.rotated", "key.rotated: a key got a new secret"),
    ("key.revoked", "key.revoked: a key was revoked"),
    ("key.disabled", "key.disabled: a key was paused; it does not verify until enabled"),
    ("key.enabled", "key.enabled: a paused key was enabled again"),
    ("key.expired", "key.expired: a key's expiry passed"),
    ("key.leaked", "key.leaked: a key was reported found in public (GitHub secret scanning, a report)"),
    ("user.keys_revoked", "user.keys_revoked: all of a user's keys were revoked"),
    ("user.erased", "user.erased: a user's personal data was erased"),
)
EVENT_TYPE_NAMES = tuple(name for name, _ in EVENT_TYPES)
WEBHOOK_URL_MAX_LENGTH = 2000


class WebhookEndpoint(models.Model):
    """A URL that receives signed events of the types it subscribes to (Standard Webhooks).

    The signing secret (``whsec_`` + base64) is kept encrypted (``apikeys.webhooks``): the
    worker must sign with it, so it cannot be a hash; it is shown once, when made or rotated.
    """

    url = models.URLField("URL", max_length=WEBHOOK_URL_MAX_LENGTH)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, help_text="The event types sent to this URL.")
    # Fernet token of the "whsec_..." secret (apikeys.webhooks.encrypt_secret); never the secret itself.
    secret_encrypted = models.TextField(editable=False)
    secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The secret a rotation replaced (Fernet token, or ""), which keeps signing beside the new
    # one until previous_secret_expires_at, so the receiver can switch without failed deliveries.
    previous_secret_encrypted = models.TextField(blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    enabled = models.BooleanField(default=True, editable=False)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=200, blank=True, editable=False)
    # The first failed attempt since the last delivered one: how long the URL has been failing.
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "webhook endpoint"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.url

    def subscribes_to(self, event_type: str) -> bool:
        """True when this endpoint is enabled and receives ``event_type``."""
        return self.enabled and event_type in (self.event_types or [])


class Event(models.Model):
    """The outbox: one outgoing event, written in the transaction of the change it reports.

    ``payload`` is the whole JSON body sent (id, type, timestamp, data); its id is the
    ``webhook-id`` of every delivery and retry. ``dedup_key`` makes events that must happen
    once (a key's expiry) unique across workers and passes.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=40, choices=EVENT_TYPES)
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    dedup_key = models.CharField(max_length=200, unique=True, null=True, blank=True)

    class Meta:
        verbose_name = "outgoing event"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["-created_at"], name="event_created_idx")]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class Delivery(models.Model):
    """One event to one endpoint: the durable truth of at-least-once delivery.

    Pending until a 2xx answer (delivered) or the retry schedule runs out (failed). A worker
    claims a due delivery by setting ``locked_until`` and ``lease_token``; a worker that dies
    leaves a lease that expires, and the delivery is sent again with the same event id.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.UUIDField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_response_code = models.PositiveIntegerField(null=True, blank=True)
    # A short description of the last failure, or a truncated excerpt of the answer: never a whole body.
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due_idx")]
        constraints = [models.UniqueConstraint(fields=["event", "endpoint"], name="delivery_event_endpoint_uniq")]

    def __str__(self) -> str:
        return f"{self.event.type} to {self.endpoint.url}"


# Notices by email to keys' owners (apikeys.notices), sent by the worker.
class NotificationSettings(models.Model):
    """Which notices a user wants by email. No row means the defaults: every notice on.

    The notice that a key was created on the account cannot be turned off: it is how an
    owner learns that someone else holds their session.
    """

    user = models.OneToOneField(User, on_delete=models.CASCADE, primary_key=True, related_name="notification_settings")
    changes_by_others = models.BooleanField(
        "changes made by others",
        default=True,
        help_text="A key was revoked, disabled, enabled or changed by staff or a service.",
    )
    expiry_reminders = models.BooleanField(
        "expiry reminders", default=True, help_text="A key expires in 7 days, and in 1 day."
    )
    expired = models.BooleanField("expired keys", default=True, help_text="A key has expired.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "notification settings"
        verbose_name_plural = "notification settings"

    def __str__(self) -> str:
        return f"notification settings of {self.user}"

    @classmethod
    def for_user(cls, user: User) -> "NotificationSettings":
        """``user``'s settings, or unsaved defaults (everything on) when they never chose."""
        try:
            return cls.objects.get(user=user)
        except cls.DoesNotExist:
            return cls(user=user)


class Notice(models.Model):
    """One email notice about one key to its owner: written in the change's transaction (or by the
    expiry pass), sent by the worker. ``dedup_key`` is unique, so each notice exists once per key and
    milestone however many passes or workers race to write it.
    """

    class Kind(models.TextChoices):
        KEY_CREATED = "key_created", "a key was created"
        KEY_ROTATED = "key_rotated", "a key was given a new secret"
        CHANGED_BY_OTHER = "changed_by_other", "a key was changed by someone else"
        EXPIRES_IN_7_DAYS = "expires_7d", "a key expires in 7 days"
        EXPIRES_IN_1_DAY = "expires_1d", "a key expires in 1 day"
        EXPIRED = "expired", "a key has expired"
        KEY_LEAKED = "key_leaked", "a key was found in public"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"  # the mail server refused it for good, or every attempt failed
        SKIPPED = "skipped", "Skipped"  # never sent: no address to send to, or mail not configured

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="notices")
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="notices")
    key_event = models.ForeignKey(
        KeyEvent,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="notices",
        help_text="The audited change this notice tells of, if any.",
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    dedup_key = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # The address and subject as sent (a snapshot); erased with the user's personal data.
    recipient = models.EmailField(blank=True)
    subject = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    # The worker holding the lease: its outcome is recorded only while this is still its token.
    lease_token = models.UUIDField(null=True, blank=True, editable=False)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "email notice"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notice_due_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.recipient or self.user}"


# Usage per key (lifecycle.usage): counts per hour and outcome, the most recent use, the addresses seen.
# The outcome columns, named for the service API's verdict codes (lifecycle.Code), in the order shown.
USAGE_OUTCOMES = ("accepted", "insufficient_scope", "expired", "disabled", "revoked", "owner_inactive")


class KeyUsageHour(models.Model):
    """How many times a key was presented in one hour (UTC), by outcome; days are sums of hours.

    ``hour`` is the hour's start. The counters grow by atomic increments from every process
    (``lifecycle.usage``); rows older than 90 days are deleted by the scheduled retention pass.
    """

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="usage_hours", db_index=False)
    hour = models.DateTimeField(help_text="The start of the hour (UTC).")
    accepted = models.PositiveBigIntegerField(default=0)
    insufficient_scope = models.PositiveBigIntegerField(default=0)
    expired = models.PositiveBigIntegerField(default=0)
    disabled = models.PositiveBigIntegerField(default=0)
    revoked = models.PositiveBigIntegerField(default=0)
    owner_inactive = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "key usage hour"
        ordering = ["api_key", "hour"]
        constraints = [models.UniqueConstraint(fields=["api_key", "hour"], name="keyusagehour_key_hour_uniq")]
        indexes = [models.Index(fields=["hour"], name="keyusagehour_hour_idx")]

    def __str__(self) -> str:
        return f"{self.api_key_id} at {self.hour:%Y-%m-%d %H:00}"

    @property
    def total(self) -> int:
        """Every presentation of the key in the hour, whatever its outcome."""
        return sum(getattr(self, outcome) for outcome in USAGE_OUTCOMES)


class KeyLastUse(models.Model):
    """The most recent presentation of a key (any outcome): when, from which address, with which client.

    ``address`` and ``user_agent`` are personal data: emptied after
    ``OMIKEYS_USAGE_ADDRESS_RETENTION_DAYS`` and when the owner is erased; ``at`` and ``outcome`` stay.
    """

    api_key = models.OneToOneField(ApiKey, on_delete=models.CASCADE, primary_key=True, related_name="last_use")
    at = models.DateTimeField()
    outcome = models.CharField(max_length=32)
    address = models.GenericIPAddressField("IP address", null=True, blank=True)
    user_agent = models.CharField(max_length=USER_AGENT_MAX_LENGTH, blank=True)

    class Meta:
        verbose_name = "key last use"

    def __str__(self) -> str:
        return f"{self.api_key_id} at {self.at:%Y-%m-%d %H:%M:%S}"


class KeyAddress(models.Model):
    """An address a key was presented from: first and last seen, and how many requests came from it.

    Personal data: deleted ``OMIKEYS_USAGE_ADDRESS_RETENTION_DAYS`` after it was last seen, and with the
    owner's erasure.
    """

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="addresses", db_index=False)
    address = models.GenericIPAddressField("IP address")
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    requests = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "key address"
        verbose_name_plural = "key addresses"
        ordering = ["api_key", "-last_seen"]
        constraints = [models.UniqueConstraint(fields=["api_key", "address"], name="keyaddress_key_address_uniq")]
        indexes = [models.Index(fields=["last_seen"], name="keyaddress_last_seen_idx")]

    def __str__(self) -> str:
        return f"{self.address} ({self.api_key_id})"
