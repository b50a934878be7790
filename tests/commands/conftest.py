"""Fixtures for the management commands: key owners known to Firebase, and a Firebase that cannot be reached."""

import pytest

from apikeys import firebase

from .. import firebase_emulator
from ..helpers import free_port, make_owner


@pytest.fixture
def closed_port():
    """A local port nothing listens on, so connecting is refused at once."""
    return free_port()


@pytest.fixture
def firebase_unreachable(monkeypatch, closed_port):
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", f"127.0.0.1:{closed_port}")
    firebase.reset_app()


@pytest.fixture
def owner(request):
    """The local key owner (``pytest.mark.owner`` names it), and its Firebase account: enabled, address verified.

    The commands ask Firebase about an owner before giving it a secret, so the account
    must exist there too; it is put back in this state at the start of every test.
    """
    marker = request.node.get_closest_marker("owner")
    uid, email = (marker.args[0], marker.args[1]) if marker else ("key-owner", "key-owner@example.com")
    firebase_emulator.ensure_account(uid, email)
    return make_owner(uid, email)
