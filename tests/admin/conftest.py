"""Fixtures for the staff door: two key owners and a staff member with no permissions of their own."""

import pytest

from apikeys.models import User


@pytest.fixture
def alice():
    return User.objects.for_firebase("uid-alice", "alice@example.com")


@pytest.fixture
def bob():
    return User.objects.for_firebase("uid-bob", "bob@example.com")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="staff", password="not-used", is_staff=True)
