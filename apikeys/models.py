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

    objects = FirebaseUserManager()

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
        """Keys that verify now: not revoked and not expired."""
        return self.unrevoked().exclude(expires_at__lte=timezone.now())

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
    def is_active(self) -> bool:
        """True while the key verifies: neither revoked nor expired."""
        return not self.is_revoked and not self.is_expired()

    @property
    def status(self) -> "ApiKey.Status":
        """:class:`ApiKey.Status`: revoked wins over expired; a str, so it compares equal to "active" and so on."""
        if self.is_revoked:
            return self.Status.REVOKED
        return self.Status.EXPIRED if self.is_expired() else self.Status.ACTIVE

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


class KeyEvent(models.Model):
    """One audited change to a key: who made it, when, from where. Never edited."""

    class Action(models.TextChoices):
        CREATED = "created", "created"
        ROTATED = "rotated", "rotated"
        REVOKED = "revoked", "revoked"
        EXPIRY_CHANGED = "expiry_changed", "expiry changed"
        RENAMED = "renamed", "renamed"
        SCOPES_CHANGED = "scopes_changed", "scopes changed"
        IMPORTED = "imported", "imported"

    class ActorKind(models.TextChoices):
        USER = "user", "the key's owner"
        STAFF = "staff", "a staff member"
        COMMAND = "command", "a management command"
        SYSTEM = "system", "Python code"

    class Via(models.TextChoices):
        API = "api", "JSON API"
        WEB = "web", "web pages"
        ADMIN = "admin", "admin"
        COMMAND = "command", "command line"
        CODE = "code", "Python code"

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
    # A snapshot taken at the time (an email, or a command and the OS user), kept even if the user changes later.
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
