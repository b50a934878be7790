"""The audit log: who created, rotated, revoked a key or changed its expiry, when, and from where."""

import pytest
from django.core.exceptions import ValidationError
from django.test import RequestFactory

from apikeys import audit, lifecycle
from apikeys.models import KeyEvent

from .helpers import issue, make_owner

pytestmark = pytest.mark.django_db


def test_api_create_rotate_and_revoke_are_recorded_with_the_caller(user_client):
    headers = {"HTTP_USER_AGENT": "omi-cli/2.1", "REMOTE_ADDR": "192.0.2.44"}
    key = user_client.post("/v1/dev/keys", {"name": "audited"}, format="json", **headers).json()
    user_client.post(f"/v1/dev/keys/{key['id']}/rotate", format="json", **headers)
    user_client.delete(f"/v1/dev/keys/{key['id']}", **headers)
    user_client.delete(f"/v1/dev/keys/{key['id']}", **headers)  # already revoked: no second event
    events = list(KeyEvent.objects.filter(api_key_id=key["id"]).order_by("id"))
    assert [e.action for e in events] == ["created", "rotated", "revoked"]
    for event in events:
        assert (event.actor_kind, event.via, event.ip_address, event.user_agent) == (
            "user",
            "api",
            "192.0.2.44",
            "omi-cli/2.1",
        )
        assert event.actor.email == event.actor_label == event.api_key.owner.email
    assert events[0].details == {
        "scopes": ["action_items:read", "conversations:read", "goals:read", "memories:read"],
        "expires_at": None,
    }


def test_no_secret_or_hash_is_recorded(user_client):
    key = user_client.post("/v1/dev/keys", {"name": "secretive"}, format="json").json()
    rotated = user_client.post(f"/v1/dev/keys/{key['id']}/rotate", {"grace_seconds": 60}, format="json").json()
    dump = str(list(KeyEvent.objects.values()))
    api_key = KeyEvent.objects.filter(api_key_id=key["id"]).first().api_key
    for secret in (key["key"], rotated["key"], api_key.key_hash, api_key.previous_key_hash):
        assert secret not in dump


def test_changes_from_python_code_are_recorded_as_such():
    issued = issue(make_owner())
    event = issued.api_key.events.get()
    assert (event.actor_kind, event.via, event.actor, event.actor_label) == ("system", "code", None, "Python code")


def test_an_event_is_written_in_the_same_transaction_as_the_change():
    """A change that fails leaves no event behind."""
    owner = make_owner()
    issued = issue(owner)
    lifecycle.revoke_key(issued.api_key)
    with pytest.raises(lifecycle.KeyRevoked):
        lifecycle.rotate_key(issued.api_key)
    assert list(issued.api_key.events.values_list("action", flat=True).order_by("id")) == ["created", "revoked"]


def test_long_user_agents_are_cut_to_fit():
    request = RequestFactory().get("/", HTTP_USER_AGENT="x" * 5000)
    request.user = make_owner()
    assert len(audit.Actor.from_request(request, via="web").user_agent) == 300


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        (0, "192.0.2.1", "198.51.100.1", "192.0.2.1"),
        (1, "10.0.0.1", "198.51.100.1", "198.51.100.1"),
        (1, "10.0.0.1", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # the client chose the leftmost entry
        (2, "10.0.0.1", "6.6.6.6, 198.51.100.1, 10.0.0.2", "198.51.100.1"),
        (1, "10.0.0.1", "", "10.0.0.1"),
        (1, "10.0.0.1", "not-an-address", "10.0.0.1"),  # a garbled entry: the connection's address
        (0, "", "", None),
        (0, "2001:db8::1", "", "2001:db8::1"),
    ],
)
def test_the_client_address_respects_the_number_of_trusted_proxies(settings, proxies, remote, forwarded, expected):
    settings.OMIKEYS_NUM_PROXIES = proxies
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert audit.client_ip(request) == expected


def test_command_actors_name_the_command_and_the_operating_system_user():
    actor = audit.Actor.command("revokeapikey")
    assert actor.kind == "command" and actor.via == "command"
    assert actor.label.startswith("revokeapikey (run by ")


def test_update_key_records_only_real_changes_and_refuses_revoked_keys():
    from apikeys.models import Scope

    issued = issue(make_owner(), "Before")
    memories = list(Scope.objects.filter(code__in=["memories:read", "memories:write"]))
    assert lifecycle.update_key(issued.api_key, name="  After  ", scopes=memories) == ["renamed", "scopes_changed"]
    assert lifecycle.update_key(issued.api_key, name="After", scopes=memories) == []
    renamed = issued.api_key.events.get(action="renamed")
    assert renamed.details == {"name": "After", "previous_name": "Before"}
    with pytest.raises(ValidationError):
        lifecycle.update_key(issued.api_key, name="")
    lifecycle.revoke_key(issued.api_key)
    with pytest.raises(lifecycle.KeyRevoked):
        lifecycle.update_key(issued.api_key, name="Again")
    assert issued.api_key.events.count() == 4  # created, renamed, scopes_changed, revoked
