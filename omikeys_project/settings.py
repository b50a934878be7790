"""Settings for omikeys: the only module that reads the environment.

Every variable read here is listed in `.env.example` and in the table of
`docs/configuration.md`. Defaults are the production-safe ones; local development
turns debugging on explicitly (see `scripts/dev`).
"""

from pathlib import Path

import environ
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


def env_required(name: str) -> str:
    value = env.str(name, default="").strip()
    if not value:
        raise ImproperlyConfigured(f"{name} is required; see .env.example and docs/configuration.md.")
    return value


DEBUG = env_bool("DJANGO_DEBUG", default=False)

if DEBUG:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or "insecure-development-only-key"
else:
    SECRET_KEY = env_required("DJANGO_SECRET_KEY")

ALLOWED_HOSTS = [h.strip() for h in env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"]) if h.strip()]

# Firebase: the project whose ID tokens are accepted. GOOGLE_APPLICATION_CREDENTIALS
# and FIREBASE_AUTH_EMULATOR_HOST are also read by the Google libraries themselves.
FIREBASE_PROJECT_ID = env_required("FIREBASE_PROJECT_ID")
FIREBASE_AUTH_EMULATOR_HOST = env.str("FIREBASE_AUTH_EMULATOR_HOST", default="")
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
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "apikeys",
]

MIDDLEWARE = [
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
]

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

DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
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
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

# The cache holds only throttle counters (never a key's verification result). The
# default lives in each process's memory; CACHE_URL=redis://... shares the counters
# between every process and server.
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://omikeys")}

# Keys: limits and timings. Each is explained in docs/configuration.md.
OMIKEYS_MAX_ACTIVE_KEYS = env_int("OMIKEYS_MAX_ACTIVE_KEYS", 50, minimum=1)
OMIKEYS_MAX_KEY_LIFETIME_DAYS = env_int("OMIKEYS_MAX_KEY_LIFETIME_DAYS", 365, minimum=1, maximum=3650)
OMIKEYS_LAST_USED_INTERVAL = env_int("OMIKEYS_LAST_USED_INTERVAL", 60, minimum=0, maximum=86400)
OMIKEYS_KEY_CREATION_RATE = env_rate("OMIKEYS_KEY_CREATION_RATE", "20/hour")
OMIKEYS_FAILED_VERIFICATION_RATE = env_rate("OMIKEYS_FAILED_VERIFICATION_RATE", "30/minute")
# How many proxies in front of omikeys append to X-Forwarded-For. 0: the client's
# address is the connection's. Used for the audit log and per-address throttles.
OMIKEYS_NUM_PROXIES = env_int("OMIKEYS_NUM_PROXIES", 0, maximum=10)
# On PostgreSQL the key lookup is a prepared statement, once per connection. Turn it off
# behind a pooler that does not keep sessions (PgBouncer in transaction mode).
OMIKEYS_PREPARE_KEY_LOOKUP = env_bool("OMIKEYS_PREPARE_KEY_LOOKUP", default=True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "apikeys.User"

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
        "Create, list, rotate and revoke Omi Developer API keys with "
        "`Authorization: Bearer <Firebase ID token>`, and check a key with "
        "`GET /v1/dev/key` and `Authorization: Bearer <API key>`."
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
    "ENUM_NAME_OVERRIDES": {},
}

LOG_LEVEL = env.str("DJANGO_LOG_LEVEL", default="INFO").strip().upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"DJANGO_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {LOG_LEVEL!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
