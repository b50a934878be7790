"""createserviceclient, rotateserviceclient and revokeserviceclient: the token printed once, on stdout."""

import re

import pytest
from django.core.management.base import CommandError

from apikeys import lifecycle
from apikeys.models import ServiceClient

from .running import manage, run

pytestmark = pytest.mark.django_db

TOKEN_RE = re.compile(r"^omi_svc_[0-9a-f]{32}$")


def test_createserviceclient_prints_the_token_alone_on_stdout():
    out, err = run("createserviceclient", "omi-backend", "--allow", "verify_keys", "--allow", "read_user_keys")

    token = out.strip()
    assert TOKEN_RE.match(token)
    client = lifecycle.find_service_client(token)
    assert (client.name, client.permission_names) == ("omi-backend", ["verify_keys", "read_user_keys"])
    assert token not in err
    assert "shown only this once" in err and client.token_prefix in err


def test_createserviceclient_refuses_a_taken_name():
    run("createserviceclient", "twice")

    with pytest.raises(CommandError, match="A service client with this name exists"):
        run("createserviceclient", "twice")
    assert ServiceClient.objects.count() == 1


def test_rotateserviceclient_prints_a_new_token_and_the_old_one_stops():
    old = run("createserviceclient", "rotating")[0].strip()

    new = run("rotateserviceclient", "rotating")[0].strip()

    assert TOKEN_RE.match(new) and new != old
    assert lifecycle.find_service_client(old) is None
    assert lifecycle.find_service_client(new).name == "rotating"


def test_revokeserviceclient_revokes_and_says_so_twice():
    token = run("createserviceclient", "revoking")[0].strip()

    first = run("revokeserviceclient", "revoking")[0]
    second = run("revokeserviceclient", "revoking")[0]

    assert "revoking: revoked" in first and "already revoked" in second
    assert lifecycle.find_service_client(token) is None
    with pytest.raises(CommandError, match="is revoked"):
        run("rotateserviceclient", "revoking")


def test_an_unknown_name_lists_the_clients_there_are():
    run("createserviceclient", "known")

    with pytest.raises(CommandError, match="No service client is named 'nope'. Service clients: known."):
        run("revokeserviceclient", "nope")


@pytest.mark.django_db(transaction=True)
def test_a_real_manage_py_prints_the_token_and_exits_zero():
    from ..helpers import database_url

    result = manage("createserviceclient", "from-a-shell", "--allow", "verify_keys", DATABASE_URL=database_url())

    assert result.returncode == 0, result.stderr
    assert TOKEN_RE.match(result.stdout.strip())
    assert lifecycle.find_service_client(result.stdout.strip()).name == "from-a-shell"
