"""HasScope with ApiKeyAuthentication: a view that needs a scope accepts exactly the keys that carry it."""

import datetime

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from rest_framework.test import APIClient, APIRequestFactory

from apikeys import lifecycle
from apikeys.api.permissions import HasScope
from apikeys.models import ApiKey

from .helpers import issue, key_client
from .scoped_urls import Goals, HalfScoped, Misconfigured

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.scoped_urls"), pytest.mark.owner("scoped-owner")]


def test_a_key_with_the_scope_is_let_in_as_its_owner(owner):
    issued = issue(owner, scopes=["memories:read"])
    response = key_client(issued.plaintext).get("/v1/memories")
    assert response.status_code == 200
    assert response.json() == {"uid": "scoped-owner", "key_id": str(issued.api_key.pk)}


def test_a_key_without_the_scope_is_403_naming_it(owner):
    issued = issue(owner, scopes=["conversations:read", "memories:write"])
    response = key_client(issued.plaintext).get("/v1/memories")
    assert response.status_code == 403
    assert response.json() == {"detail": "Insufficient permissions. Required scope: memories:read"}


def test_scopes_can_differ_per_method(owner):
    reader = key_client(issue(owner, scopes=["goals:read"]).plaintext)
    writer = key_client(issue(owner, scopes=["goals:read", "goals:write"]).plaintext)
    write_only = key_client(issue(owner, scopes=["goals:write"]).plaintext)
    assert reader.get("/v1/goals").status_code == 200
    assert reader.head("/v1/goals").status_code == 200
    assert reader.post("/v1/goals").json() == {"detail": "Insufficient permissions. Required scope: goals:write"}
    assert writer.post("/v1/goals").status_code == 201
    assert write_only.post("/v1/goals").json() == {"detail": "Insufficient permissions. Required scope: goals:read"}
    # A method the view does not handle is still 405, not a configuration error.
    assert reader.delete("/v1/goals").status_code == 405
    assert reader.generic("DISPATCH", "/v1/goals").status_code == 405
    assert APIClient().generic("DISPATCH", "/v1/goals").status_code == 401  # DRF authenticates first
    # DRF's built-in OPTIONS has no scopes named: refused, not a server error.
    assert reader.options("/v1/goals").status_code == 403
    assert APIClient().options("/v1/goals").status_code == 401


def test_every_refusal_has_its_status(owner, emulator_user):
    good = issue(owner, scopes=["memories:read"])
    revoked = issue(owner, scopes=["memories:read"])
    lifecycle.revoke_key(revoked.api_key)
    expired = issue(owner, scopes=["memories:read"])
    ApiKey.objects.filter(pk=expired.api_key.pk).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    cases = {
        "valid": (key_client(good.plaintext), 200),
        "no credentials": (APIClient(), 401),
        "unknown key": (key_client("omi_dev_" + "9" * 32), 401),
        "revoked key": (key_client(revoked.plaintext), 401),
        "expired key": (key_client(expired.plaintext), 401),
        "firebase token": (key_client(emulator_user.id_token), 401),
    }
    got = {name: client.get("/v1/memories").status_code for name, (client, _) in cases.items()}
    assert got == {name: status for name, (_, status) in cases.items()}


def test_a_rotated_key_keeps_its_scopes_and_the_old_secret_stops(owner):
    issued = issue(owner, scopes=["memories:read"])
    rotated = lifecycle.rotate_key(issued.api_key)
    assert key_client(rotated.plaintext).get("/v1/memories").status_code == 200
    assert key_client(issued.plaintext).get("/v1/memories").status_code == 401


def test_a_signed_in_session_without_a_key_is_refused_by_a_scoped_view(owner):
    client = APIClient()
    client.force_login(owner)
    response = client.get("/v1/either")
    assert response.status_code == 403
    assert response.json() == {"detail": "This endpoint needs an API key: send 'Authorization: Bearer <API key>'."}


def test_scope_changes_by_staff_apply_to_the_next_request(owner):
    issued = issue(owner, scopes=["memories:read"])
    client = key_client(issued.plaintext)
    assert client.get("/v1/memories").status_code == 200
    issued.api_key.scopes.set([])
    assert client.get("/v1/memories").status_code == 403


def test_a_view_without_required_scopes_is_a_configuration_error_not_open(owner):
    issued = lifecycle.verify_key(issue(owner).plaintext).api_key
    request = APIRequestFactory().get("/v1/misconfigured")
    request.auth = issued
    with pytest.raises(ImproperlyConfigured, match="required_scopes"):
        HasScope().has_permission(request, Misconfigured())


def test_a_key_object_not_from_the_authenticator_is_refused(owner):
    api_key = ApiKey.objects.get(pk=issue(owner, scopes=["memories:read"]).api_key.pk)  # no scope_codes
    request = APIRequestFactory().get("/v1/memories")
    request.auth = api_key

    class View:
        required_scopes = ["memories:read"]

        def get(self):
            pass

    assert HasScope().has_permission(request, View()) is False


def test_head_needs_the_scopes_of_get_when_the_view_names_none_for_head(owner):
    write_only = key_client(issue(owner, scopes=["goals:write"]).plaintext)
    response = write_only.head("/v1/goals")
    assert response.status_code == 403
    response = write_only.get("/v1/goals")
    assert response.json() == {"detail": "Insufficient permissions. Required scope: goals:read"}


def test_head_needs_its_own_scopes_when_the_view_names_them(owner):
    reader = key_client(issue(owner, scopes=["memories:read"]).plaintext)
    both = key_client(issue(owner, scopes=["memories:read", "conversations:read"]).plaintext)
    assert reader.get("/v1/exports").status_code == 200
    assert reader.head("/v1/exports").status_code == 403
    assert both.head("/v1/exports").status_code == 200


def test_options_without_scopes_of_its_own_is_403_saying_so(owner):
    reader = key_client(issue(owner, scopes=["goals:read", "goals:write"]).plaintext)
    response = reader.options("/v1/goals")
    assert response.status_code == 403
    assert response.json() == {"detail": "No scope allows OPTIONS here."}


def scoped_request(method: str, api_key):
    request = APIRequestFactory().generic(method, "/v1/anywhere")
    request.auth = api_key
    return request


def test_a_handled_method_without_scopes_is_a_configuration_error_not_a_403(owner):
    api_key = lifecycle.verify_key(issue(owner, scopes=["goals:read", "goals:write"]).plaintext).api_key
    assert HasScope().has_permission(scoped_request("GET", api_key), HalfScoped()) is True
    with pytest.raises(ImproperlyConfigured) as error:
        HasScope().has_permission(scoped_request("POST", api_key), HalfScoped())
    assert str(error.value) == "HalfScoped.required_scopes names no scopes for POST, which it handles."


@pytest.mark.parametrize("required", [None, "memories:read"])
def test_required_scopes_that_are_not_a_list_are_a_configuration_error(owner, required):
    api_key = lifecycle.verify_key(issue(owner, scopes=["memories:read"]).plaintext).api_key
    view = Misconfigured()
    view.required_scopes = required
    with pytest.raises(ImproperlyConfigured) as error:
        HasScope().has_permission(scoped_request("GET", api_key), view)
    assert str(error.value) == (
        "Misconfigured uses HasScope: set required_scopes to a list of scope codes (or a dict of them by HTTP method)."
    )


@pytest.mark.parametrize(
    ("method", "scopes"),
    [
        ("GET", ["goals:read"]),
        ("HEAD", ["goals:read"]),
        ("POST", ["goals:read", "goals:write"]),
        ("DELETE", []),  # not handled: DRF answers 405
        ("OPTIONS", None),  # DRF's own OPTIONS, named by no scope: refused
    ],
)
def test_the_scopes_a_request_needs_follow_its_method(method, scopes):
    view = Goals()
    assert HasScope.required_scopes(scoped_request(method, None), view) == scopes
