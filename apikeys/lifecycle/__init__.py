"""Issuing, changing, rotating, revoking and verifying keys: the only code that writes API keys.

The JSON API, the web pages, the admin and the management commands all call these
names (always as ``lifecycle.<name>``), so a key is created, and its plaintext
handled, one way, and every change is audited in the transaction that makes it.

- writes: :func:`issue_key`, :func:`update_key`, :func:`rotate_key`, :func:`set_expiry`,
  :func:`revoke_key`, :func:`import_keys` (keys another system issued, as
  :class:`ImportedKey` values), and :func:`mark_used` on the verification path;
- reads: :func:`verify_key` (the :class:`Verification` of a presented secret);
- rules doors may check early: :func:`validate_expiry`, :func:`ensure_may_hold_keys`,
  :func:`default_scopes`, :data:`GRACE_PERIODS`, :data:`MAX_GRACE_SECONDS`;
- refusals: ``ValidationError`` keyed by field ("name", "scopes", "expires_at",
  "grace_seconds"), and :class:`LifecycleError` for everything else.
"""

from .changes import revoke_key, rotate_key, set_expiry, update_key
from .errors import (
    AlreadyIssued,
    AlreadyRotated,
    KeyRevoked,
    LifecycleError,
    NotChangeable,
    NotRotatable,
    OwnerNotEligible,
    TooManyKeys,
)
from .importing import ImportConflict, ImportedKey, ImportOutcome, ImportRefusal, ImportResult, import_keys
from .issuing import IssuedKey, issue_key
from .rules import GRACE_PERIODS, MAX_GRACE_SECONDS, default_scopes, ensure_may_hold_keys, validate_expiry
from .verification import Rejection, Verification, mark_used, verify_key

__all__ = [
    "GRACE_PERIODS",
    "MAX_GRACE_SECONDS",
    "AlreadyIssued",
    "AlreadyRotated",
    "ImportConflict",
    "ImportOutcome",
    "ImportRefusal",
    "ImportResult",
    "ImportedKey",
    "IssuedKey",
    "KeyRevoked",
    "LifecycleError",
    "NotChangeable",
    "NotRotatable",
    "OwnerNotEligible",
    "Rejection",
    "TooManyKeys",
    "Verification",
    "default_scopes",
    "ensure_may_hold_keys",
    "import_keys",
    "issue_key",
    "mark_used",
    "revoke_key",
    "rotate_key",
    "set_expiry",
    "update_key",
    "validate_expiry",
    "verify_key",
]
