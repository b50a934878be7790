"""Prometheus metrics: what omikeys counts, and the small functions the rest of the code calls to count it.

Every metric lives here, built with prometheus-client. Under gunicorn with several
worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess
mode): each worker then writes its values to memory-mapped files in that directory
and ``GET /metrics`` adds up every worker's (``apikeys.gunicorn_hooks`` clears the
directory when the server starts and forgets the gauges of workers that exit).

Recording is a lock and an add on a value prepared at import, a microsecond or two:
nothing measurable beside a verification's database read. ``docs/operations.md``
documents each metric.
"""

import time
from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram

# Labels, pre-created below, so every series exists (at 0) from the start: a rate() over
# a series that appears only after its first event misses that event.
VERIFICATION_OUTCOMES = (
    "valid",  # the key verified (its ``secret`` says which one)
    "malformed",  # no well-formed key: a missing or garbled value, a Firebase token sent as a key
    "not_found",  # a well-formed key that no key has (never issued, or a secret replaced with no grace)
    "revoked",
    "expired",
    "owner_inactive",  # the key's owner was deactivated
    "grace_ended",  # a secret replaced by a rotation, after its grace period
    "disabled",  # the key is paused (lifecycle.disable_key)
    "throttled",  # refused with 429: too many failed verifications from the client's address
)
SECRETS = ("current", "replaced", "none")  # which of a key's secrets matched; "none": no key matched
KEY_EVENT_ACTIONS = (
    "created",
    "rotated",
    "revoked",
    "expiry_changed",
    "renamed",
    "scopes_changed",
    "disabled",
    "enabled",
    "imported",
    "leaked",
)
DOORS = ("api", "web", "admin", "command", "code", "service", "leak")
THROTTLES = ("verify-fail", "create", "service-auth-fail", "leak-report")
DEPENDENCIES = ("database", "cache", "firebase")


class BreakerState:
    """The values of ``omikeys_dependency_breaker_state``: a circuit breaker's state as a number."""

    CLOSED = 0  # calls go through
    HALF_OPEN = 1  # one trial call goes through; its result closes or opens the breaker again
    OPEN = 2  # calls are skipped until the breaker's reset timeout ends

    # pybreaker's state names (CircuitBreaker.current_state), and the same with an underscore.
    BY_NAME = {"closed": CLOSED, "half-open": HALF_OPEN, "half_open": HALF_OPEN, "open": OPEN}


VERIFICATIONS = Counter(
    "omikeys_key_verifications",
    "API keys presented for verification, by outcome and by which of the key's secrets matched.",
    ["outcome", "secret"],
)
VERIFICATION_SECONDS = Histogram(
    "omikeys_key_verification_duration_seconds",
    "Time to verify a presented API key: throttle check, hash, lookup, last-used stamp.",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
SCOPE_REFUSALS = Counter(
    "omikeys_key_scope_refusals",
    "Requests with a valid API key refused (403) because the key lacks a scope the view requires.",
)
KEY_EVENTS = Counter(
    "omikeys_key_events",
    "Key lifecycle changes committed, by action and by the door they came through.",
    ["action", "door"],
)
THROTTLE_REFUSALS = Counter(
    "omikeys_throttle_refusals",
    "Requests refused with 429 by a throttle, by throttle.",
    ["throttle"],
)
DEPENDENCY_ERRORS = Counter(
    "omikeys_dependency_errors",
    "Failed or timed-out calls to a dependency (database, cache, firebase).",
    ["dependency"],
)
# Each worker has its own breakers; the endpoint shows the worst state among live workers.
BREAKER_STATE = Gauge(
    "omikeys_dependency_breaker_state",
    "Circuit breaker state of a dependency: 0 closed, 1 half-open, 2 open (the highest among live workers).",
    ["dependency"],
    multiprocess_mode="livemax",
)

for _outcome in VERIFICATION_OUTCOMES:
    for _secret in SECRETS:
        VERIFICATIONS.labels(_outcome, _secret)
for _action in KEY_EVENT_ACTIONS:
    for _door in DOORS:
        KEY_EVENTS.labels(_action, _door)
for _throttle in THROTTLES:
    THROTTLE_REFUSALS.labels(_throttle)
for _dependency in DEPENDENCIES:
    DEPENDENCY_ERRORS.labels(_dependency)
    BREAKER_STATE.labels(_dependency).set(BreakerState.CLOSED)


def record_verification(outcome: str, secret: str | None, started: float) -> None:
    """Count one verification and observe its duration.

    ``outcome`` is one of :data:`VERIFICATION_OUTCOMES`, ``secret`` "current",
    "replaced" or ``None`` (no key matched), ``started`` the ``time.perf_counter()``
    reading taken when the verification began.
    """
    VERIFICATION_SECONDS.observe(time.perf_counter() - started)
    VERIFICATIONS.labels(outcome, secret or "none").inc()


def record_scope_refusal() -> None:
    """Count one request refused because its (valid) key lacks a required scope."""
    SCOPE_REFUSALS.inc()


def record_key_events(counts: Mapping[tuple[str, str], int]) -> None:
    """Count committed lifecycle changes: ``{(action, door): number}``, ``action`` a ``KeyEvent.Action``
    and ``door`` a ``KeyEvent.Via``."""
    for (action, door), number in counts.items():
        KEY_EVENTS.labels(action, door).inc(number)


def record_throttle_refusal(throttle: str) -> None:
    """Count one request refused (429) by the throttle named ``throttle`` (``Throttle.name``)."""
    THROTTLE_REFUSALS.labels(throttle).inc()


def record_dependency_error(dependency: str) -> None:
    """Count one failed or timed-out call to ``dependency``: "database", "cache" or "firebase".

    Raises ``ValueError`` for another name, so a typo cannot start a series of its own.
    """
    if dependency not in DEPENDENCIES:
        raise ValueError(f"unknown dependency {dependency!r}; one of {', '.join(DEPENDENCIES)}")
    DEPENDENCY_ERRORS.labels(dependency).inc()


def set_breaker_state(dependency: str, state: int | str) -> None:
    """Publish the circuit breaker state of ``dependency`` in this process.

    ``state`` is a :class:`BreakerState` number or a state name as pybreaker gives it
    ("closed", "half-open", "open"); anything else raises ``ValueError``.
    """
    if dependency not in DEPENDENCIES:
        raise ValueError(f"unknown dependency {dependency!r}; one of {', '.join(DEPENDENCIES)}")
    value = BreakerState.BY_NAME.get(state) if isinstance(state, str) else state
    if value not in (BreakerState.CLOSED, BreakerState.HALF_OPEN, BreakerState.OPEN):
        raise ValueError(f"unknown breaker state {state!r}; one of closed, half-open, open (0, 1, 2)")
    BREAKER_STATE.labels(dependency).set(value)


WEBHOOK_OUTCOMES = ("delivered", "retry", "failed")  # "retry": failed, another attempt is scheduled
WEBHOOK_DELIVERIES = Counter(
    "omikeys_webhook_delivery_attempts",
    "Webhook delivery attempts by outcome: delivered (2xx), retry (failed, tried again later), failed (gave up).",
    ["outcome"],
)
for _outcome in WEBHOOK_OUTCOMES:
    WEBHOOK_DELIVERIES.labels(_outcome)


def record_webhook_delivery(outcome: str) -> None:
    """Count one webhook delivery attempt: ``outcome`` one of :data:`WEBHOOK_OUTCOMES`, else ``ValueError``."""
    if outcome not in WEBHOOK_OUTCOMES:
        raise ValueError(f"unknown webhook outcome {outcome!r}; one of {', '.join(WEBHOOK_OUTCOMES)}")
    WEBHOOK_DELIVERIES.labels(outcome).inc()


NOTICE_KINDS = ("key_created", "key_rotated", "changed_by_other", "expires_7d", "expires_1d", "expired", "key_leaked")
# sent: the mail server took it; retry: it did not, another attempt is scheduled; failed: refused for
# good or out of attempts; skipped: never sent (no address, mail not configured, no longer true).
NOTICE_OUTCOMES = ("sent", "retry", "failed", "skipped")
NOTICES = Counter(
    "omikeys_notices",
    "Email notices to keys' owners by kind and outcome (sent, retry, failed, skipped), one per notice.",
    ["kind", "outcome"],
)
for _kind in NOTICE_KINDS:
    for _outcome in NOTICE_OUTCOMES:
        NOTICES.labels(_kind, _outcome)


def record_notice(kind: str, outcome: str) -> None:
    """Count one notice's outcome: ``kind`` one of :data:`NOTICE_KINDS`, ``outcome`` of :data:`NOTICE_OUTCOMES`,
    else ``ValueError``."""
    if kind not in NOTICE_KINDS or outcome not in NOTICE_OUTCOMES:
        raise ValueError(f"unknown notice kind or outcome {kind!r}, {outcome!r}")
    NOTICES.labels(kind, outcome).inc()


# failed: an error that may pass (locked, unavailable, a timeout), the counts stay pending for the next write;
# dropped: the database refused them (an integrity or data error), they would fail every time.
USAGE_FLUSH_RESULTS = ("written", "failed", "dropped")
USAGE_FLUSHES = Counter(
    "omikeys_usage_flushes",
    "Writes of a key's usage counts held in a process (lifecycle.usage), by result.",
    ["result"],
)
USAGE_DROPPED_WHAT = ("request", "address")  # a whole count (too many keys pending), or only its address
USAGE_DROPPED = Counter(
    "omikeys_usage_dropped",
    "Key usage not kept because a process's pending usage was full (OMIKEYS_USAGE_MAX_PENDING_*).",
    ["what"],
)
for _result in USAGE_FLUSH_RESULTS:
    USAGE_FLUSHES.labels(_result)
for _what in USAGE_DROPPED_WHAT:
    USAGE_DROPPED.labels(_what)


def record_usage_flush(result: str) -> None:
    """Count one write of a key's usage: ``result`` one of :data:`USAGE_FLUSH_RESULTS`, else ``ValueError``."""
    if result not in USAGE_FLUSH_RESULTS:
        raise ValueError(f"unknown usage flush result {result!r}; one of {', '.join(USAGE_FLUSH_RESULTS)}")
    USAGE_FLUSHES.labels(result).inc()


USAGE_FLUSH_PASS_SECONDS = Histogram(
    "omikeys_usage_flush_pass_seconds",
    "Duration of a background writer's pass over the keys whose usage is due (lifecycle.usage.flush_due).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def observe_usage_flush_pass(seconds: float) -> None:
    """Observe one background writer pass that took ``seconds``."""
    USAGE_FLUSH_PASS_SECONDS.observe(seconds)


def record_usage_dropped(what: str, amount: int = 1) -> None:
    """Count ``amount`` (>= 0) requests or addresses of usage not kept: ``what`` one of :data:`USAGE_DROPPED_WHAT`,
    else ``ValueError``."""
    if what not in USAGE_DROPPED_WHAT:
        raise ValueError(f"unknown usage drop {what!r}; one of {', '.join(USAGE_DROPPED_WHAT)}")
    USAGE_DROPPED.labels(what).inc(amount)
