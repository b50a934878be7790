"""The mail settings: EMAIL_URL's forms, what production requires beside it, and the links' base address."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STRONG_KEY = "notices-settings-key-7Hq2Lx9Vb4Tn1Pw6Zc3Mr8Kd5Fs0Gj-Ye"
PRODUCTION = {"DJANGO_SECRET_KEY": STRONG_KEY, "FIREBASE_PROJECT_ID": "demo-x"}
SHOW = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.OMIKEYS_SEND_EMAIL, s.EMAIL_BACKEND, s.EMAIL_HOST, s.EMAIL_PORT, getattr(s, 'EMAIL_USE_TLS', False), "
    "s.EMAIL_TIMEOUT, s.DEFAULT_FROM_EMAIL.replace(' ', '_'), s.OMIKEYS_PUBLIC_URL or '-', "
    "s.OMIKEYS_NOTICE_RETRY_SCHEDULE)"
)
PREFIXES = ("DJANGO_", "DATABASE_URL", "FIREBASE_", "OMIKEYS_", "CACHE_URL", "EMAIL_", "DEFAULT_FROM_EMAIL")


def settings_of(env: dict) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    base.update(DJANGO_SETTINGS_MODULE="omikeys_project.settings", DJANGO_ENV_FILE="")
    return subprocess.run(
        [sys.executable, "-c", SHOW], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def test_production_without_email_url_sends_no_mail():
    result = settings_of(PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "False"
    assert result.stdout.split()[7] == "-"


def test_development_prints_mail_and_links_to_the_local_server():
    result = settings_of({**PRODUCTION, "DJANGO_DEBUG": "true"})
    assert result.returncode == 0, result.stderr
    values = result.stdout.split()
    assert values[:2] == ["True", "django.core.mail.backends.console.EmailBackend"]
    assert values[7] == "http://127.0.0.1:8000"


def test_an_smtp_url_with_its_companions_configures_django_s_smtp_backend():
    result = settings_of(
        {
            **PRODUCTION,
            "EMAIL_URL": "smtp+tls://omikeys:s3cret@smtp.example.com:587",
            "DEFAULT_FROM_EMAIL": "Omi API keys <keys@example.com>",
            "OMIKEYS_PUBLIC_URL": "https://keys.example.com/",
            "EMAIL_TIMEOUT": "4.5",
            "OMIKEYS_NOTICE_RETRY_SCHEDULE": "30,600",
        }
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "True",
        "django.core.mail.backends.smtp.EmailBackend",
        "smtp.example.com",
        "587",
        "True",
        "4.5",
        "Omi_API_keys_<keys@example.com>",
        "https://keys.example.com",
        "[30.0,",
        "600.0]",
    ]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EMAIL_URL": "carrier-pigeon://coop"}, "EMAIL_URL must look like smtp://"),
        (
            {"EMAIL_URL": "smtp://smtp.example.com:25", "DEFAULT_FROM_EMAIL": "keys@example.com"},
            "EMAIL_URL is set, so OMIKEYS_PUBLIC_URL is required too",
        ),
        (
            {"EMAIL_URL": "smtp://smtp.example.com:25", "OMIKEYS_PUBLIC_URL": "https://keys.example.com"},
            "EMAIL_URL is set, so DEFAULT_FROM_EMAIL is required too",
        ),
        ({"OMIKEYS_PUBLIC_URL": "http://keys.example.com"}, "OMIKEYS_PUBLIC_URL must start with https://"),
        ({"OMIKEYS_PUBLIC_URL": "keys.example.com"}, "OMIKEYS_PUBLIC_URL must be the web pages' address"),
        ({"OMIKEYS_PUBLIC_URL": "https://keys.example.com/?a=1"}, "OMIKEYS_PUBLIC_URL must be the web pages' address"),
        ({"EMAIL_TIMEOUT": "0"}, "EMAIL_TIMEOUT must be between 0.1 and 60 seconds"),
        ({"OMIKEYS_NOTICE_RETRY_SCHEDULE": "soon"}, "OMIKEYS_NOTICE_RETRY_SCHEDULE must be a comma list"),
    ],
)
def test_bad_mail_settings_stop_the_service_with_a_message_naming_them(env, message):
    result = settings_of({**PRODUCTION, **env})
    assert result.returncode != 0
    assert message in result.stderr
    assert "s3cret" not in result.stderr


def test_a_loopback_public_url_may_use_http_for_local_production_like_runs():
    result = settings_of({**PRODUCTION, "OMIKEYS_PUBLIC_URL": "http://127.0.0.1:8000"})
    assert result.returncode == 0, result.stderr
