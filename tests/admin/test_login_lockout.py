"""The admin login locks out repeated failures, per account and per address (django-axes), with a clear page."""

import datetime

import pytest
from django.core.management import call_command
from django.urls import reverse

pytestmark = pytest.mark.django_db

PASSWORD = "staff-password-8d1e"
LOGIN = reverse("admin:login")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="ann", password=PASSWORD, is_staff=True, is_superuser=True)


def sign_in(client, username, password, address="198.51.100.20"):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=address)


def assert_signed_in(response):
    assert response.status_code == 302, response.content[:300]
    assert response["Location"] == "/admin/"


def assert_locked(response, client):
    assert response.status_code == 429
    page = response.content.decode()
    assert "Sign-in locked" in page and "Too many failed sign-ins" in page
    assert "axes_reset_username" in page
    assert "_auth_user_id" not in client.session


def test_forty_wrong_passwords_then_the_right_one_is_refused(client, staff):
    for _ in range(40):
        sign_in(client, "ann", "wrong")
    assert_locked(sign_in(client, "ann", PASSWORD), client)


def test_the_lockout_starts_at_the_limit_and_not_before(client, staff, settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    for _ in range(4):
        assert sign_in(client, "ann", "wrong").status_code == 200  # the form again, with its error
    assert_signed_in(sign_in(client, "ann", PASSWORD))
    client.logout()
    # Success cleared the count: four more failures still leave the account open.
    for _ in range(4):
        sign_in(client, "ann", "wrong")
    assert_signed_in(sign_in(client, "ann", PASSWORD))
    client.logout()
    for _ in range(5):
        sign_in(client, "ann", "wrong")
    assert_locked(sign_in(client, "ann", PASSWORD), client)


def test_an_account_is_locked_whatever_address_the_failures_came_from(client, staff):
    for n in range(5):
        sign_in(client, "ann", "wrong", address=f"203.0.113.{n + 1}")
    assert_locked(sign_in(client, "ann", PASSWORD, address="192.0.2.99"), client)


def test_an_address_is_locked_whatever_accounts_it_tried(client, staff, django_user_model):
    django_user_model.objects.create_user(username="bob", password=PASSWORD, is_staff=True)
    for name in ("carol", "dave", "erin", "frank", "grace"):
        sign_in(client, name, "guess", address="203.0.113.50")
    assert_locked(sign_in(client, "bob", PASSWORD, address="203.0.113.50"), client)
    assert_signed_in(sign_in(client, "bob", PASSWORD, address="203.0.113.51"))


def test_the_lockout_ends_after_the_cool_off(client, staff, time_machine):
    time_machine.move_to(datetime.datetime(2027, 5, 1, 9, 0, tzinfo=datetime.UTC), tick=False)
    for _ in range(5):
        sign_in(client, "ann", "wrong")
    time_machine.move_to(datetime.datetime(2027, 5, 1, 9, 14, tzinfo=datetime.UTC), tick=False)
    assert_locked(sign_in(client, "ann", PASSWORD), client)
    time_machine.move_to(datetime.datetime(2027, 5, 1, 9, 30, tzinfo=datetime.UTC), tick=False)
    assert_signed_in(sign_in(client, "ann", PASSWORD))


@pytest.mark.parametrize(
    "command", [["axes_reset"], ["axes_reset_username", "ann"], ["axes_reset_ip", "198.51.100.20"]], ids=" ".join
)
def test_an_operator_can_lift_a_lockout(client, staff, command):
    for _ in range(5):
        sign_in(client, "ann", "wrong")
    assert_locked(sign_in(client, "ann", PASSWORD), client)
    call_command(*command)
    assert_signed_in(sign_in(client, "ann", PASSWORD))


def test_the_limit_and_cool_off_follow_the_settings(client, staff, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        sign_in(client, "ann", "wrong")
    assert_locked(sign_in(client, "ann", PASSWORD), client)


def test_the_web_pages_firebase_sign_in_is_not_counted(client, staff):
    for _ in range(10):
        client.post(reverse("web:signin"), {"id_token": "not-a-token"}, REMOTE_ADDR="198.51.100.20")
    assert_signed_in(sign_in(client, "ann", PASSWORD))


def test_another_accounts_success_from_the_same_address_does_not_clear_the_failures(staff, django_user_model):
    """An attacker guessing bob's password from the address a staff member signs in from keeps counting."""
    from django.test import Client

    django_user_model.objects.create_user(username="bob", password="bob-password-5e2a", is_staff=True)
    attacker, colleague = Client(), Client()
    for _ in range(3):
        sign_in(attacker, "bob", "guess", address="203.0.113.60")
    assert_signed_in(sign_in(colleague, "ann", PASSWORD, address="203.0.113.60"))
    for _ in range(2):
        sign_in(attacker, "bob", "guess", address="203.0.113.60")

    owner = Client()  # bob himself, elsewhere: his account has reached the limit
    assert_locked(sign_in(owner, "bob", "bob-password-5e2a", address="192.0.2.77"), owner)


def test_a_success_still_clears_the_accounts_own_failures(client, staff):
    from django.test import Client

    for _ in range(4):
        sign_in(client, "ann", "wrong", address="203.0.113.61")
    assert_signed_in(sign_in(Client(), "ann", PASSWORD, address="192.0.2.78"))
    for _ in range(4):
        sign_in(client, "ann", "wrong", address="203.0.113.62")
    assert_signed_in(sign_in(Client(), "ann", PASSWORD, address="192.0.2.79"))
