"""listapikeys: the keys as an aligned table or JSON, never a secret or a hash."""

import datetime
import json

import pytest
from django.core.management import CommandError
from django.utils import timezone

from apikeys import lifecycle
from apikeys.models import ApiKey, User

from ..helpers import expire, in_days, issue
from .running import DEFAULT_SCOPES, run

pytestmark = [pytest.mark.django_db, pytest.mark.owner("local-uid-1", "owner@example.com")]


@pytest.fixture
def keys(owner):
    """Three keys of two owners, created a minute apart; the middle one revoked."""
    uid_only = User.objects.for_firebase("uid-without-email", None)
    start = timezone.now() - datetime.timedelta(hours=1)
    made = {}
    for minutes, (name, key_owner, scopes) in enumerate(
        [("oldest", owner, None), ("revoked", owner, ["memories:write"]), ("newest", uid_only, ["goals:read"])]
    ):
        api_key = issue(key_owner, name, scopes).api_key
        ApiKey.objects.filter(pk=api_key.pk).update(created_at=start + datetime.timedelta(minutes=minutes))
        made[name] = ApiKey.objects.get(pk=api_key.pk)
    lifecycle.revoke_key(made["revoked"])
    used = start + datetime.timedelta(minutes=30)
    ApiKey.objects.filter(pk=made["oldest"].pk).update(last_used_at=used)
    made["oldest"].last_used_at = used
    return made


def test_listapikeys_shows_active_keys_newest_first_in_an_aligned_table(keys):
    stdout, _ = run("listapikeys")
    header, newest, oldest, count = stdout.splitlines()
    assert header.split() == [
        *("ID", "PREFIX", "NAME", "OWNER", "SCOPES", "CREATED", "(UTC)"),
        *("LAST", "USED", "(UTC)", "EXPIRES", "(UTC)", "STATUS"),
    ]
    assert newest.split() == [
        str(keys["newest"].pk), keys["newest"].key_prefix, "newest", "uid-without-email", "goals:read",
        *keys["newest"].created_at.strftime("%Y-%m-%d %H:%M:%S").split(), "never", "never", "active",
    ]  # fmt: skip
    assert oldest.split() == [
        str(keys["oldest"].pk), keys["oldest"].key_prefix, "oldest", "owner@example.com", ",".join(DEFAULT_SCOPES),
        *keys["oldest"].created_at.strftime("%Y-%m-%d %H:%M:%S").split(),
        *keys["oldest"].last_used_at.strftime("%Y-%m-%d %H:%M:%S").split(), "never", "active",
    ]  # fmt: skip
    for column in ["PREFIX", "NAME", "OWNER", "SCOPES", "CREATED", "LAST USED", "EXPIRES", "STATUS"]:
        start = header.index(column)
        assert newest[start - 2 : start] == oldest[start - 2 : start] == "  "
        assert newest[start] != " " and oldest[start] != " "
    assert count == "2 active keys."
    assert "revoked" not in stdout


def test_listapikeys_all_includes_revoked_keys(keys):
    stdout, _ = run("listapikeys", "--all")
    lines = stdout.splitlines()
    assert [line.split()[0] for line in lines[1:-1]] == [str(keys[name].pk) for name in ["newest", "revoked", "oldest"]]
    assert lines[2].endswith("revoked")
    assert lines[-1] == "3 keys (2 active, 1 revoked)."


@pytest.mark.parametrize("selector", ["local-uid-1", "OWNER@example.com"])
def test_listapikeys_filters_by_owner_uid_or_email(keys, selector):
    stdout, _ = run("listapikeys", "--all", "--owner", selector)
    assert [line.split()[2] for line in stdout.splitlines()[1:-1]] == ["revoked", "oldest"]


def test_listapikeys_rejects_an_owner_with_no_local_user(keys):
    with pytest.raises(CommandError, match="No local user has the uid or email 'nobody@example.com'"):
        run("listapikeys", "--owner", "nobody@example.com")


def test_listapikeys_json_lists_every_field_but_the_secret(keys):
    stdout, _ = run("listapikeys", "--all", "--json")
    listed = json.loads(stdout)
    assert [item["name"] for item in listed] == ["newest", "revoked", "oldest"]
    oldest = listed[2]
    assert oldest == {
        "id": str(keys["oldest"].pk),
        "key_prefix": keys["oldest"].key_prefix,
        "name": "oldest",
        "owner": "owner@example.com",
        "owner_uid": "local-uid-1",
        "scopes": DEFAULT_SCOPES,
        "created_at": oldest["created_at"],
        "last_used_at": oldest["last_used_at"],
        "revoked_at": None,
        "expires_at": None,
        "disabled_at": None,
        "status": "active",
    }
    assert datetime.datetime.fromisoformat(oldest["created_at"]) == keys["oldest"].created_at
    assert datetime.datetime.fromisoformat(oldest["last_used_at"]) == keys["oldest"].last_used_at
    assert listed[0]["last_used_at"] is None
    assert datetime.datetime.fromisoformat(listed[1]["revoked_at"]) == keys["revoked"].revoked_at
    assert listed[1]["status"] == "revoked"
    for api_key in keys.values():
        assert api_key.key_hash not in stdout


def test_listapikeys_never_prints_a_hash_in_the_table(keys):
    stdout, _ = run("listapikeys", "--all")
    for api_key in keys.values():
        assert api_key.key_hash not in stdout


def test_listapikeys_says_so_when_there_are_no_keys(owner):
    assert run("listapikeys") == ("No active or expired API keys.\n", "")
    assert run("listapikeys", "--all", "--owner", owner.email) == ("No API keys for owner@example.com.\n", "")
    assert json.loads(run("listapikeys", "--json")[0]) == []


def test_listapikeys_query_count_does_not_grow_with_the_number_of_keys(keys, owner, django_assert_num_queries):
    for number in range(5):
        other = User.objects.for_firebase(f"uid-extra-{number}", f"extra-{number}@example.com")
        lifecycle.issue_key(owner=other, name=f"extra {number}")
    with django_assert_num_queries(2):  # the keys with their owners, then all their scopes
        stdout, _ = run("listapikeys", "--all")
    assert stdout.splitlines()[-1] == "8 keys (7 active, 1 revoked)."


def test_listapikeys_lists_expired_keys_by_default_and_marks_them(keys, owner):
    later = lifecycle.issue_key(owner=owner, name="later", expires_at=in_days(7)).api_key
    lapsed = lifecycle.issue_key(owner=owner, name="lapsed", expires_at=in_days(1)).api_key
    expire(lapsed)
    lapsed.refresh_from_db()

    stdout, _ = run("listapikeys")

    lines = stdout.splitlines()
    rows = {line.split()[2]: line for line in lines[1:-1]}
    assert set(rows) == {"oldest", "newest", "later", "lapsed"}
    assert rows["lapsed"].split()[-3:] == [*utc_text(lapsed.expires_at).split(), "expired"]
    assert rows["later"].split()[-3:] == [*utc_text(later.expires_at).split(), "active"]
    assert rows["oldest"].split()[-2:] == ["never", "active"]
    assert lines[-1] == "4 keys (3 active, 1 expired)."
    assert run("listapikeys", "--all")[0].splitlines()[-1] == "5 keys (3 active, 1 expired, 1 revoked)."

    listed = {item["name"]: item for item in json.loads(run("listapikeys", "--json")[0])}
    assert set(listed) == {"oldest", "newest", "later", "lapsed"}
    assert listed["lapsed"]["status"] == "expired"
    assert datetime.datetime.fromisoformat(listed["lapsed"]["expires_at"]) == lapsed.expires_at
    assert datetime.datetime.fromisoformat(listed["later"]["expires_at"]) == later.expires_at
    assert (listed["later"]["status"], listed["oldest"]["expires_at"]) == ("active", None)


def test_listapikeys_all_still_adds_revoked_keys_whether_or_not_they_had_expired(keys, owner):
    lapsed_then_revoked = lifecycle.issue_key(owner=owner, name="both").api_key
    expire(lapsed_then_revoked)
    lifecycle.revoke_key(lapsed_then_revoked)

    assert "both" not in run("listapikeys")[0]
    statuses = {item["name"]: item["status"] for item in json.loads(run("listapikeys", "--all", "--json")[0])}
    assert statuses == {"oldest": "active", "revoked": "revoked", "newest": "active", "both": "revoked"}


def utc_text(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
