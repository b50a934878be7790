"""Who may open the key pages in the admin: staff, with the permission each page needs."""

import pytest
from django.contrib.auth.models import Permission

from apikeys import lifecycle
from apikeys.models import ApiKey

from ..helpers import issue
from .pages import KEY_ADD, KEY_CHANGELIST, key_url, listed, login_url

pytestmark = pytest.mark.django_db


def key_pages(api_key):
    return [KEY_CHANGELIST, KEY_ADD, key_url(api_key), key_url(api_key, "history")]


def test_anonymous_visitors_are_sent_to_the_admin_login(client, alice):
    for url in key_pages(issue(alice).api_key):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == login_url(url)


def test_a_signed_in_user_who_is_not_staff_is_sent_to_the_admin_login(client, django_user_model, alice):
    client.force_login(django_user_model.objects.create_user(username="plain", password="not-used"))
    for url in key_pages(issue(alice).api_key):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == login_url(url)


def test_staff_without_permissions_are_refused_key_pages(client, staff, alice):
    issued = issue(alice)
    client.force_login(staff)

    for url in key_pages(issued.api_key):
        assert client.get(url).status_code == 403, url
    response = client.post(KEY_CHANGELIST, {"action": "revoke_selected", "_selected_action": [str(issued.api_key.pk)]})
    assert response.status_code == 403
    assert lifecycle.verify_key(issued.plaintext).api_key == issued.api_key


def test_staff_with_view_permission_can_look_but_not_revoke_or_issue(client, staff, alice):
    issued = issue(alice)
    staff.user_permissions.add(Permission.objects.get(codename="view_apikey"))
    client.force_login(staff)

    changelist = client.get(KEY_CHANGELIST)
    assert listed(changelist) == {issued.api_key.pk}
    assert changelist.context["action_form"] is None  # neither revoke nor delete is offered
    client.post(KEY_CHANGELIST, {"action": "revoke_selected", "_selected_action": [str(issued.api_key.pk)]})
    assert lifecycle.verify_key(issued.plaintext).api_key == issued.api_key
    assert client.get(KEY_ADD).status_code == 403
    assert client.post(KEY_ADD, {"owner": alice.pk, "name": "Sneaky"}).status_code == 403
    assert ApiKey.objects.count() == 1
