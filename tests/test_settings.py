"""Configuration is read from the environment strictly, with production-safe defaults."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PRINT_SETTINGS = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.DEBUG, s.ALLOWED_HOSTS, s.DATABASES['default']['ENGINE'], s.DATABASES['default']['NAME'])"
)


def run_settings(env: dict, code: str = PRINT_SETTINGS) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "FIREBASE_", "OMIKEYS_", "CACHE_URL"))
    }
    base["DJANGO_SETTINGS_MODULE"] = "omikeys_project.settings"
    base["DJANGO_ENV_FILE"] = ""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**base, **env}, capture_output=True, text=True)


# A key as strong as production needs (tests.test_deploy_checks covers the weak ones).
STRONG_KEY = "settings-test-key-3kq9VZp1rT8wXc2Lm5Nb7Hd4Gf6Js0Ae-Yu"
REQUIRED = {"DJANGO_SECRET_KEY": STRONG_KEY, "FIREBASE_PROJECT_ID": "demo-x"}


def test_defaults_are_production_safe_and_use_sqlite():
    result = run_settings(REQUIRED)
    assert result.returncode == 0, result.stderr
    debug, rest = result.stdout.split(" ", 1)
    assert debug == "False"
    assert "['localhost', '127.0.0.1']" in rest
    assert "sqlite3" in rest and str(ROOT / "db.sqlite3") in rest


def test_postgres_and_hosts_come_from_the_environment():
    result = run_settings(
        {
            **REQUIRED,
            "DATABASE_URL": "postgres://u:p@db.internal:5432/omikeys",
            "DJANGO_ALLOWED_HOSTS": "a.example, b.example",
        }
    )
    assert result.returncode == 0, result.stderr
    assert "['a.example', 'b.example'] apikeys.backends.postgresql omikeys" in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FIREBASE_PROJECT_ID": "demo-x"}, "DJANGO_SECRET_KEY is required"),
        ({"DJANGO_SECRET_KEY": STRONG_KEY}, "FIREBASE_PROJECT_ID is required"),
        ({**REQUIRED, "DJANGO_DEBUG": "ture"}, "DJANGO_DEBUG must be one of"),
        ({**REQUIRED, "DJANGO_LOG_LEVEL": "LOUD"}, "DJANGO_LOG_LEVEL must be"),
        ({**REQUIRED, "OMIKEYS_MAX_ACTIVE_KEYS": "fifty"}, "OMIKEYS_MAX_ACTIVE_KEYS must be a whole number"),
        ({**REQUIRED, "OMIKEYS_MAX_ACTIVE_KEYS": "0"}, "OMIKEYS_MAX_ACTIVE_KEYS must be at least 1"),
        ({**REQUIRED, "OMIKEYS_LAST_USED_INTERVAL": "60s"}, "OMIKEYS_LAST_USED_INTERVAL must be a whole number"),
        ({**REQUIRED, "OMIKEYS_MAX_KEY_LIFETIME_DAYS": "4000"}, "between 1 and 3650"),
        (
            {**REQUIRED, "OMIKEYS_KEY_CREATION_RATE": "20 per hour"},
            "OMIKEYS_KEY_CREATION_RATE must look like 20/minute",
        ),
        (
            {**REQUIRED, "OMIKEYS_FAILED_VERIFICATION_RATE": "0/minute"},
            "OMIKEYS_FAILED_VERIFICATION_RATE must look like",
        ),
        ({**REQUIRED, "OMIKEYS_FAILED_VERIFICATION_RATE": "5/week"}, "OMIKEYS_FAILED_VERIFICATION_RATE must look like"),
        ({**REQUIRED, "CACHE_URL": "nosuchcache://x"}, "Invalid cache schema"),
        ({**REQUIRED, "OMIKEYS_WEBHOOK_RETRY_SCHEDULE": "5s,5m"}, "RETRY_SCHEDULE must be a comma list"),
        ({**REQUIRED, "OMIKEYS_WEBHOOK_RETRY_SCHEDULE": ","}, "OMIKEYS_WEBHOOK_RETRY_SCHEDULE needs at least one"),
        ({**REQUIRED, "OMIKEYS_WEBHOOK_RETRY_SCHEDULE": "5,-1"}, "each between 0 and 604800"),
        ({**REQUIRED, "OMIKEYS_WEBHOOK_TIMEOUT": "0"}, "OMIKEYS_WEBHOOK_TIMEOUT must be between"),
        (
            {**REQUIRED, "OMIKEYS_WEBHOOK_TIMEOUT": "30", "OMIKEYS_WEBHOOK_LEASE_SECONDS": "60"},
            "OMIKEYS_WEBHOOK_LEASE_SECONDS must be more than twice OMIKEYS_WEBHOOK_TIMEOUT",
        ),
        ({**REQUIRED, "OMIKEYS_WEBHOOK_ALLOWED_NETWORKS": "intranet"}, "OMIKEYS_WEBHOOK_ALLOWED_NETWORKS must list"),
        ({**REQUIRED, "OMIKEYS_WEBHOOK_ALLOW_HTTP": "sometimes"}, "OMIKEYS_WEBHOOK_ALLOW_HTTP must be one of"),
        # Shorter than the key.expired pass's 7-day memory: expiries would be reported again.
        ({**REQUIRED, "OMIKEYS_WEBHOOK_RETENTION_DAYS": "7"}, "OMIKEYS_WEBHOOK_RETENTION_DAYS must be"),
        ({**REQUIRED, "OMIKEYS_WEBHOOK_SECRET_GRACE_HOURS": "169"}, "OMIKEYS_WEBHOOK_SECRET_GRACE_HOURS must be"),
        # Over plain http anyone on the path could publish keys and sign alerts revoking any key.
        (
            {**REQUIRED, "OMIKEYS_GITHUB_KEYS_URL": "http://api.github.com/meta/public_keys/secret_scanning"},
            "OMIKEYS_GITHUB_KEYS_URL must start with https://",
        ),
        (
            {**REQUIRED, "FIREBASE_PROJECT_ID": "omi-prod", "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099"},
            "must then be a 'demo-' project",
        ),
    ],
)
def test_bad_configuration_fails_at_start_with_a_clear_message(env, message):
    result = run_settings(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_settings_can_come_from_an_env_file(tmp_path):
    env_file = tmp_path / "omikeys.env"
    env_file.write_text(
        f"DJANGO_SECRET_KEY=from-file-{STRONG_KEY}\nFIREBASE_PROJECT_ID=demo-file\nDJANGO_ALLOWED_HOSTS=file.example\n"
    )
    result = run_settings({"DJANGO_ENV_FILE": str(env_file), "DJANGO_ALLOWED_HOSTS": "env.example"})
    assert result.returncode == 0, result.stderr
    assert "['env.example']" in result.stdout  # the environment wins over the file


def test_debug_mode_needs_no_secret_key():
    result = run_settings({"DJANGO_DEBUG": "true", "FIREBASE_PROJECT_ID": "demo-x"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("True ")


WEB_SETTINGS = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(repr((s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, getattr(s, 'SECURE_PROXY_SSL_HEADER', None), "
    "s.CSRF_TRUSTED_ORIGINS, s.FIREBASE_WEB_API_KEY, s.FIREBASE_AUTH_DOMAIN)))"
)


def web_settings(env: dict):
    result = run_settings(env, WEB_SETTINGS)
    assert result.returncode == 0, result.stderr
    return ast.literal_eval(result.stdout)


def test_web_defaults_are_secure_cookies_and_no_proxy_trust():
    assert web_settings(REQUIRED) == (True, True, None, [], "", "demo-x.firebaseapp.com")


def test_web_settings_come_from_the_environment():
    env = {
        **REQUIRED,
        "DJANGO_SECURE_COOKIES": "false",
        "DJANGO_BEHIND_TLS_PROXY": "true",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://keys.example.com, https://b.example",
        "FIREBASE_WEB_API_KEY": "AIza-public",
        "FIREBASE_AUTH_DOMAIN": "login.example.com",
    }
    assert web_settings(env) == (
        False,
        False,
        ("HTTP_X_FORWARDED_PROTO", "https"),
        ["https://keys.example.com", "https://b.example"],
        "AIza-public",
        "login.example.com",
    )


def test_the_emulator_needs_no_web_api_key():
    settings = web_settings({**REQUIRED, "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099"})
    assert settings[4] == "demo-api-key"


def test_debug_mode_sends_cookies_over_plain_http():
    assert web_settings({"DJANGO_DEBUG": "true", "FIREBASE_PROJECT_ID": "demo-x"})[:2] == (False, False)


@pytest.mark.parametrize("name", ["DJANGO_SECURE_COOKIES", "DJANGO_BEHIND_TLS_PROXY"])
def test_web_booleans_are_strict(name):
    result = run_settings({**REQUIRED, name: "maybe"})
    assert result.returncode != 0 and f"{name} must be one of" in result.stderr


def test_manage_py_reports_bad_configuration_without_a_traceback():
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "FIREBASE_", "OMIKEYS_", "CACHE_URL"))
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**base, "DJANGO_ENV_FILE": "", "FIREBASE_PROJECT_ID": "demo-x"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "error: DJANGO_SECRET_KEY is required" in result.stderr
    assert "Traceback" not in result.stderr


def test_key_limits_have_defaults_and_come_from_the_environment():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.OMIKEYS_MAX_ACTIVE_KEYS, s.OMIKEYS_MAX_KEY_LIFETIME_DAYS, s.OMIKEYS_LAST_USED_INTERVAL, "
        "s.OMIKEYS_KEY_CREATION_RATE, s.OMIKEYS_FAILED_VERIFICATION_RATE, s.OMIKEYS_NUM_PROXIES, "
        "s.CACHES['default']['BACKEND'])"
    )
    result = run_settings(REQUIRED, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        *("50", "365", "60", "(20,", "3600)", "(30,", "60)", "0"),
        "django.core.cache.backends.locmem.LocMemCache",
    ]
    changed = {
        "OMIKEYS_MAX_ACTIVE_KEYS": "5",
        "OMIKEYS_MAX_KEY_LIFETIME_DAYS": "90",
        "OMIKEYS_LAST_USED_INTERVAL": "0",
        "OMIKEYS_KEY_CREATION_RATE": "3/Day",
        "OMIKEYS_FAILED_VERIFICATION_RATE": "100/second",
        "OMIKEYS_NUM_PROXIES": "1",
        "CACHE_URL": "redis://cache.internal:6379/0",
    }
    result = run_settings({**REQUIRED, **changed}, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        *("5", "90", "0", "(3,", "86400)", "(100,", "1)", "1"),
        "apikeys.cache.ResilientRedisCache",
    ]


def test_every_variable_settings_reads_is_documented():
    source = (ROOT / "omikeys_project" / "settings.py").read_text()
    helpers = r"env(?:_bool|_int|_rate|_required|_networks|_seconds|\.\w+)"
    names = set(re.findall(helpers + r'\(\s*"([A-Z][A-Z0-9_]+)"', source))
    assert {"DJANGO_SECRET_KEY", "OMIKEYS_MAX_ACTIVE_KEYS", "CACHE_URL"} <= names
    example = (ROOT / ".env.example").read_text()
    table = (ROOT / "docs" / "configuration.md").read_text()
    assert not {name for name in names if name not in example}, "missing from .env.example"
    assert not {name for name in names if f"| `{name}` |" not in table}, "missing from docs/configuration.md"


def test_database_connections_are_kept_unless_the_url_says_otherwise():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['CONN_MAX_AGE'], s.DATABASES['default']['CONN_HEALTH_CHECKS'])"
    )
    assert run_settings(REQUIRED, code).stdout.split() == ["60", "False"]
    pinned = run_settings({**REQUIRED, "DATABASE_URL": "postgres://u@db.internal/omikeys?conn_max_age=0"}, code)
    assert pinned.stdout.split() == ["0", "False"]


def test_webhook_defaults_are_production_safe():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.OMIKEYS_WEBHOOK_ALLOW_HTTP, s.OMIKEYS_WEBHOOK_ALLOWED_NETWORKS, s.OMIKEYS_WEBHOOK_TIMEOUT, "
        "s.OMIKEYS_WEBHOOK_RETRY_SCHEDULE, s.Q_CLUSTER['orm'])"
    )
    result = run_settings(REQUIRED, code)
    assert result.stdout.strip() == "False [] 10 [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0] default"
