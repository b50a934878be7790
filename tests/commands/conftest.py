"""Fixtures for the management commands: a Firebase that cannot be reached."""

import pytest

from apikeys import firebase

from ..helpers import free_port


@pytest.fixture
def closed_port():
    """A local port nothing listens on, so connecting is refused at once."""
    return free_port()


@pytest.fixture
def firebase_unreachable(monkeypatch, closed_port):
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", f"127.0.0.1:{closed_port}")
    firebase.reset_app()
