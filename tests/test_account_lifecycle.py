"""The core of ending accounts (apikeys/lifecycle/accounts.py): what revoking, erasing and syncing report and record."""

import datetime
import logging
import uuid

import pytest
from axes.models import AccessAttempt
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apikeys import crypto, firebase, lifecycle, webhooks
from apikeys.audit import Actor
from apikeys.lifecycle import ImportedKey
from apikeys.models import ApiKey, Event, KeyEvent, Notice, User, WebhookEndpoint

from . import firebase_emulator
from .helpers import NOW, free_port, issue, make_owner, scopes

pytestmark = pytest.mark.django_db

STAFF_REFUSAL = (
    "This user is a staff account; a service cannot erase it (its keys can still be revoked). "
    "Staff deactivate staff accounts in the admin."
)


@pytest.fixture
def subscribed():
    """An endpoint receiving the user events, so that they are written (events.emit writes none otherwise);
    nothing is delivered to it: deliveries are queued when the test's transaction commits, which it never does."""
    webhooks.register_endpoint(f"http://127.0.0.1:{free_port()}/hooks", ["user.keys_revoked", "user.erased"])


def payloads(event_type: str) -> list[dict]:
    return [event.payload["data"] for event in Event.objects.filter(type=event_type).order_by("created_at")]


def lifecycle_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name.startswith("apikeys.lifecycle")]


def person(user: User, ip: str | None, agent: str = "") -> Actor:
    return Actor(kind="user", via="web", user=user, label=user.label, ip_address=ip, user_agent=agent)


def staff_actor(ip: str | None, agent: str) -> Actor:
    staff = User.objects.get_or_create(username="staff-person", defaults={"email": "staff@example.org"})[0]
    return Actor(kind="staff", via="admin", user=staff, label=staff.label, ip_address=ip, user_agent=agent)


@pytest.mark.parametrize("flag", ["is_staff", "is_superuser"])
def test_a_staff_account_is_refused_with_the_message_services_are_shown(flag):
    staff = make_owner("staff-1")
    setattr(staff, flag, True)
    staff.save()

    with pytest.raises(lifecycle.StaffNotErasable) as raised:
        lifecycle.erase_user(staff, actor=None)

    assert str(raised.value) == STAFF_REFUSAL
    assert raised.value.user == staff
    staff.refresh_from_db()
    assert (staff.is_active, staff.email) == (True, "staff-1@example.com")


def keys_out_of_id_order(owner: User) -> tuple[ApiKey, ApiKey, ApiKey]:
    """Three keys (a, b, c): b created with a, after it, with a smaller id; c created a day earlier, largest id."""
    spare = []
    a = issue(owner, name="a").api_key
    b = issue(owner, name="b").api_key
    while b.pk > a.pk and len(spare) < 50:
        spare.append(b)
        b = issue(owner, name="b").api_key
    c = issue(owner, name="c").api_key
    while c.pk < max(a.pk, b.pk) and len(spare) < 100:
        spare.append(c)
        c = issue(owner, name="c").api_key
    for api_key in spare:
        lifecycle.revoke_key(api_key)
    ApiKey.objects.filter(pk__in=[a.pk, b.pk]).update(created_at=NOW)
    ApiKey.objects.filter(pk=c.pk).update(created_at=NOW - datetime.timedelta(days=1))
    assert b.pk < a.pk < c.pk  # the helper found what it looked for
    return a, b, c


def test_revoking_all_keys_goes_oldest_first_and_reports_who_did_it(clock, subscribed, caplog):
    owner = make_owner("leaving-1")
    a, b, c = keys_out_of_id_order(owner)
    actor = Actor.command("revokeuserkeys")
    caplog.set_level(logging.INFO, logger="apikeys.lifecycle")
    caplog.clear()

    revoked = lifecycle.revoke_user_keys(owner, reason="account deleted", actor=actor)

    assert [api_key.pk for api_key in revoked] == [c.pk, b.pk, a.pk]  # by creation, then by id
    assert payloads("user.keys_revoked") == [
        {
            "owner_uid": "leaving-1",
            "key_ids": sorted(str(pk) for pk in (a.pk, b.pk, c.pk)),
            "actor": {"kind": "command", "via": "command", "label": actor.label},
            "door": "command",
        }
    ]
    assert lifecycle_lines(caplog)[-1] == f"user keys revoked owner={owner.pk} count=3"


def test_erasing_reports_and_records_exactly_what_it_erased(clock, subscribed, caplog, settings):
    settings.OMIKEYS_SEND_EMAIL = True
    email = "Ann@Example.com"
    user = make_owner("erased-ann", email)
    user.first_name = "Ann"
    user.save()
    own = issue(user, name=f"laptop of {email.lower()}", actor=person(user, "198.51.100.1", "AnnAgent/1")).api_key
    lifecycle.update_key(own, name="laptop", actor=person(user, "198.51.100.1", "AnnAgent/1"))
    other = issue(user, name="other", actor=Actor.command("createapikey")).api_key
    lifecycle.update_key(other, name="other 2", actor=staff_actor("192.0.2.5", ""))  # an address only
    lifecycle.update_key(other, name="other 3", actor=staff_actor(None, "StaffAgent/2"))  # a user agent only
    lifecycle.update_key(other, name="other 4", actor=Actor.command(f"renamekey {email}"))  # neither; the email
    imported = lifecycle.import_keys(
        [
            ImportedKey(
                key_id=uuid.uuid4(),
                source_id="doc-1",
                owner=user,
                name="imported",
                key_prefix=crypto.display_prefix(f"omi_dev_{1:032x}"),
                key_hash=crypto.hash_key(f"omi_dev_{1:032x}"),
                scopes=scopes("memories:read"),
                created_at=NOW - datetime.timedelta(days=2),
                source={"file": "export.jsonl", "seen_as": [email.upper(), "someone else"]},
            )
        ]
    )[0]
    imported = ApiKey.objects.get(pk=imported.key.key_id)
    sent = Notice.objects.filter(user=user).order_by("created_at").first()
    Notice.objects.filter(pk=sent.pk).update(status=Notice.Status.SENT, last_error=f"250 ok {email}")
    pending = set(Notice.objects.filter(user=user, status=Notice.Status.PENDING).values_list("pk", flat=True))
    assert pending  # the changes by others are to be mailed
    service = Actor(kind="service", via="service", label="service crm", ip_address="192.0.2.99", user_agent="crm/1")
    caplog.set_level(logging.INFO, logger="apikeys.lifecycle")
    caplog.clear()

    report = lifecycle.erase_user(user, actor=service)

    assert report == lifecycle.ErasureReport(
        uid="erased-ann",
        # the imported key is the oldest; the other two, of the same age, by id
        revoked_key_ids=[str(imported.pk)] + [str(k.pk) for k in sorted([own, other], key=lambda k: k.pk)],
        deactivated=True,
        email_erased=True,
        names_erased=True,
        # created and renamed by Ann (address, agent, label; the rename's details), the rename with an address,
        # the one with a user agent, the one whose label held the email, the import's source, and three
        # revocations by the service (address, agent)
        events_scrubbed=9,
        ip_addresses_erased=6,
        user_agents_erased=6,
        key_names_scrubbed=0,
        admin_records_scrubbed=0,
    )
    stored = User.objects.get(pk=user.pk)
    for copy in (user, stored):  # the caller's copy follows the row
        assert (copy.email, copy.first_name, copy.is_active) == ("", "", False)
        assert (copy.deactivation_reason, copy.deactivated_at) == ("erased", NOW)
    assert (
        list(KeyEvent.objects.filter(action="revoked").values_list("details", flat=True))
        == [{"reason": "user erased"}] * 3
    )
    assert KeyEvent.objects.get(actor_kind="command", action="renamed").actor_label.startswith("renamekey (erased)")
    assert KeyEvent.objects.get(action="imported").details["seen_as"] == ["(erased)", "someone else"]
    assert not Notice.objects.filter(pk__in=pending).exists()
    kept = Notice.objects.get(pk=sent.pk)
    assert (kept.recipient, kept.subject, kept.last_error) == ("", "", "")
    assert payloads("user.erased") == [
        {
            "owner_uid": "erased-ann",
            "key_ids": sorted(report.revoked_key_ids),
            "actor": {"kind": "service", "via": "service", "label": "service crm"},
            "door": "service",
        }
    ]
    assert lifecycle_lines(caplog)[-1] == f"user erased id={user.pk} keys_revoked=3 events_scrubbed=9"

    again = lifecycle.erase_user(user, actor=service)

    assert again == lifecycle.ErasureReport(uid="erased-ann")
    assert len(payloads("user.erased")) == 1  # nothing more erased: no second event


def test_the_reason_of_each_revocation_says_the_user_was_erased():
    user = make_owner("erased-reason")
    api_key = issue(user).api_key

    lifecycle.erase_user(user, actor=None)

    assert KeyEvent.objects.get(api_key=api_key, action="revoked").details == {"reason": "user erased"}


def test_a_typed_username_is_replaced_and_sign_in_attempts_made_with_it_deleted():
    typed = make_owner("uid-typed")
    typed.username, typed.email = "ann-admin", ""
    typed.save()
    clash = make_owner("uid-clash")
    clash.username, clash.email = "clash-typed", ""
    clash.save()
    holder = make_owner("uid-holder")  # another row holds the username the erased user would get
    holder.username = "firebase:uid-clash"
    holder.save()
    AccessAttempt.objects.create(username="ANN-ADMIN", ip_address="203.0.113.9", failures_since_start=1)

    first = lifecycle.erase_user(typed, actor=None)
    second = lifecycle.erase_user(clash, actor=None)

    assert (first.names_erased, first.email_erased, first.admin_records_scrubbed) == (True, False, 1)
    assert User.objects.get(pk=typed.pk).username == "firebase:uid-typed"
    assert not AccessAttempt.objects.exists()
    assert second.names_erased is True
    assert User.objects.get(pk=clash.pk).username == f"erased:{clash.pk}"


def test_a_key_name_made_longer_by_the_erasure_is_cut_to_the_longest_name():
    user = make_owner("short-mail", "a@b.co")
    name = "x" * 93 + " a@b.co"  # 100 characters, the longest name
    api_key = issue(user, name=name).api_key

    report = lifecycle.erase_user(user, actor=None)

    assert report.key_names_scrubbed == 1
    assert ApiKey.objects.get(pk=api_key.pk).name == ("x" * 93 + " (erased)")[:100]


def test_only_the_admins_history_of_the_user_and_their_keys_loses_the_email():
    user = make_owner("logged-1", "logged@example.com")
    api_key = issue(user, name="mine").api_key
    neighbour = make_owner("logged-2", "neighbour@example.com")
    theirs = issue(neighbour, name="theirs").api_key
    staff = User.objects.create_user("admin-person", "admin@example.org", "x", is_staff=True)
    mention = "Changed note: asked by logged@example.com."
    for obj in (user, api_key, neighbour, theirs):
        LogEntry.objects.log_actions(staff.pk, [obj], CHANGE, change_message=mention, single_object=True)
    # An entry about a row of another kind whose id is the user's.
    LogEntry.objects.create(
        user=staff,
        content_type=ContentType.objects.get_for_model(WebhookEndpoint),
        object_id=str(user.pk),
        object_repr="an endpoint",
        action_flag=CHANGE,
        change_message=mention,
    )

    report = lifecycle.erase_user(user, actor=None)

    about = {(entry.content_type.model, entry.object_id): entry.change_message for entry in LogEntry.objects.all()}
    assert about == {
        ("user", str(user.pk)): "Changed note: asked by (erased).",
        ("apikey", str(api_key.pk)): "Changed note: asked by (erased).",
        ("user", str(neighbour.pk)): mention,
        ("apikey", str(theirs.pk)): mention,
        ("webhookendpoint", str(user.pk)): mention,
    }
    assert report.admin_records_scrubbed == 2


def test_sign_in_attempts_made_with_the_email_or_the_username_are_deleted_and_no_others():
    user = make_owner("tried-1", "tried@example.com")
    user.username = "tried-admin"
    user.save()
    for username in ("TRIED@example.com", "tried-admin", "", "someone-else"):
        AccessAttempt.objects.create(username=username, ip_address="203.0.113.9", failures_since_start=1)

    report = lifecycle.erase_user(user, actor=None)

    assert sorted(AccessAttempt.objects.values_list("username", flat=True)) == ["", "someone-else"]
    assert report.admin_records_scrubbed == 2


def test_without_an_email_attempts_with_no_username_are_kept():
    user = no_personal_data("no-mail")
    AccessAttempt.objects.create(username="", ip_address="203.0.113.9", failures_since_start=1)

    assert lifecycle.erase_user(user, actor=None).admin_records_scrubbed == 0
    assert AccessAttempt.objects.count() == 1


# What makes an erasure send user.erased: any one thing it did, alone.


def no_personal_data(uid: str, **fields) -> User:
    """A user with nothing but a uid (no address, names or typed username), then ``fields``."""
    user = make_owner(uid)
    User.objects.filter(pk=user.pk).update(**{"email": "", **fields})
    user.refresh_from_db()
    return user


def only_deactivated():
    return no_personal_data("only-deactivated")


def only_the_email():
    return no_personal_data("only-email", email="only@example.com", is_active=False, deactivation_reason="staff")


def only_a_name():
    return no_personal_data("only-name", last_name="Smith", is_active=False, deactivation_reason="staff")


def only_events():
    user = no_personal_data("only-events")
    someone = make_owner("someone-else")
    api_key = issue(someone, actor=Actor.command("createapikey")).api_key
    lifecycle.update_key(api_key, name="renamed by them", actor=person(user, "192.0.2.7"))
    User.objects.filter(pk=user.pk).update(is_active=False, deactivation_reason="staff")
    user.refresh_from_db()
    return user


def only_keys():
    user = no_personal_data("only-keys", is_active=False, deactivation_reason="firebase_disabled")
    plaintext = f"omi_dev_{7:032x}"
    lifecycle.import_keys(  # an imported key: no notice was written for it
        [
            ImportedKey(
                key_id=uuid.uuid4(),
                source_id="doc-7",
                owner=user,
                name="imported",
                key_prefix=crypto.display_prefix(plaintext),
                key_hash=crypto.hash_key(plaintext),
                scopes=scopes("memories:read"),
                created_at=NOW,
            )
        ]
    )
    return user


def only_admin_records():
    user = no_personal_data("only-admin")
    lifecycle.erase_user(user, actor=None)
    Event.objects.all().delete()
    AccessAttempt.objects.create(username="firebase:only-admin", ip_address="203.0.113.9", failures_since_start=1)
    return user


@pytest.mark.parametrize(
    "only", [only_deactivated, only_the_email, only_a_name, only_events, only_keys, only_admin_records]
)
def test_any_one_thing_erased_alone_sends_user_erased(only, subscribed):
    user = only()

    report = lifecycle.erase_user(user, actor=None)

    assert report != lifecycle.ErasureReport(uid=user.firebase_uid)
    assert [data["owner_uid"] for data in payloads("user.erased")] == [user.firebase_uid]


# Following Firebase


def firebase_user(**fields) -> User:
    account = firebase_emulator.sign_up()
    user = make_owner(account.uid, account.email)
    if fields:
        User.objects.filter(pk=user.pk).update(**fields)
        user.refresh_from_db()
    return user


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_sync_changes_each_user_as_firebase_says_and_logs_each_change(clock, caplog, dry_run):
    unasked = firebase_user()
    disabled = firebase_user()
    back = firebase_user(is_active=False, deactivation_reason="firebase_disabled", deactivated_at=NOW)
    deleted = firebase_user()
    firebase_emulator.update_account(disabled.firebase_uid, disableUser=True)
    firebase_emulator.delete_account(deleted.firebase_uid)
    found, not_found = firebase.get_users([u.firebase_uid for u in (disabled, back, deleted)])
    caplog.set_level(logging.INFO, logger="apikeys.lifecycle")
    caplog.clear()

    changes = lifecycle.apply_firebase_states([unasked, disabled, back, deleted], found, not_found, dry_run=dry_run)

    assert [(c.user, c.change, c.reason) for c in changes] == [
        (disabled, "deactivated", "firebase_disabled"),
        (back, "reactivated", ""),
        (deleted, "deactivated", "firebase_deleted"),
    ]
    if dry_run:
        assert lifecycle_lines(caplog) == []
        assert (disabled.is_active, back.is_active, back.deactivation_reason) == (True, False, "firebase_disabled")
        assert User.objects.get(pk=disabled.pk).is_active
        return
    assert lifecycle_lines(caplog) == [
        f"user deactivated by syncfirebaseusers id={disabled.pk} reason=firebase_disabled",
        f"user reactivated by syncfirebaseusers id={back.pk} reason=",
        f"user deactivated by syncfirebaseusers id={deleted.pk} reason=firebase_deleted",
    ]
    for user in (disabled, User.objects.get(pk=disabled.pk)):
        assert (user.is_active, user.deactivation_reason, user.deactivated_at) == (False, "firebase_disabled", NOW)
    for user in (back, User.objects.get(pk=back.pk)):
        assert (user.is_active, user.deactivation_reason, user.deactivated_at) == (True, "", None)


def test_a_user_another_run_changed_first_is_skipped_and_the_rest_still_synced():
    first, second = firebase_user(), firebase_user()
    for user in (first, second):
        firebase_emulator.update_account(user.firebase_uid, disableUser=True)
    stale_first = User.objects.get(pk=first.pk)
    found, not_found = firebase.get_users([first.firebase_uid, second.firebase_uid])
    lifecycle.apply_firebase_states([first], found, not_found)  # the other run

    changes = lifecycle.apply_firebase_states([stale_first, second], found, not_found)

    assert [(c.user.pk, c.change) for c in changes] == [(second.pk, "deactivated")]
    assert not User.objects.get(pk=second.pk).is_active


# The work of an erasure does not grow with the history in queries


def erase_counting_queries(uid: str, size: int) -> int:
    """Erase a user with ``size`` revoked keys named with their email and ``size`` admin entries quoting it."""
    email = f"{uid}@example.com"
    user = make_owner(uid, email)
    staff = User.objects.get_or_create(username="admin-person", defaults={"is_staff": True})[0]
    for n in range(size):
        api_key = issue(user, name=f"key {n} of {email}").api_key
        lifecycle.revoke_key(api_key, actor=Actor.command(f"revokeapikey {email}"))
        LogEntry.objects.log_actions(staff.pk, [user], CHANGE, change_message=f"Changed {n} for {email}.")
    with CaptureQueriesContext(connection) as queries:
        report = lifecycle.erase_user(user, actor=None)
    assert (report.key_names_scrubbed, report.admin_records_scrubbed) == (size, size)
    return len(queries)


def test_an_erasure_reads_each_kind_of_record_at_once_whatever_their_number():
    erase_counting_queries("warm-up", 1)  # the content types, cached after their first reading
    assert erase_counting_queries("short-history", 1) == erase_counting_queries("long-history", 4)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bob@example.com", "(erased)"),
        ("Bob@Example.COM wrote to ann@example.com", "(erased) wrote to ann@example.com"),
        ("ask <bob@example.com>, (bob@example.com) or bob@example.com.", "ask <(erased)>, ((erased)) or (erased)."),
        ("laptop of bob@example.com", "laptop of (erased)"),
        # Other people's addresses that contain it: left alone.
        ("jimbob@example.com", "jimbob@example.com"),
        ("jim.bob@example.com and jim+bob@example.com", "jim.bob@example.com and jim+bob@example.com"),
        ("bob@example.com.au", "bob@example.com.au"),
        ("bob@example.community", "bob@example.community"),
        ("bob@example.com-mail.net", "bob@example.com-mail.net"),
    ],
)
def test_the_email_is_erased_as_a_whole_address_never_from_inside_another(text, expected):
    from apikeys.lifecycle.accounts import _without_email

    assert _without_email(text, "bob@example.com") == expected


def test_erasing_a_user_leaves_the_staff_label_holding_a_longer_address_alone():
    bob = make_owner("uid-bob", "bob@example.com")
    jimbob = User.objects.create_user("jimbob", "jimbob@example.com", "x", is_staff=True)
    api_key = issue(bob, "bob's key").api_key
    staff = Actor(kind=KeyEvent.ActorKind.STAFF, via=KeyEvent.Via.ADMIN, user=jimbob, label=jimbob.email)
    lifecycle.change_key(api_key, name="renamed for bob@example.com", actor=staff)

    lifecycle.erase_user(bob, actor=None)

    renamed = KeyEvent.objects.get(api_key=api_key, action="renamed")
    assert renamed.actor_label == "jimbob@example.com"
    assert renamed.details == {"name": "renamed for (erased)", "previous_name": "bob's key"}


@pytest.mark.django_db
def test_revoke_user_keys_refuses_a_reason_holding_a_secret_even_with_no_key_to_revoke():
    """The reason is checked first, not only by each key's revocation: a user without keys gets the refusal too."""
    owner = make_owner()
    reason = f"found {crypto.generate_key().plaintext} in a public gist"

    with pytest.raises(ValidationError) as refused:
        lifecycle.revoke_user_keys(owner, reason=reason, actor=None)

    assert "reason" in refused.value.message_dict
