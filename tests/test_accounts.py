"""The core of ending accounts (apikeys/lifecycle/accounts.py): revoke_user_keys and erase_user."""

import pytest

from apikeys import lifecycle
from apikeys.audit import Actor
from apikeys.models import ApiKey, KeyEvent, User

from .helpers import issue, make_owner

pytestmark = pytest.mark.django_db


def acting(user: User, ip: str) -> Actor:
    return Actor(kind="staff", via="admin", user=user, label=user.label, ip_address=ip, user_agent=f"agent of {ip}")


def test_erasing_scrubs_the_events_the_user_made_on_other_users_keys():
    owner, actor_user = make_owner("owner-1"), make_owner("actor-1", "actor@example.com")
    api_key = issue(owner, actor=acting(owner, "192.0.2.1")).api_key
    lifecycle.update_key(api_key, name="renamed", actor=acting(actor_user, "192.0.2.2"))

    report = lifecycle.erase_user(actor_user, actor=None)

    theirs = KeyEvent.objects.get(action="renamed")
    assert (theirs.ip_address, theirs.user_agent, theirs.actor_label, theirs.actor) == (
        None,
        "",
        "(erased user)",
        actor_user,
    )
    owners_own = KeyEvent.objects.get(action="created")  # the owner's data is not the erased user's
    assert (owners_own.ip_address, owners_own.actor_label) == ("192.0.2.1", "owner-1@example.com")
    assert (report.events_scrubbed, report.ip_addresses_erased, report.email_erased) == (1, 1, True)


def test_revoke_user_keys_records_the_reason_on_each_key_and_returns_only_what_it_revoked():
    owner = make_owner()
    first, second = issue(owner, name="a").api_key, issue(owner, name="b").api_key
    lifecycle.revoke_key(first)

    revoked = lifecycle.revoke_user_keys(owner, reason="banned", actor=None)

    assert revoked == [second]
    assert KeyEvent.objects.get(api_key=second, action="revoked").details == {"reason": "banned"}
    assert KeyEvent.objects.get(api_key=first, action="revoked").details == {}
    assert lifecycle.revoke_user_keys(owner, reason="banned", actor=None) == []


def test_an_erased_user_is_never_given_an_email_again():
    owner = make_owner("erased-1")
    lifecycle.erase_user(owner, actor=None)

    User.objects.for_firebase("erased-1", "back@example.com")
    User.objects.for_firebase_uids({"erased-1": "again@example.com"})

    assert User.objects.get(firebase_uid="erased-1").email == ""


def test_a_key_being_issued_when_an_erasure_commits_is_refused():
    # A door read the user (active) just before a service's erasure committed: issue_key must not
    # add a working-looking, unrevoked key, with the person's address in its audit, after the erasure.
    read_before = make_owner("erased-2")
    lifecycle.erase_user(User.objects.get(pk=read_before.pk), actor=None)
    assert read_before.is_active  # the door's copy

    with pytest.raises(lifecycle.OwnerNotEligible):
        issue(read_before, actor=acting(read_before, "192.0.2.3"))

    assert not ApiKey.objects.for_owner(read_before).exists()
    assert not KeyEvent.objects.exists()
