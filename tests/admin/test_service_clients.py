"""The admin of service clients: added with the token shown once, permissions changed, rotated, revoked."""

import re

import pytest
from django.contrib.sessions.models import Session
from django.urls import reverse

from apikeys import lifecycle
from apikeys.models import ServiceClient

from ..helpers import service

pytestmark = pytest.mark.django_db

ADD = reverse("admin:apikeys_serviceclient_add")
CHANGELIST = reverse("admin:apikeys_serviceclient_changelist")
TOKEN_RE = re.compile(r"omi_svc_[0-9a-f]{32}")


def test_adding_a_client_shows_its_token_once_and_stores_only_the_hash(admin_client):
    response = admin_client.post(ADD, {"name": " omi-backend ", "can_verify_keys": "on", "can_act_on_users": "on"})

    assert response.status_code == 200
    assert [template.name for template in response.templates][0] == "admin/apikeys/serviceclient/issued.html"
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    shown = TOKEN_RE.findall(response.content.decode())
    assert len(shown) == 1
    client = ServiceClient.objects.get()
    assert lifecycle.find_service_client(shown[0]) == client
    assert (client.name, client.permission_names) == ("omi-backend", ["verify_keys", "act_on_users"])
    # Never in the session (and so never in the messages cookie or table).
    assert not any(shown[0] in str(session.get_decoded()) for session in Session.objects.all())
    assert (
        shown[0]
        not in admin_client.get(reverse("admin:apikeys_serviceclient_change", args=[client.pk])).content.decode()
    )


def test_a_taken_or_empty_name_is_refused_on_the_form(admin_client):
    service(name="taken")

    taken = admin_client.post(ADD, {"name": "taken"})
    empty = admin_client.post(ADD, {"name": "   "})

    assert "A service client with this name exists." in taken.content.decode()
    assert ServiceClient.objects.count() == 1
    assert empty.status_code == 200 and not TOKEN_RE.search(empty.content.decode())


def test_rotating_shows_the_new_token_once_and_the_old_one_stops(admin_client):
    client = service("verify_keys", name="rotated")

    response = admin_client.post(CHANGELIST, {"action": "rotate_token", "_selected_action": [client.service_client.pk]})

    shown = TOKEN_RE.findall(response.content.decode())
    assert len(shown) == 1 and shown[0] != client.token
    assert lifecycle.find_service_client(client.token) is None
    assert lifecycle.find_service_client(shown[0]) == client.service_client


def test_revoking_stops_the_token(admin_client):
    client = service("verify_keys", name="revoked")

    admin_client.post(CHANGELIST, {"action": "revoke_selected", "_selected_action": [client.service_client.pk]})

    assert lifecycle.find_service_client(client.token) is None
    assert ServiceClient.objects.get().is_revoked


def test_permissions_change_on_the_clients_page(admin_client):
    client = service("verify_keys", name="changing").service_client
    url = reverse("admin:apikeys_serviceclient_change", args=[client.pk])

    admin_client.post(url, {"name": "changing", "can_read_user_keys": "on"})

    client.refresh_from_db()
    assert client.permission_names == ["read_user_keys"]


def test_clients_cannot_be_deleted(admin_client):
    client = service(name="kept").service_client

    response = admin_client.get(reverse("admin:apikeys_serviceclient_delete", args=[client.pk]))

    assert response.status_code == 403


@pytest.mark.parametrize(
    "name",
    ["   ", "line\nbreak", "abc\u202eevil", "token omi_svc_" + "a" * 32, "key omi_dev_" + "b" * 32],
)
def test_a_client_cannot_be_renamed_on_its_page_to_a_name_the_add_form_refuses(admin_client, name):
    client = service("verify_keys", name="renamed").service_client
    url = reverse("admin:apikeys_serviceclient_change", args=[client.pk])

    response = admin_client.post(url, {"name": name, "can_verify_keys": "on"})

    assert response.status_code == 200  # the form again, with the error
    assert response.context["adminform"].form.errors["name"]
    client.refresh_from_db()
    assert client.name == "renamed"
