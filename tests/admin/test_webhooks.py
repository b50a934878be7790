"""The admin of webhooks: register with a secret shown once, rotate, disable and enable, redeliver, read events."""

import re

import pytest
from django.urls import reverse
from standardwebhooks.webhooks import Webhook

from apikeys import webhooks
from apikeys.models import Delivery, Event, WebhookEndpoint

from ..helpers import issue, make_owner
from ..webhook_receiver import Receiver
from .pages import messages_of

pytestmark = pytest.mark.django_db

ENDPOINTS = reverse("admin:apikeys_webhookendpoint_changelist")
ADD = reverse("admin:apikeys_webhookendpoint_add")
DELIVERIES = reverse("admin:apikeys_delivery_changelist")
SECRET_RE = re.compile(r"whsec_[A-Za-z0-9+/=]{32}")


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


def test_adding_an_endpoint_shows_its_secret_once(admin_client, receiver):
    response = admin_client.post(
        ADD, {"url": receiver.url, "description": "Omi backend", "event_types": ["key.created", "key.revoked"]}
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"] or "no-cache" in response["Cache-Control"]
    page = response.content.decode()
    secret = SECRET_RE.search(page).group(0)
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.event_types == ["key.created", "key.revoked"]
    assert webhooks.decrypt_secret(endpoint.secret_encrypted) == secret
    assert (
        secret
        not in admin_client.get(reverse("admin:apikeys_webhookendpoint_change", args=[endpoint.pk])).content.decode()
    )
    assert secret not in admin_client.get(ENDPOINTS).content.decode()

    issue(make_owner())
    webhooks.deliver_due()
    [request] = receiver.received
    Webhook(secret).verify(request.body, request.headers)


def test_a_private_url_is_refused_on_the_form(admin_client, settings):
    settings.OMIKEYS_WEBHOOK_ALLOWED_NETWORKS = []

    response = admin_client.post(ADD, {"url": "http://127.0.0.1:8080/hook", "event_types": ["key.created"]})

    assert response.status_code == 200
    assert "webhooks may not call" in response.content.decode()
    assert WebhookEndpoint.objects.count() == 0


def test_no_event_type_is_refused_on_the_form(admin_client, receiver):
    response = admin_client.post(ADD, {"url": receiver.url})
    assert "This field is required" in response.content.decode()
    assert WebhookEndpoint.objects.count() == 0


def test_rotating_shows_the_new_secret_once_and_until_when_the_old_one_signs(admin_client, receiver):
    endpoint, old = webhooks.register_endpoint(receiver.url, ["key.created"])

    response = admin_client.post(ENDPOINTS, {"action": "rotate_secret", "_selected_action": [endpoint.pk]})

    new = SECRET_RE.search(response.content.decode()).group(0)
    assert new != old
    assert "the old one also signs, beside it, until" in response.content.decode()
    issue(make_owner())
    webhooks.deliver_due()
    [request] = receiver.received
    Webhook(new).verify(request.body, request.headers)


def test_disable_and_enable_actions(admin_client, receiver):
    endpoint, _ = webhooks.register_endpoint(receiver.url, ["key.created"])

    response = admin_client.post(
        ENDPOINTS, {"action": "disable_selected", "_selected_action": [endpoint.pk]}, follow=True
    )
    assert "Disabled 1 endpoint." in messages_of(response)
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_reason == "Disabled by admin"

    response = admin_client.post(
        ENDPOINTS, {"action": "enable_selected", "_selected_action": [endpoint.pk]}, follow=True
    )
    assert "Enabled 1 endpoint." in messages_of(response)
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.disabled_at is None


def test_an_endpoint_disabled_after_failures_has_a_notice_on_its_page_and_the_list(admin_client, receiver):
    endpoint, _ = webhooks.register_endpoint(receiver.url, ["key.created"])
    webhooks.disable_endpoint(endpoint, "Every delivery attempt failed for 5 days (last: HTTP 500)")

    page = admin_client.get(reverse("admin:apikeys_webhookendpoint_change", args=[endpoint.pk]))
    listing = admin_client.get(ENDPOINTS)

    assert any("This endpoint was disabled at" in m and "failed for 5 days" in m for m in messages_of(page))
    assert any(receiver.url in m and "Disabled" in m for m in messages_of(listing))
    assert "Disabled: Every delivery attempt failed" in listing.content.decode()


def test_deliveries_show_status_and_redeliver_sends_again(admin_client, receiver):
    webhooks.register_endpoint(receiver.url, ["key.created"])
    issue(make_owner())
    webhooks.deliver_due()
    delivery = Delivery.objects.get()

    listing = admin_client.get(DELIVERIES).content.decode()
    assert "key.created" in listing and "Delivered" in listing and ">200<" in listing

    response = admin_client.post(
        DELIVERIES, {"action": "redeliver_selected", "_selected_action": [delivery.pk]}, follow=True
    )
    assert "Queued 1 delivery to be sent again." in messages_of(response)
    webhooks.deliver_due()
    first, second = receiver.wait_for(2)
    assert first.webhook_id == second.webhook_id
    assert admin_client.get(reverse("admin:apikeys_delivery_change", args=[delivery.pk])).status_code == 200


def test_events_are_read_only(admin_client, receiver):
    webhooks.register_endpoint(receiver.url, ["key.created"])
    issue(make_owner())
    event = Event.objects.get()

    page = admin_client.get(reverse("admin:apikeys_event_change", args=[event.pk]))

    assert page.status_code == 200
    assert "key.created" in page.content.decode()
    assert admin_client.get(reverse("admin:apikeys_event_changelist")).status_code == 200
    assert admin_client.post(reverse("admin:apikeys_event_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    assert Event.objects.count() == 1


def test_the_change_form_edits_url_description_and_types_with_the_same_checks(admin_client, receiver, settings):
    endpoint, _ = webhooks.register_endpoint(receiver.url, ["key.created"])
    url = reverse("admin:apikeys_webhookendpoint_change", args=[endpoint.pk])
    secret_before = endpoint.secret_encrypted

    response = admin_client.post(url, {"url": receiver.url, "description": "new", "event_types": ["key.revoked"]})
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.description, endpoint.event_types) == ("new", ["key.revoked"])
    assert endpoint.secret_encrypted == secret_before

    settings.OMIKEYS_WEBHOOK_ALLOWED_NETWORKS = []
    refused = admin_client.post(url, {"url": "http://10.0.0.5/hook", "event_types": ["key.revoked"]})
    assert "webhooks may not call" in refused.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.url == receiver.url


def test_endpoints_are_disabled_not_deleted(admin_client, receiver):
    endpoint, _ = webhooks.register_endpoint(receiver.url, ["key.created"])
    delete = reverse("admin:apikeys_webhookendpoint_delete", args=[endpoint.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()
