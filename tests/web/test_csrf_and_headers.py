"""What every page carries: CSRF checks on each form, the content security policy, HTML 404s."""

import re

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from apikeys import lifecycle
from apikeys.models import ApiKey, NotificationSettings

from .. import firebase_emulator
from .pages import sign_in

pytestmark = pytest.mark.django_db


def test_every_form_needs_its_csrf_token():
    client = sign_in(Client(enforce_csrf_checks=True))
    issued = lifecycle.issue_key(owner=client.user, name="n")
    posts = {
        reverse("web:key-create"): {"name": "x", "scopes": ["memories:read"], "form_token": "t"},
        reverse("web:key-rotate", args=[issued.api_key.pk]): {
            "grace_seconds": 0,
            "expected_prefix": issued.api_key.key_prefix,
        },
        reverse("web:key-edit", args=[issued.api_key.pk]): {"name": "changed", "scopes": ["memories:write"]},
        reverse("web:key-disable", args=[issued.api_key.pk]): {},
        reverse("web:notification-settings"): {},
        reverse("web:key-revoke", args=[issued.api_key.pk]): {},
        reverse("web:signout"): {},
        reverse("web:signin"): {"id_token": firebase_emulator.sign_up().id_token},
    }
    for url, data in posts.items():
        response = client.post(url, data)
        assert response.status_code == 403, url
        assert "That form has expired" in response.content.decode()
    assert ApiKey.objects.count() == 1 and lifecycle.verify_key(issued.plaintext).api_key is not None
    assert ApiKey.objects.get().rotated_at is None
    assert ApiKey.objects.get().name == "n" and not ApiKey.objects.get().is_disabled
    assert not NotificationSettings.objects.exists()
    lifecycle.disable_key(issued.api_key)
    assert client.post(reverse("web:key-enable", args=[issued.api_key.pk])).status_code == 403
    assert ApiKey.objects.get().is_disabled
    assert client.get(reverse("web:key-list")).status_code == 200  # still signed in


@pytest.mark.parametrize("page", ["edit", "detail", "settings"])
def test_the_new_forms_accept_the_csrf_token_from_their_page(page):
    client = sign_in(Client(enforce_csrf_checks=True))
    issued = lifecycle.issue_key(owner=client.user, name="n")
    url, post_to, data = {
        "edit": (reverse("web:key-edit", args=[issued.api_key.pk]),) * 2 + ({"name": "m", "scopes": ["goals:read"]},),
        "detail": (
            reverse("web:key-detail", args=[issued.api_key.pk]),
            reverse("web:key-disable", args=[issued.api_key.pk]),
            {},
        ),
        "settings": (reverse("web:notification-settings"),) * 2 + ({"expired": "on"},),
    }[page]
    html = client.get(url).content.decode().split("<main", 1)[1]
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    assert client.post(post_to, {"csrfmiddlewaretoken": csrf, **data}).status_code == 302
    api_key = ApiKey.objects.get()
    assert (api_key.name, api_key.is_disabled) == {"edit": ("m", False), "detail": ("n", True)}.get(page, ("n", False))


def test_admin_csrf_failures_keep_djangos_own_page(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(reverse("admin:apikeys_scope_add"), {"code": "x:y", "description": "d"})
    assert response.status_code == 403
    assert "That form has expired" not in response.content.decode()
    assert "CSRF verification failed" in response.content.decode()


def test_a_csrf_token_from_the_page_is_accepted():
    client = sign_in(Client(enforce_csrf_checks=True))
    page = client.get(reverse("web:key-create")).content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    token = re.search(r'name="form_token" value="([^"]+)"', page).group(1)
    response = client.post(
        reverse("web:key-create"),
        {"csrfmiddlewaretoken": csrf, "name": "n", "scopes": ["memories:read"], "form_token": token},
    )
    assert response.status_code == 200


def test_the_rotate_form_accepts_the_csrf_token_from_its_page():
    client = sign_in(Client(enforce_csrf_checks=True))
    issued = lifecycle.issue_key(owner=client.user, name="n")
    url = reverse("web:key-rotate", args=[issued.api_key.pk])
    page = client.get(url).content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    data = {"csrfmiddlewaretoken": csrf, "grace_seconds": 0, "expected_prefix": issued.api_key.key_prefix}
    response = client.post(url, data)
    assert response.status_code == 200
    assert lifecycle.verify_key(issued.plaintext).api_key is None


def test_web_pages_carry_a_strict_content_security_policy(client, person):
    response = Client().get(reverse("web:signin"))
    policy = response["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    assert f'<script type="importmap" nonce="{nonce}">' in response.content.decode()
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert f"http://{settings.FIREBASE_AUTH_EMULATOR_HOST}" in policy
    assert "Content-Security-Policy" in person.get(reverse("web:key-list"))


def test_outside_emulator_mode_the_policy_allows_only_firebase_endpoints(client, settings):
    settings.FIREBASE_AUTH_EMULATOR_HOST = ""
    policy = client.get(reverse("web:signin"))["Content-Security-Policy"]
    connect = re.search(r"connect-src ([^;]+)", policy).group(1).split()
    assert connect == ["'self'", "https://identitytoolkit.googleapis.com", "https://securetoken.googleapis.com"]


def test_an_unknown_page_is_an_html_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()
