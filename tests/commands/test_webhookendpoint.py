"""manage.py webhookendpoint: add (secret shown once), list, disable, enable, rotate-secret."""

import re

import pytest
from django.core.management.base import CommandError

from apikeys import webhooks
from apikeys.models import WebhookEndpoint

from .running import run

pytestmark = pytest.mark.django_db

SECRET_RE = re.compile(r"whsec_[A-Za-z0-9+/=]{32}")


def test_add_registers_and_prints_the_secret_once():
    out, _ = run("webhookendpoint", "add", "http://127.0.0.1:9/hook", "--events", "key.created,key.revoked")

    endpoint = WebhookEndpoint.objects.get()
    secret = SECRET_RE.search(out).group(0)
    assert webhooks.decrypt_secret(endpoint.secret_encrypted) == secret
    assert endpoint.event_types == ["key.created", "key.revoked"]
    listing, _ = run("webhookendpoint", "list")
    assert secret not in listing
    assert f"{endpoint.pk}\tenabled\tkey.created,key.revoked\thttp://127.0.0.1:9/hook" in listing


def test_add_all_subscribes_to_every_type():
    run("webhookendpoint", "add", "http://127.0.0.1:9/hook", "--events", "all")
    assert WebhookEndpoint.objects.get().event_types == [
        "key.created", "key.updated", "key.rotated", "key.revoked", "key.disabled", "key.enabled", "key.expired",
        "key.leaked", "user.keys_revoked", "user.erased",
    ]  # fmt: skip


def test_a_refused_url_or_type_is_a_clear_error(settings):
    settings.OMIKEYS_WEBHOOK_ALLOWED_NETWORKS = []
    with pytest.raises(CommandError, match="url: 127.0.0.1 resolves to 127.0.0.1") as error:
        run("webhookendpoint", "add", "http://127.0.0.1:9/hook", "--events", "key.nope")
    assert "event_types: Unknown event type key.nope" in str(error.value)
    assert WebhookEndpoint.objects.count() == 0


def test_disable_enable_and_rotate():
    endpoint, old = webhooks.register_endpoint("http://127.0.0.1:9/hook", ["key.created"])

    assert run("webhookendpoint", "disable", str(endpoint.pk))[0].startswith(f"{endpoint.pk}: disabled")
    assert run("webhookendpoint", "disable", str(endpoint.pk))[0].startswith(f"{endpoint.pk}: already disabled")
    assert "disabled (Disabled with manage.py webhookendpoint)" in run("webhookendpoint", "list")[0]
    assert run("webhookendpoint", "enable", str(endpoint.pk))[0].startswith(f"{endpoint.pk}: enabled")
    out, _ = run("webhookendpoint", "rotate-secret", str(endpoint.pk))
    new = SECRET_RE.search(out).group(0)
    endpoint.refresh_from_db()
    assert new != old and webhooks.decrypt_secret(endpoint.secret_encrypted) == new


def test_rotate_secret_takes_a_grace_period():
    endpoint, old = webhooks.register_endpoint("http://127.0.0.1:9/hook", ["key.created"])

    out, _ = run("webhookendpoint", "rotate-secret", str(endpoint.pk))
    assert "the old one also signs until" in out
    out, _ = run("webhookendpoint", "rotate-secret", str(endpoint.pk), "--grace-hours", "0")
    assert "the old one no longer signs" in out
    endpoint.refresh_from_db()
    assert endpoint.previous_secret_encrypted == "" and endpoint.previous_secret_expires_at is None
    with pytest.raises(CommandError, match="between 0 and 168 hours"):
        run("webhookendpoint", "rotate-secret", str(endpoint.pk), "--grace-hours", "200")


def test_an_unknown_id_is_a_clear_error():
    with pytest.raises(CommandError, match="No webhook endpoint has id 999"):
        run("webhookendpoint", "disable", "999")


def test_list_with_no_endpoints_says_how_to_add_one():
    assert "Register one with" in run("webhookendpoint", "list")[0]
