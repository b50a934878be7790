"""Issuing, changing, rotating, revoking and verifying keys: the only code that writes API keys.

The JSON API, the web pages, the admin and the management commands all call these
names (always as ``lifecycle.<name>``), so a key is created, and its plaintext
handled, one way, and every change is audited in the transaction that makes it.

- writes: :func:`issue_key`, :func:`change_key` (edit in place; :func:`update_key` and
  :func:`set_expiry` each change a part), :func:`rotate_key`,
  :func:`disable_key` and :func:`enable_key` (pause and resume; :func:`staff_hold` says whether
  the owner may enable a key), :func:`revoke_key`,
  :func:`revoke_user_keys` and :func:`erase_user` (an account that ends),
  :func:`apply_firebase_states` (users deactivated or reactivated as Firebase says),
  :func:`issue_service_client`, :func:`rotate_service_client`, :func:`revoke_service_client`,
  :func:`import_keys` (keys another system issued, as :class:`ImportedKey` values),
  :func:`handle_leak` and :func:`handle_leaked_token` (a key reported found in public), and
  :func:`mark_used` on the verification path;
- reads: :func:`verify_key` (the :class:`Verification` of a presented secret), and :func:`judge_key`
  (the :class:`KeyVerdict` every door gives: throttle, verification, usage stamp and counts, scopes);
  :func:`key_usage` (a key's :class:`KeyUsage`: counts per day or hour, last use, addresses) and
  :func:`usage_delay_seconds` (how recent counts may still be missing from it);
- usage kept outside a request: :func:`record_scope_refusal` (a door's own scope check refused a key),
  :func:`flush_usage` (a worker that exits, within :func:`usage_exit_deadline`),
  :func:`prune_usage` (the retention pass);
- rules doors may check early: :func:`validate_expiry`, :func:`validate_reason`, :func:`ensure_may_hold_keys`,
  :func:`default_scopes`, :data:`GRACE_PERIODS`, :data:`MAX_GRACE_SECONDS`;
- refusals: ``ValidationError`` keyed by field ("name", "scopes", "expires_at",
  "grace_seconds", "reason"), and :class:`LifecycleError` for everything else.
"""

from .accounts import (
    AccountChange,
    ErasureReport,
    StaffNotErasable,
    apply_firebase_states,
    erase_user,
    revoke_user_keys,
    users_to_sync,
)
from .changes import (
    KEEP,
    change_key,
    disable_key,
    enable_key,
    revoke_key,
    rotate_key,
    set_expiry,
    staff_hold,
    update_key,
)
from .errors import (
    AlreadyIssued,
    AlreadyRotated,
    DisabledByStaff,
    KeyRevoked,
    LifecycleError,
    NotChangeable,
    NotRotatable,
    OwnerNotEligible,
    TooManyKeys,
)
from .importing import ImportConflict, ImportedKey, ImportOutcome, ImportRefusal, ImportResult, import_keys
from .issuing import IssuedKey, issue_key
from .leaks import LEAK_ACTIONS, LEAK_SOURCES, LeakFinding, handle_leak, handle_leaked_token, without_secrets
from .rules import (
    GRACE_PERIODS,
    MAX_GRACE_SECONDS,
    SECRET_IN_REASON,
    default_scopes,
    ensure_may_hold_keys,
    validate_expiry,
    validate_reason,
)
from .service_clients import (
    IssuedServiceClient,
    ServiceClientRevoked,
    find_service_client,
    issue_service_client,
    mark_service_client_used,
    revoke_service_client,
    rotate_service_client,
)
from .usage import KeyUsage, UsageRow, key_usage, record_scope_refusal, usage_delay_seconds
from .usage import exit_deadline as usage_exit_deadline
from .usage import flush_all as flush_usage
from .usage import prune as prune_usage
from .verification import Code, KeyVerdict, Rejection, Verification, judge_key, mark_used, verify_key

__all__ = [
    "KEEP",
    "LEAK_ACTIONS",
    "LEAK_SOURCES",
    "LeakFinding",
    "handle_leak",
    "handle_leaked_token",
    "without_secrets",
    "AccountChange",
    "GRACE_PERIODS",
    "MAX_GRACE_SECONDS",
    "AlreadyIssued",
    "AlreadyRotated",
    "DisabledByStaff",
    "SECRET_IN_REASON",
    "ErasureReport",
    "IssuedServiceClient",
    "ServiceClientRevoked",
    "StaffNotErasable",
    "Code",
    "ImportConflict",
    "ImportOutcome",
    "ImportRefusal",
    "ImportResult",
    "ImportedKey",
    "IssuedKey",
    "KeyVerdict",
    "KeyUsage",
    "UsageRow",
    "KeyRevoked",
    "LifecycleError",
    "NotChangeable",
    "NotRotatable",
    "OwnerNotEligible",
    "Rejection",
    "TooManyKeys",
    "Verification",
    "apply_firebase_states",
    "change_key",
    "default_scopes",
    "disable_key",
    "enable_key",
    "erase_user",
    "find_service_client",
    "issue_service_client",
    "mark_service_client_used",
    "revoke_service_client",
    "revoke_user_keys",
    "rotate_service_client",
    "ensure_may_hold_keys",
    "import_keys",
    "issue_key",
    "judge_key",
    "key_usage",
    "usage_delay_seconds",
    "flush_usage",
    "usage_exit_deadline",
    "prune_usage",
    "record_scope_refusal",
    "mark_used",
    "revoke_key",
    "rotate_key",
    "set_expiry",
    "staff_hold",
    "update_key",
    "users_to_sync",
    "validate_expiry",
    "validate_reason",
    "verify_key",
]
