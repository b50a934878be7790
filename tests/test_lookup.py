"""apikeys.lookup: the one-statement key lookup, built once per connection, and what it returns."""

import datetime
import threading
from types import SimpleNamespace

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, connections
from django.utils import timezone

from apikeys import crypto, lifecycle, lookup
from apikeys.models import ApiKey, User

from .helpers import issue, key_client

URL = "/v1/dev/key"

pytestmark = [pytest.mark.django_db, pytest.mark.owner("lookup-owner", "lookup@example.com")]


def find(plaintext: str) -> ApiKey | None:
    return lookup.find_by_hash(*crypto.candidate_hashes(plaintext))


def test_the_statement_is_built_once_per_connection_and_reused_by_every_request(owner):
    issued = issue(owner, "lookup key", ["memories:read"])
    client = key_client(issued.plaintext)
    assert client.get(URL).status_code == 200
    built = connection._omikeys_key_lookup
    for _ in range(3):
        assert client.get(URL).status_code == 200
        assert connection._omikeys_key_lookup is built


def test_another_connection_builds_its_own_statement(owner):
    issued = issue(owner, "lookup key", ["memories:read"])
    find(issued.plaintext)
    here = connection._omikeys_key_lookup
    other = {}

    def look_up_in_another_thread():
        # Django gives each thread its own connection (the same test database on SQLite's shared memory).
        other["statement"] = lookup._statement("default")
        connections.close_all()

    thread = threading.Thread(target=look_up_in_another_thread)
    thread.start()
    thread.join(timeout=30)
    assert other["statement"] is not here
    assert other["statement"].sql == here.sql


def test_a_key_is_found_with_every_field_its_owner_and_its_scope_codes(owner):
    issued = issue(
        owner,
        "full key",
        ["memories:read", "goals:write"],
        expires_at=timezone.now() + datetime.timedelta(days=3),
    )
    stored = ApiKey.objects.get(pk=issued.api_key.pk)
    found = find(issued.plaintext)
    assert found is not None
    for field in ApiKey._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(stored, field.attname), field.name
    assert isinstance(found.created_at, datetime.datetime) and found.created_at.tzinfo is not None
    assert found.owner == owner
    for field in User._meta.concrete_fields:
        assert getattr(found.owner, field.attname) == getattr(owner, field.attname), field.name
    assert found.scope_codes == frozenset({"memories:read", "goals:write"})
    assert found._state.adding is False and found._state.db == "default"


def test_a_key_without_scopes_has_an_empty_set_of_scope_codes(owner):
    issued = issue(owner, "bare key", ["memories:read"])
    issued.api_key.scopes.clear()
    assert find(issued.plaintext).scope_codes == frozenset()


def test_a_key_is_found_by_its_replaced_secret_and_by_its_legacy_hash(owner):
    issued = issue(owner, "rotated key", ["memories:read"])
    rotated = lifecycle.rotate_key(issued.api_key, grace_seconds=3600)
    assert find(issued.plaintext).pk == issued.api_key.pk  # previous_key_hash, Omi's scheme
    assert find(rotated.plaintext).pk == issued.api_key.pk  # key_hash
    legacy = issue(owner, "legacy key", ["memories:read"])
    ApiKey.objects.filter(pk=legacy.api_key.pk).update(key_hash=crypto.legacy_hash_key(legacy.plaintext))
    assert find(legacy.plaintext).pk == legacy.api_key.pk  # key_hash, the whole-key scheme
    legacy_rotated = lifecycle.rotate_key(ApiKey.objects.get(pk=legacy.api_key.pk), grace_seconds=3600)
    assert find(legacy.plaintext).pk == legacy.api_key.pk  # previous_key_hash, the whole-key scheme
    assert find(legacy_rotated.plaintext).pk == legacy.api_key.pk


def test_an_unknown_secret_finds_nothing(owner):
    issue(owner, "some key", ["memories:read"])
    assert find(crypto.generate_key().plaintext) is None


def test_the_lookup_names_only_postgresql_or_sqlite():
    elsewhere = SimpleNamespace(vendor="mysql")
    with pytest.raises(ImproperlyConfigured, match="omikeys runs on PostgreSQL or SQLite, not mysql."):
        lookup._build(elsewhere, "default")


def test_the_prepared_statement_numbers_its_placeholders_hashed_then_legacy_twice():
    assert lookup._numbered("a %s b %s c %s d %s e") == "a $1 b $2 c $1 d $2 e"
