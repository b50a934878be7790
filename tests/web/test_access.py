"""Who may see the key pages: anonymous visitors, staff sessions, other people's keys; none is cached."""

import uuid

import pytest
from django.urls import reverse

from apikeys import lifecycle
from apikeys.models import ApiKey, KeyEvent, User

from .pages import firebase_user

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["web:key-list", "web:key-create", "web:notification-settings"])
def test_anonymous_visitors_are_sent_to_sign_in_and_back(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('web:signin')}?next={reverse(name)}"


@pytest.mark.parametrize("name", ["web:key-detail", "web:key-revoke", "web:key-rotate", "web:key-edit"])
def test_anonymous_visitors_cannot_see_rotate_edit_disable_or_revoke_a_key(client, name):
    issued = lifecycle.issue_key(owner=firebase_user(), name="n")
    assert client.get(reverse(name, args=[issued.api_key.pk])).status_code == 302
    assert client.post(reverse("web:key-revoke", args=[issued.api_key.pk])).status_code == 302
    data = {"grace_seconds": 0, "expected_prefix": issued.api_key.key_prefix}
    assert client.post(reverse("web:key-rotate", args=[issued.api_key.pk]), data).status_code == 302
    edit = {"name": "taken over", "scopes": ["memories:write"], "expires_in": "never"}
    assert client.post(reverse("web:key-edit", args=[issued.api_key.pk]), edit).status_code == 302
    assert client.post(reverse("web:key-disable", args=[issued.api_key.pk])).status_code == 302
    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert api_key.revoked_at is None and api_key.rotated_at is None
    assert api_key.name == "n" and not api_key.is_disabled


def test_a_staff_only_account_is_asked_to_sign_in_with_firebase(client, admin_user):
    client.force_login(admin_user)
    response = client.get(reverse("web:key-list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("web:signin"))


def test_a_staff_session_with_a_firebase_uid_is_not_an_end_user(client):
    user = firebase_user()
    User.objects.filter(pk=user.pk).update(is_superuser=True)
    client.force_login(User.objects.get(pk=user.pk))
    assert client.get(reverse("web:key-list")).status_code == 302


def test_another_users_key_is_404_and_stays_active(person):
    theirs = lifecycle.issue_key(owner=firebase_user(), name="theirs")
    for name in ["web:key-detail", "web:key-revoke", "web:key-rotate", "web:key-edit", "web:key-disable"]:
        assert person.get(reverse(name, args=[theirs.api_key.pk])).status_code == 404
    for name in ["web:key-revoke", "web:key-disable", "web:key-enable"]:
        assert person.post(reverse(name, args=[theirs.api_key.pk])).status_code == 404
    edit = {"name": "mine now", "scopes": ["memories:write"], "expires_in": "never"}
    assert person.post(reverse("web:key-edit", args=[theirs.api_key.pk]), edit).status_code == 404
    rotate = {"grace_seconds": 0, "expected_prefix": theirs.api_key.key_prefix}
    assert person.post(reverse("web:key-rotate", args=[theirs.api_key.pk]), rotate).status_code == 404
    assert lifecycle.verify_key(theirs.plaintext).api_key is not None
    assert ApiKey.objects.get(pk=theirs.api_key.pk).key_prefix == theirs.api_key.key_prefix
    assert ApiKey.objects.get(pk=theirs.api_key.pk).name == "theirs"
    assert not KeyEvent.objects.filter(api_key=theirs.api_key).exclude(action=KeyEvent.Action.CREATED).exists()


def test_an_unknown_key_id_is_404(person):
    assert person.get(reverse("web:key-detail", args=[uuid.uuid4()])).status_code == 404
    assert person.get("/keys/not-a-uuid/").status_code == 404


def test_signed_in_pages_are_never_cached(person):
    issued = lifecycle.issue_key(owner=person.user, name="n")
    urls = [reverse("web:key-list"), reverse("web:key-create"), reverse("web:signin")]
    urls.append(reverse("web:notification-settings"))
    urls += [
        reverse(name, args=[issued.api_key.pk])
        for name in ["web:key-detail", "web:key-rotate", "web:key-revoke", "web:key-edit"]
    ]
    for url in urls:
        assert "no-store" in person.get(url)["Cache-Control"]
