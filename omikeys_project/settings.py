"""Settings for omikeys: the only module that reads the environment.

Every variable read here is listed in `.env.example` and in the table of
`docs/configuration.md`. Defaults are the production-safe ones; local development
turns debugging on explicitly (see `scripts/dev`).
"""

import datetime
import ipaddress
import math
import sys
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.checks.security.base import (
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# DJANGO_ENV_FILE names the optional file of settings (default .env); empty reads none,
# which is how the test suite keeps a developer's .env out of its runs.
ENV_FILE = env.str("DJANGO_ENV_FILE", default=".env").strip()
if ENV_FILE:
    environ.Env.read_env(BASE_DIR / ENV_FILE, overwrite=False)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean strictly: a typo such as DJANGO_DEBUG=ture is an error, not False."""
    raw = env.str(name, default=None)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of true/false/1/0/yes/no/on/off, not {raw!r}.")


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    """Read a whole number strictly, within bounds: "60s" or "-1" is an error, not a default."""
    raw = env.str(name, default=None)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}.") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ImproperlyConfigured(f"{name} must be {bounds}, not {value}.")
    return value


def env_seconds(name: str, default: float, *, minimum: float, maximum: float) -> float:
    """Read a duration in seconds (decimals allowed, e.g. 0.25) within bounds; "2s" or "-1" is an error."""
    raw = env.str(name, default=None)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number of seconds such as 0.5 or 3, not {raw!r}.") from None
    if not minimum <= value <= maximum:
        raise ImproperlyConfigured(f"{name} must be between {minimum:g} and {maximum:g} seconds, not {raw.strip()}.")
    return value


_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def env_rate(name: str, default: str) -> tuple[int, int]:
    """Read a rate such as "20/minute" as (requests, seconds); periods: second, minute, hour, day."""
    raw = env.str(name, default=default).strip().lower()
    count, _, period = raw.partition("/")
    if not count.isdigit() or int(count) < 1 or period not in _PERIODS:
        raise ImproperlyConfigured(
            f"{name} must look like 20/minute (a number from 1 up, then second, minute, hour or day), not {raw!r}."
        )
    return int(count), _PERIODS[period]


def env_networks(name: str) -> list:
    """Read a comma list of IP networks or addresses ("10.0.0.0/8, 127.0.0.1"); a bad entry is an error."""
    networks = []
    for entry in env.list(name, default=[]):
        if entry.strip():
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ImproperlyConfigured(f"{name} must list IP networks such as 10.0.0.0/8, not {entry!r}.") from None
    return networks


def env_required(name: str) -> str:
    value = env.str(name, default="").strip()
    if not value:
        raise ImproperlyConfigured(f"{name} is required; see .env.example and docs/configuration.md.")
    return value


DEBUG = env_bool("DJANGO_DEBUG", default=False)

# Placeholders people copy from examples: a key containing one was never generated.
_PLACEHOLDER_SECRETS = ("change-me", "changeme", "change_me")


def weak_secret_key(key: str) -> str | None:
    """Why ``key`` is too weak to sign sessions in production, or None.

    Django's own rule for ``check --deploy`` (security.W009: at least 50 characters, 5
    different ones, not Django's "django-insecure-" prefix), plus the placeholders of
    examples such as .env.example's "change-me-to-a-long-random-string", and keys with a
    pattern: a repetition of a short unit ("password" * 7), or text that zlib compresses
    below ``SECRET_KEY_MIN_COMPRESSED_RATIO`` of its length ("0123456789" * 5).
    """
    if len(key) < SECRET_KEY_MIN_LENGTH:
        return f"it has {len(key)} characters; at least {SECRET_KEY_MIN_LENGTH} are needed"
    if len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS:
        return f"it has fewer than {SECRET_KEY_MIN_UNIQUE_CHARACTERS} different characters"
    if key.startswith(SECRET_KEY_INSECURE_PREFIX):
        return f"it starts with {SECRET_KEY_INSECURE_PREFIX!r}, the mark of a key Django made for development"
    if any(word in key.lower() for word in _PLACEHOLDER_SECRETS):
        return "it is a placeholder copied from an example"
    if unit := _repeated_unit(key):
        return f"it repeats a pattern of {len(unit)} characters"
    if len(zlib.compress(key.encode(), 9)) < SECRET_KEY_MIN_COMPRESSED_RATIO * len(key.encode()):
        return "it is too regular: it compresses far better than a random key"
    return None


# A random key (secrets.token_urlsafe, token_hex) does not compress: zlib makes it longer (a
# ratio above 1.0). One that shrinks below this share of its length has a pattern in it.
SECRET_KEY_MIN_COMPRESSED_RATIO = 0.8


def _repeated_unit(key: str) -> str | None:
    """The shortest unit that ``key`` repeats ("password" for "passwordpassword...pass"), or None."""
    for size in range(1, len(key) // 2 + 1):
        unit = key[:size]
        if (unit * (len(key) // size + 1))[: len(key)] == key:
            return unit
    return None


if DEBUG:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or "insecure-development-only-key"
else:
    SECRET_KEY = env_required("DJANGO_SECRET_KEY")
    if weakness := weak_secret_key(SECRET_KEY):
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY is too weak for production: {weakness}. Generate one with "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(50))' and keep it secret."
        )
# Earlier secret keys, still accepted while a new DJANGO_SECRET_KEY takes over: sessions signed
# with them stay valid, and webhook signing secrets encrypted with them can still be read.
SECRET_KEY_FALLBACKS = [k.strip() for k in env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[]) if k.strip()]

ALLOWED_HOSTS = [h.strip() for h in env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"]) if h.strip()]

# Firebase: the project whose ID tokens are accepted. GOOGLE_APPLICATION_CREDENTIALS
# and FIREBASE_AUTH_EMULATOR_HOST are also read by the Google libraries themselves.
FIREBASE_PROJECT_ID = env_required("FIREBASE_PROJECT_ID")
FIREBASE_AUTH_EMULATOR_HOST = env.str("FIREBASE_AUTH_EMULATOR_HOST", default="")
# How far ahead of this server's clock a token's issue time may be (and how long past
# its expiry it is still taken), in seconds: firebase-admin's clock_skew_seconds, 0 to 60.
FIREBASE_CLOCK_SKEW_SECONDS = env_int("FIREBASE_CLOCK_SKEW_SECONDS", 5, minimum=0, maximum=60)
# In emulator mode firebase-admin checks no signatures, so anyone could forge a
# token. Firebase reserves "demo-" project IDs for emulator-only use: requiring
# one makes it impossible to point a real project at the emulator by accident.
if FIREBASE_AUTH_EMULATOR_HOST and not FIREBASE_PROJECT_ID.startswith("demo-"):
    raise ImproperlyConfigured(
        "FIREBASE_AUTH_EMULATOR_HOST is set, so token signatures are not checked; "
        f"FIREBASE_PROJECT_ID must then be a 'demo-' project, not {FIREBASE_PROJECT_ID!r}. "
        "Unset FIREBASE_AUTH_EMULATOR_HOST to use a real Firebase project."
    )
# The browser half of sign-in: the Firebase web app's API key (public, not a secret)
# and auth domain. Without an API key the sign-in page explains that it is not set up;
# the emulator accepts any key.
FIREBASE_WEB_API_KEY = env.str("FIREBASE_WEB_API_KEY", default="").strip() or (
    "demo-api-key" if FIREBASE_AUTH_EMULATOR_HOST else ""
)
FIREBASE_AUTH_DOMAIN = env.str("FIREBASE_AUTH_DOMAIN", default="").strip() or f"{FIREBASE_PROJECT_ID}.firebaseapp.com"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.forms",  # Django's widget templates, for FORM_RENDERER below
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "apikeys",
    # The worker: task queue and periodic schedules kept in the database (Q_CLUSTER below).
    "django_q",
    # Locks the admin login after repeated failures (see AXES_* below).
    "axes",
]

MIDDLEWARE = [
    "apikeys.request_logging.RequestLogMiddleware",  # first: the request id, and the request's whole duration
    # Outermost: every answer under /v1/ (DEBUG's error pages included) leaves as JSON, never cached.
    "apikeys.api.middleware.ApiResponseMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apikeys.web.middleware.ContentSecurityPolicyMiddleware",
    # Answers a locked-out admin login with the lockout page; last, as django-axes requires.
    "axes.middleware.AxesMiddleware",
]
# A database or other dependency that cannot answer: 503 with Retry-After (JSON on the API,
# a page elsewhere) instead of a 500. Innermost, to see the views' exceptions first.
MIDDLEWARE.append("apikeys.middleware.DependencyUnavailableMiddleware")

ROOT_URLCONF = "omikeys_project.urls"
WSGI_APPLICATION = "omikeys_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Widgets render with TEMPLATES above, so templates/ can override a widget's template (the admin's
# date and time inputs get labels of their own: templates/admin/widgets/split_datetime.html).
FORM_RENDERER = "django.forms.renderers.TemplatesSetting"

# Bounded waits on every dependency (docs/configuration.md, "Dependencies"). The longest a
# statement may wait or run (PostgreSQL statement_timeout; SQLite's wait for the write lock),
# and the longest a new database connection may take to open.
OMIKEYS_DATABASE_TIMEOUT = env_seconds("OMIKEYS_DATABASE_TIMEOUT", 5, minimum=0.1, maximum=600)
OMIKEYS_DATABASE_CONNECT_TIMEOUT = env_int("OMIKEYS_DATABASE_CONNECT_TIMEOUT", 3, minimum=2, maximum=60)
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The same backend with a bounded connect, a statement timeout, a circuit breaker, and
    # a check that drops connections the server has closed (apikeys/backends/postgresql).
    DATABASES["default"]["ENGINE"] = "apikeys.backends.postgresql"
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", OMIKEYS_DATABASE_CONNECT_TIMEOUT)
    _statement_timeout_ms = int(OMIKEYS_DATABASE_TIMEOUT * 1000)
    DATABASES["default"]["OPTIONS"].setdefault("options", f"-c statement_timeout={_statement_timeout_ms}")
# Every API-key check reads the database, so each worker keeps its connection for 60 s
# instead of opening one per request, which costs more than the check itself.
# ?conn_max_age=N in DATABASE_URL overrides it (0: close after each request). Health
# checks stay off: they cost a round trip per request, as much as the check.
if "conn_max_age=" not in env.str("DATABASE_URL", default=""):
    DATABASES["default"]["CONN_MAX_AGE"] = 60
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions and WAL let concurrent requests queue for the write
    # lock instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": OMIKEYS_DATABASE_TIMEOUT,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

# The cache holds only throttle counters (never a key's verification result). The
# default lives in each process's memory; CACHE_URL=redis://... shares the counters
# between every process and server.
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://omikeys")}

# A Redis that hangs or refuses costs each request at most OMIKEYS_CACHE_TIMEOUT, and only
# until the cache's circuit breaker opens (apikeys/cache.py, apikeys/dependencies.py).
OMIKEYS_CACHE_TIMEOUT = env_seconds("OMIKEYS_CACHE_TIMEOUT", 0.25, minimum=0.01, maximum=60)
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    CACHES["default"]["BACKEND"] = "apikeys.cache.ResilientRedisCache"
    CACHES["default"].setdefault("OPTIONS", {})
    CACHES["default"]["OPTIONS"].setdefault("socket_timeout", OMIKEYS_CACHE_TIMEOUT)
    CACHES["default"]["OPTIONS"].setdefault("socket_connect_timeout", OMIKEYS_CACHE_TIMEOUT)
# Each Firebase call (token revocation check, user lookups) waits at most this long for
# an answer; firebase-admin retries a timed-out read once, so a call takes at most twice it.
OMIKEYS_FIREBASE_TIMEOUT = env_seconds("OMIKEYS_FIREBASE_TIMEOUT", 2, minimum=0.1, maximum=120)
# Circuit breakers, one per dependency and process: after this many failed calls in a row
# the dependency is not called for OMIKEYS_BREAKER_RESET_SECONDS; then one call is tried.
OMIKEYS_BREAKER_FAILURES = env_int("OMIKEYS_BREAKER_FAILURES", 3, minimum=1, maximum=1000)
OMIKEYS_BREAKER_RESET_SECONDS = env_seconds("OMIKEYS_BREAKER_RESET_SECONDS", 10, minimum=0.1, maximum=3600)
# The dependencies GET /readyz requires (comma list of database, cache, firebase). By default
# only the database: verification works without the others, so an outage of a shared Redis
# or of Firebase would otherwise take every instance out of the load balancer at once.
OMIKEYS_READINESS_REQUIRES = [
    d.strip().lower() for d in env.list("OMIKEYS_READINESS_REQUIRES", default=["database"]) if d.strip()
]
if unknown := set(OMIKEYS_READINESS_REQUIRES) - {"database", "cache", "firebase"}:
    raise ImproperlyConfigured(
        f"OMIKEYS_READINESS_REQUIRES takes database, cache and/or firebase, not {', '.join(sorted(unknown))}."
    )

# Keys: limits and timings. Each is explained in docs/configuration.md.
OMIKEYS_MAX_ACTIVE_KEYS = env_int("OMIKEYS_MAX_ACTIVE_KEYS", 50, minimum=1)
OMIKEYS_MAX_KEY_LIFETIME_DAYS = env_int("OMIKEYS_MAX_KEY_LIFETIME_DAYS", 365, minimum=1, maximum=3650)
OMIKEYS_LAST_USED_INTERVAL = env_int("OMIKEYS_LAST_USED_INTERVAL", 60, minimum=0, maximum=86400)
OMIKEYS_KEY_CREATION_RATE = env_rate("OMIKEYS_KEY_CREATION_RATE", "20/hour")
# Usage per key (docs/usage.md): addresses a key was used from, and its last use's address and user
# agent, are kept this many days after they were last seen, then removed by the worker's hourly pass.
OMIKEYS_USAGE_ADDRESS_RETENTION_DAYS = env_int("OMIKEYS_USAGE_ADDRESS_RETENTION_DAYS", 30, minimum=1, maximum=90)
# Each process holds usage counts in memory until its background writer writes them: at most this many
# keys, and this many distinct addresses per key; beyond them a request's count (or its address) is dropped
# and counted. About 5.5 KB per key at 20 addresses: some 11 MB per worker at the defaults (docs/usage.md).
OMIKEYS_USAGE_MAX_PENDING_KEYS = env_int("OMIKEYS_USAGE_MAX_PENDING_KEYS", 2000, minimum=1, maximum=1000000)
OMIKEYS_USAGE_MAX_PENDING_ADDRESSES = env_int("OMIKEYS_USAGE_MAX_PENDING_ADDRESSES", 20, minimum=1, maximum=10000)
OMIKEYS_FAILED_VERIFICATION_RATE = env_rate("OMIKEYS_FAILED_VERIFICATION_RATE", "30/minute")
# The format of new keys and rotated secrets (docs/key-format.md): "checksum" (omi_dev_ + 30 base62
# + a CRC32 in 6 base62, recognisable by secret scanners) or "hex" (omi_dev_ + 32 hex, Omi's format,
# for clients that cannot take the other). Keys of both formats verify whatever this says.
OMIKEYS_KEY_FORMAT = env.str("OMIKEYS_KEY_FORMAT", default="checksum").strip().lower()
if OMIKEYS_KEY_FORMAT not in ("checksum", "hex"):
    raise ImproperlyConfigured(f"OMIKEYS_KEY_FORMAT is checksum or hex, not {OMIKEYS_KEY_FORMAT!r}.")
# Leaked keys (docs/leaks.md): what a report of a live key does ("revoke" it, or only "notify" its owner),
# where GitHub publishes the keys that sign its secret-scanning alerts, how long they are kept, how long
# a fetch may take, the largest alert taken, and how many reports one address may make.
OMIKEYS_LEAK_ACTION = env.str("OMIKEYS_LEAK_ACTION", default="revoke").strip().lower()
if OMIKEYS_LEAK_ACTION not in ("revoke", "notify"):
    raise ImproperlyConfigured(f"OMIKEYS_LEAK_ACTION is revoke or notify, not {OMIKEYS_LEAK_ACTION!r}.")
OMIKEYS_GITHUB_KEYS_URL = env.str(
    "OMIKEYS_GITHUB_KEYS_URL", default="https://api.github.com/meta/public_keys/secret_scanning"
)
if not OMIKEYS_GITHUB_KEYS_URL.startswith(("https://", "http://")):
    raise ImproperlyConfigured(f"OMIKEYS_GITHUB_KEYS_URL must be an http(s) URL, not {OMIKEYS_GITHUB_KEYS_URL!r}.")
if not DEBUG and not OMIKEYS_GITHUB_KEYS_URL.startswith("https://"):
    # Over plain http anyone on the path could publish keys of their own and sign alerts revoking any key.
    raise ImproperlyConfigured(
        "OMIKEYS_GITHUB_KEYS_URL must start with https:// (http only with DJANGO_DEBUG), "
        f"not {OMIKEYS_GITHUB_KEYS_URL!r}."
    )
# A GitHub token (any, no scopes needed) lifts api.github.com's limit of 60 unauthenticated calls an hour.
OMIKEYS_GITHUB_TOKEN = env.str("OMIKEYS_GITHUB_TOKEN", default="").strip()
OMIKEYS_GITHUB_KEYS_CACHE_SECONDS = env_int("OMIKEYS_GITHUB_KEYS_CACHE_SECONDS", 3600, minimum=1, maximum=86400)
OMIKEYS_GITHUB_KEYS_TIMEOUT = env_seconds("OMIKEYS_GITHUB_KEYS_TIMEOUT", 5, minimum=0.1, maximum=30)
OMIKEYS_LEAK_BODY_MAX_BYTES = env_int(
    "OMIKEYS_LEAK_BODY_MAX_BYTES", 1024 * 1024, minimum=16 * 1024, maximum=16 * 1024 * 1024
)
OMIKEYS_LEAK_REPORT_RATE = env_rate("OMIKEYS_LEAK_REPORT_RATE", "10/hour")
# Reports queued from all addresses together (each address also within OMIKEYS_LEAK_REPORT_RATE).
OMIKEYS_LEAK_REPORT_TOTAL_RATE = env_rate("OMIKEYS_LEAK_REPORT_TOTAL_RATE", "1000/hour")
# How many proxies in front of omikeys append to X-Forwarded-For. 0: the client's
# address is the connection's. Used for the audit log and per-address throttles.
OMIKEYS_NUM_PROXIES = env_int("OMIKEYS_NUM_PROXIES", 0, maximum=10)
# On PostgreSQL the key lookup is a prepared statement, once per connection. Turn it off
# behind a pooler that does not keep sessions (PgBouncer in transaction mode).
OMIKEYS_PREPARE_KEY_LOOKUP = env_bool("OMIKEYS_PREPARE_KEY_LOOKUP", default=True)

# Metrics (docs/operations.md): GET /metrics answers only once a token or networks are set.
OMIKEYS_METRICS_TOKEN = env.str("OMIKEYS_METRICS_TOKEN", default="").strip()
if OMIKEYS_METRICS_TOKEN and len(OMIKEYS_METRICS_TOKEN) < 32:
    raise ImproperlyConfigured("OMIKEYS_METRICS_TOKEN must be at least 32 characters (a random string).")
OMIKEYS_METRICS_ALLOWED_NETWORKS = env_networks("OMIKEYS_METRICS_ALLOWED_NETWORKS")
# prometheus-client reads this variable itself, at import; it is read here only to check it.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="").strip()
if PROMETHEUS_MULTIPROC_DIR and not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured(f"PROMETHEUS_MULTIPROC_DIR names no directory: {PROMETHEUS_MULTIPROC_DIR!r}.")


def env_retry_schedule(name: str, default: str) -> list[float]:
    """Read a comma list of waits in seconds ("5,300,1800"): the waits before each retry."""
    raw = env.str(name, default=default).strip()
    try:
        waits = [float(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a comma list of seconds such as 5,300,1800, not {raw!r}.") from None
    if not waits or any(wait < 0 or wait > 7 * 86400 for wait in waits):
        raise ImproperlyConfigured(f"{name} needs at least one wait, each between 0 and 604800 seconds, not {raw!r}.")
    return waits


# Webhooks (docs/configuration.md, "Webhooks"). Each attempt waits at most this long to
# connect, and as long again for each read of the answer.
OMIKEYS_WEBHOOK_TIMEOUT = env_seconds("OMIKEYS_WEBHOOK_TIMEOUT", 10, minimum=0.1, maximum=60)
# How long a worker holds a delivery it is sending; a worker that dies mid-delivery leaves
# a lease that ends after this, and the delivery is sent again (with the same webhook-id).
OMIKEYS_WEBHOOK_LEASE_SECONDS = env_int("OMIKEYS_WEBHOOK_LEASE_SECONDS", 60, minimum=2, maximum=3600)
if OMIKEYS_WEBHOOK_LEASE_SECONDS <= 2 * OMIKEYS_WEBHOOK_TIMEOUT:
    raise ImproperlyConfigured(
        "OMIKEYS_WEBHOOK_LEASE_SECONDS must be more than twice OMIKEYS_WEBHOOK_TIMEOUT (connect and read), "
        f"not {OMIKEYS_WEBHOOK_LEASE_SECONDS} with a timeout of {OMIKEYS_WEBHOOK_TIMEOUT:g}."
    )
# Waits before each retry of a failed attempt (Standard Webhooks' suggested schedule: the
# first attempt at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: about 27.5 hours).
OMIKEYS_WEBHOOK_RETRY_SCHEDULE = env_retry_schedule(
    "OMIKEYS_WEBHOOK_RETRY_SCHEDULE", "5,300,1800,7200,18000,36000,36000"
)
# An endpoint whose every attempt has failed for this many days is disabled (a notice in the admin).
OMIKEYS_WEBHOOK_DISABLE_AFTER_DAYS = env_int("OMIKEYS_WEBHOOK_DISABLE_AFTER_DAYS", 5, minimum=1, maximum=365)
# After a signing secret's rotation, the replaced secret keeps signing beside the new one
# for this many hours (0: it stops at once), so the receiver can switch without failures.
OMIKEYS_WEBHOOK_SECRET_GRACE_HOURS = env_int("OMIKEYS_WEBHOOK_SECRET_GRACE_HOURS", 24, minimum=0, maximum=168)
# Outgoing events (and their deliveries) older than this many days are deleted once none is
# pending. At least 8: the key.expired pass remembers what it reported by its last 7 days of events.
OMIKEYS_WEBHOOK_RETENTION_DAYS = env_int("OMIKEYS_WEBHOOK_RETENTION_DAYS", 30, minimum=8, maximum=3650)
# Webhook URLs must resolve to public addresses (no private, loopback, link-local, multicast,
# reserved or unspecified ones), except in these networks ("127.0.0.0/8, ::1" for development).
OMIKEYS_WEBHOOK_ALLOWED_NETWORKS = env_networks("OMIKEYS_WEBHOOK_ALLOWED_NETWORKS")
# Plain http:// webhook URLs: refused unless this is on (default: only with DJANGO_DEBUG).
OMIKEYS_WEBHOOK_ALLOW_HTTP = env_bool("OMIKEYS_WEBHOOK_ALLOW_HTTP", default=DEBUG)

# Email notices to keys' owners (docs/notifications.md), sent by the worker. EMAIL_URL in
# django-environ's form: smtp://user:password@host:25, smtp+tls://... (STARTTLS, port 587),
# smtp+ssl://... (TLS from the start, port 465), consolemail:// (printed to the worker's log).
# Unset: no mail is sent, and each notice is recorded as skipped; DJANGO_DEBUG prints them.
EMAIL_URL = env.str("EMAIL_URL", default="").strip() or ("consolemail://" if DEBUG else "")
OMIKEYS_SEND_EMAIL = bool(EMAIL_URL)
if EMAIL_URL:
    try:
        _email = env.email_url_config(EMAIL_URL)
    except Exception as error:  # django-environ raises KeyError/ValueError for an unknown scheme or a bad URL
        raise ImproperlyConfigured(
            f"EMAIL_URL must look like smtp://user:password@host:port, smtp+tls://..., smtp+ssl://... or "
            f"consolemail:// ({error})."
        ) from None
    # EMAIL_BACKEND, EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD, EMAIL_USE_TLS/SSL.
    globals().update({name: value for name, value in _email.items() if value not in (None, "")})
# Each step of talking to the mail server (connect, every command) waits at most this long, and a
# whole message at most three times it: a server that hangs delays the mail, never the worker.
EMAIL_TIMEOUT = env_seconds("EMAIL_TIMEOUT", 10, minimum=0.1, maximum=60)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="").strip() or "omikeys@localhost"
# The address of the web pages, for the links in notices ("https://keys.example.com"): a mail has
# no request to take its host from. Development defaults to scripts/dev's server.
OMIKEYS_PUBLIC_URL = env.str("OMIKEYS_PUBLIC_URL", default="").strip().rstrip("/")
if not OMIKEYS_PUBLIC_URL and DEBUG:
    OMIKEYS_PUBLIC_URL = "http://127.0.0.1:8000"
if OMIKEYS_PUBLIC_URL:
    _public = urlsplit(OMIKEYS_PUBLIC_URL)
    _loopback = _public.hostname in ("localhost", "127.0.0.1", "::1")
    if _public.scheme not in ("http", "https") or not _public.hostname or _public.query or _public.fragment:
        raise ImproperlyConfigured(
            f"OMIKEYS_PUBLIC_URL must be the web pages' address such as https://keys.example.com, "
            f"not {OMIKEYS_PUBLIC_URL!r}."
        )
    if _public.scheme != "https" and not (DEBUG or _loopback):
        raise ImproperlyConfigured(
            f"OMIKEYS_PUBLIC_URL must start with https:// (links in mail must not be sent over plain http), "
            f"not {OMIKEYS_PUBLIC_URL!r}."
        )
if OMIKEYS_SEND_EMAIL and not DEBUG:
    for _name, _value in (
        ("OMIKEYS_PUBLIC_URL", OMIKEYS_PUBLIC_URL),
        ("DEFAULT_FROM_EMAIL", env.str("DEFAULT_FROM_EMAIL", default="").strip()),
    ):
        if not _value:
            raise ImproperlyConfigured(
                f"EMAIL_URL is set, so {_name} is required too (the links in notices and their sender); "
                "see docs/notifications.md."
            )
# The waits before each retry of a notice the mail server did not take (timeouts, refused
# connections, 4xx answers): 1 min, 5 min, 30 min, 2 h, 6 h; then it is failed.
OMIKEYS_NOTICE_RETRY_SCHEDULE = env_retry_schedule("OMIKEYS_NOTICE_RETRY_SCHEDULE", "60,300,1800,7200,21600")

# The worker (manage.py qcluster, django-q2): tasks and schedules in the database, no other service.
# A task may take twice the longer lease: a webhook delivery's, or a notice's (twice the longest mail,
# four times EMAIL_TIMEOUT, and a minute for the database: apikeys.notices.lease_seconds), as passes
# bound their work.
_TASK_TIMEOUT = 2 * max(OMIKEYS_WEBHOOK_LEASE_SECONDS, math.ceil(2 * 4 * EMAIL_TIMEOUT + 60))  # whole seconds: SIGALRM
OMIKEYS_WORKER_PROCESSES = env_int("OMIKEYS_WORKER_PROCESSES", 2, minimum=1, maximum=32)
Q_CLUSTER = {
    "name": "omikeys",
    "orm": "default",
    "workers": OMIKEYS_WORKER_PROCESSES,
    # A task runs at most this long; one not acknowledged is handed out again after "retry".
    # Deliveries and notices do not depend on it: their leases bring back any that a dead worker held.
    "timeout": _TASK_TIMEOUT,
    "retry": _TASK_TIMEOUT + 10,
    "max_attempts": 3,
    "poll": 1,
    "catch_up": False,
    "save_limit": -1,  # no record of successful tasks; failures are kept (admin, "Failed tasks")
    "ack_failures": True,
    "label": "Worker",
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "apikeys.User"

# Staff sign in to the admin with a password; django-axes counts failed attempts (in
# the database, so every process sees them) and locks out an account, and separately
# an address, after DJANGO_ADMIN_LOGIN_FAILURE_LIMIT failures, for
# DJANGO_ADMIN_LOCKOUT_MINUTES. A successful sign-in clears that account's own failures
# only, never other accounts' failures from the same address (apikeys.admin.lockout).
# Operators unlock early with manage.py axes_reset_username / axes_reset_ip / axes_reset.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("DJANGO_ADMIN_LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=1000)
AXES_COOLOFF_TIME = datetime.timedelta(
    minutes=env_int("DJANGO_ADMIN_LOCKOUT_MINUTES", 15, minimum=1, maximum=7 * 24 * 60)
)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one locks: per account and per address
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "apikeys.admin.lockout.AccountResetHandler"
AXES_ONLY_ADMIN_SITE = True  # Firebase sign-in and API credentials have their own checks
AXES_CLIENT_IP_CALLABLE = "apikeys.audit.client_ip"  # honours OMIKEYS_NUM_PROXIES, as the throttles do
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False  # no banner at every start; lockouts are still logged as warnings

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Requests are small JSON documents; refuse large bodies before buffering them.
DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # The Firebase web SDK's two browser modules, straight from node_modules/firebase.
    "apikeys.web.firebase_sdk.FirebaseSdkFinder",
]

LOGIN_URL = "web:signin"
LOGIN_REDIRECT_URL = "web:key-list"
CSRF_FAILURE_VIEW = "apikeys.web.views.csrf_failure"
# Sessions carry no secrets (keys are never put in them). Twelve hours, then sign in again.
SESSION_COOKIE_AGE = 12 * 60 * 60

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto, Django must trust it to
# know requests are HTTPS (for secure redirects and the CSRF origin check).
if env_bool("DJANGO_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# HTTPS only: redirect plain HTTP (SECURE_SSL_REDIRECT; behind a TLS-terminating proxy,
# also DJANGO_BEHIND_TLS_PROXY, or every request looks like HTTP and loops), and tell
# browsers to use HTTPS for this host for a while (Strict-Transport-Security, RFC 6797).
# The probes stay reachable over plain HTTP on the internal address (liveness, readiness
# and Prometheus scrapes; the metrics endpoint has its own token and networks).
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0, maximum=2 * 365 * 24 * 60 * 60)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[]) if o.strip()]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apikeys.api.authentication.FirebaseAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["apikeys.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "apikeys.api.negotiation.JSONOnlyNegotiation",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apikeys.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "omikeys: Omi Developer API keys",
    "DESCRIPTION": (
        "Create, list, change, pause, rotate and revoke Omi Developer API keys with "
        "`Authorization: Bearer <Firebase ID token>`, and check a key with "
        "`GET /v1/dev/key` and `Authorization: Bearer <API key>`. Other services verify keys and act on "
        "users through the service API (`/v1/service/`) with `Authorization: Bearer <service token>`."
    ),
    "VERSION": "1.0.0",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": False,
    # A key's status: as the key API lists it (never revoked), and as the service API does (all three).
    "ENUM_NAME_OVERRIDES": {"StatusEnum": ["active", "expired"], "KeyStatusEnum": "apikeys.models.ApiKey.Status"},
}

LOG_LEVEL = env.str("DJANGO_LOG_LEVEL", default="INFO").strip().upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"DJANGO_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {LOG_LEVEL!r}.")
# plain: one readable line per record; json: one JSON object per line (docs/operations.md).
LOG_FORMAT = env.str("OMIKEYS_LOG_FORMAT", default="plain").strip().lower()
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"OMIKEYS_LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}.")
# One line per request (logger omikeys.requests), and whether to take X-Request-ID from the proxy.
OMIKEYS_REQUEST_LOG = env_bool("OMIKEYS_REQUEST_LOG", default=False)
OMIKEYS_TRUST_REQUEST_ID = env_bool("OMIKEYS_TRUST_REQUEST_ID", default=False)
_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
_WORKER_PROCESS = sys.argv[1:2] == ["qcluster"]  # manage.py qcluster: the worker, whose log is its activity
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "apikeys.log_format.RequestIdFilter"}},
    "formatters": {
        "plain": {
            "()": "apikeys.log_format.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
        "json": {"()": "apikeys.log_format.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]}},
    # Django's default logging gives the "django" logger a console handler of its own (in
    # DEBUG) and lets it propagate to the root's as well: every warning printed twice.
    # Its records go through the root handler only (redacted, with the request id).
    "loggers": {
        "django": {"handlers": [], "propagate": True},
        # django-q logs "Enqueued [omikeys] 35" at INFO whenever a change queues a notice or a delivery:
        # noise on an operator's terminal (a management command's stderr) and in the web server's log.
        # The worker (manage.py qcluster) keeps LOG_LEVEL, so its log still shows what it does.
        "django-q": {"level": LOG_LEVEL if _WORKER_PROCESS else max(LOG_LEVEL, "WARNING", key=_LEVELS.index)},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
# Dependency outages are logged once each by apikeys.dependencies; the same error caught
# and logged again by a caller on every request (with its traceback) is dropped.
LOGGING.setdefault("filters", {})["outage_already_reported"] = {"()": "apikeys.dependencies.OutageAlreadyReported"}
for _handler in LOGGING["handlers"].values():
    _handler.setdefault("filters", []).append("outage_already_reported")
