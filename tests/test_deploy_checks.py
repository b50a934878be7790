"""Production settings: `check --deploy` is clean when configured as documented; weak secret keys stop the service."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATED_KEY = secrets.token_urlsafe(50)  # what the error message tells operators to run

# docs/deployment.md's production environment, behind a TLS-terminating proxy.
PRODUCTION = {
    "DJANGO_SECRET_KEY": GENERATED_KEY,
    "DJANGO_ALLOWED_HOSTS": "keys.example.com",
    "FIREBASE_PROJECT_ID": "omi-prod",
    "DJANGO_BEHIND_TLS_PROXY": "true",
    "DJANGO_SECURE_SSL_REDIRECT": "true",
    "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "DJANGO_SECURE_HSTS_PRELOAD": "true",
    "EMAIL_URL": "smtp+tls://omikeys:choose-a-password@smtp.example.com:587",
    "DEFAULT_FROM_EMAIL": "Omi API keys <keys@example.com>",
    "OMIKEYS_PUBLIC_URL": "https://keys.example.com",
}


def python(env: dict, *args: str) -> subprocess.CompletedProcess:
    """Python in the project folder with only ``env`` for settings (none of the test run's)."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "FIREBASE_", "OMIKEYS_", "CACHE_URL", "EMAIL_", "DEFAULT_FROM"))
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**base, "DJANGO_ENV_FILE": "", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return python(env, "manage.py", *args)


def check_deploy(env: dict) -> subprocess.CompletedProcess:
    return manage(env, "check", "--deploy", "--fail-level", "WARNING")


def test_production_configured_as_documented_has_no_deploy_warnings():
    result = check_deploy(PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("left_out", "warning"),
    [
        ("DJANGO_SECURE_HSTS_SECONDS", "security.W004"),
        ("DJANGO_SECURE_SSL_REDIRECT", "security.W008"),
        ("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", "security.W005"),
        ("DJANGO_SECURE_HSTS_PRELOAD", "security.W021"),
    ],
)
def test_each_setting_left_out_brings_back_its_warning(left_out, warning):
    result = check_deploy({k: v for k, v in PRODUCTION.items() if k != left_out})
    assert result.returncode == 1
    assert warning in result.stderr
    assert result.stderr.count("security.W") == 1, result.stderr


def test_the_headers_follow_the_settings():
    code = (
        "import django; django.setup(); from django.test import Client; "
        "r = Client().get('/v1/dev/keys', secure=True); print(r.headers.get('Strict-Transport-Security')); "
        "r = Client().get('/v1/dev/keys'); print(r.status_code, r.headers.get('Location')); "
        "print(*(Client().get(path).status_code for path in ('/healthz', '/readyz', '/metrics')))"
    )
    env = {**PRODUCTION, "DJANGO_ALLOWED_HOSTS": "testserver", "DJANGO_SETTINGS_MODULE": "omikeys_project.settings"}
    result = python(env, "-c", code)
    assert result.returncode == 0, result.stderr
    hsts, redirect, probes = result.stdout.splitlines()
    assert hsts == "max-age=31536000; includeSubDomains; preload"
    assert redirect == "301 https://testserver/v1/dev/keys"
    # Load balancers and Prometheus may probe these over plain HTTP on the internal address.
    assert "301" not in probes.split(), probes


def test_the_nginx_site_leaves_hsts_to_django():
    """One Strict-Transport-Security header, Django's (DJANGO_SECURE_HSTS_*), not a second from nginx."""
    from django.conf import settings

    for conf in (settings.BASE_DIR / "deploy" / "nginx").glob("*.conf"):
        assert "strict-transport-security" not in conf.read_text().lower(), conf


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("s3cret", "it has 6 characters; at least 50 are needed"),
        ("x" * 49, "it has 49 characters; at least 50 are needed"),
        ("ab" * 40, "fewer than 5 different characters"),
        ("django-insecure-" + GENERATED_KEY, "django-insecure-"),
        ("change-me-to-a-long-random-string-" + GENERATED_KEY, "placeholder"),
        ("CHANGEME" + GENERATED_KEY, "placeholder"),
        ("password" * 7, "it repeats a pattern of 8 characters"),
        ("0123456789" * 5, "it repeats a pattern of 10 characters"),
        ("Tr0ub4dor&3" * 5 + "Tr0u", "it repeats a pattern of 11 characters"),
        ("a" * 55 + "bcdefg", "too regular"),
        ("".join(f"password{n}" for n in range(10)), "too regular"),
    ],
    ids=[
        "short",
        "49-characters",
        "two-characters",
        "django-insecure",
        "env-example-placeholder",
        "changeme",
        "password-repeated",
        "digits-repeated",
        "repeated-with-a-partial-tail",
        "one-letter-then-a-few",
        "numbered-words",
    ],
)
def test_production_refuses_to_start_with_a_weak_secret_key(key, reason):
    result = check_deploy({**PRODUCTION, "DJANGO_SECRET_KEY": key})
    assert result.returncode == 1
    assert "DJANGO_SECRET_KEY is too weak for production" in result.stderr
    assert reason in result.stderr
    assert "secrets.token_urlsafe(50)" in result.stderr  # how to make a good one
    assert key not in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_mode_accepts_a_short_development_key():
    result = manage({"DJANGO_DEBUG": "true", "FIREBASE_PROJECT_ID": "demo-x", "DJANGO_SECRET_KEY": "dev"}, "check")
    assert result.returncode == 0, result.stderr


def test_random_keys_of_every_common_kind_pass_the_pattern_checks():
    from omikeys_project.settings import weak_secret_key

    for _ in range(200):
        for key in (secrets.token_urlsafe(50), secrets.token_hex(25), secrets.token_urlsafe(38)):
            assert weak_secret_key(key) is None, key


def test_a_generated_key_of_the_documented_kind_is_accepted():
    for _ in range(3):
        result = manage({**PRODUCTION, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}, "check")
        assert result.returncode == 0, result.stderr
