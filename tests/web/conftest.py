"""Fixtures for the end-user pages: a person signed in with a real emulator account."""

import pytest

from .pages import sign_in


@pytest.fixture
def person(client):
    return sign_in(client)
