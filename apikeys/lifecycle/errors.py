"""What the lifecycle raises when it refuses a change: LifecycleError and its subclasses.

Bad input is a Django ``ValidationError`` keyed by field ("name", "scopes",
"expires_at", "grace_seconds"); every other refusal is a :class:`LifecycleError`,
carrying what a door needs to word it (a limit, the key concerned, a reason).
"""


class LifecycleError(Exception):
    """The base of every refusal the lifecycle raises, other than a ValidationError."""


class OwnerNotEligible(LifecycleError):
    """The owner may not hold keys; ``reason`` says why, for doors that word it themselves.

    ``reason`` is :attr:`INACTIVE` (a deactivated user), :attr:`NO_FIREBASE_UID`
    (a staff-only account) or :attr:`FIREBASE_DISABLED` (Firebase disabled the account).
    """

    INACTIVE = "inactive"
    NO_FIREBASE_UID = "no_firebase_uid"
    FIREBASE_DISABLED = "firebase_disabled"

    MESSAGES = {
        INACTIVE: "This account has been deactivated; it cannot hold API keys.",
        NO_FIREBASE_UID: "Only users who sign in with Firebase can hold API keys.",
        FIREBASE_DISABLED: "This Firebase account has been disabled; it cannot hold API keys.",
    }

    def __init__(self, owner, reason: str):
        super().__init__(self.MESSAGES[reason])
        self.owner = owner
        self.reason = reason


class AlreadyIssued(LifecycleError):
    """A request token was used before: its key exists, and its plaintext was shown then."""

    def __init__(self, api_key):
        super().__init__(f"A key was already issued for this request: {api_key.pk}")
        self.api_key = api_key


class TooManyKeys(LifecycleError):
    """The owner already has ``limit`` active keys (``OMIKEYS_MAX_ACTIVE_KEYS``), the most allowed."""

    def __init__(self, limit: int):
        keys = "key" if limit == 1 else "keys"
        super().__init__(
            f"You already have {limit} active API {keys}, the most allowed. "
            "Revoke a key you no longer use, then create a new one."
        )
        self.limit = limit


class NotChangeable(LifecycleError):
    """The key's state forbids the change asked for; the message says why."""


class KeyRevoked(NotChangeable):
    """A revoked key never changes again."""


class DisabledByStaff(NotChangeable):
    """The owner tried to enable a key that someone else disabled (staff in the admin, a command, a
    service): only they can enable it, so a stolen session cannot undo a hold set while checking a leak.

    ``event`` is the key's last "disabled" ``KeyEvent`` (``event.details.get("reason")`` says why, if given).
    """

    MESSAGE = "This key was disabled by Omi staff; only they can enable it. Contact support."

    def __init__(self, api_key, event):
        super().__init__(self.MESSAGE)
        self.api_key = api_key
        self.event = event


class NotRotatable(NotChangeable):
    """An expired key cannot be given a new secret (a revoked one raises :class:`KeyRevoked`)."""


class AlreadyRotated(LifecycleError):
    """The key's secret changed since the caller looked: the rotation asked for has happened."""

    def __init__(self, api_key):
        super().__init__(f"The key {api_key.pk} was rotated already.")
        self.api_key = api_key
