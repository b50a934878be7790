"""Email notices against a real SMTP server (aiosmtpd): what is sent to whom, once, and when mail fails."""

import datetime
import json
import re
import threading
import time
from urllib.parse import urlsplit

import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone

from apikeys import lifecycle, notices, tasks
from apikeys.audit import Actor
from apikeys.models import ApiKey, KeyEvent, Notice, NotificationSettings, User

from .helpers import NOW, issue, make_owner, scopes, service
from .smtp_server import SilentServer, SlowServer, SmtpServer

PUBLIC_URL = "https://keys.example.com"
HASH_LIKE = re.compile(r"[0-9a-f]{40,}")  # a SHA-256 or other digest; key ids (UUIDs, in links) are fine
SECRET_LIKE = re.compile(r"omi_dev_(?:[0-9A-Za-z]{36}|[0-9a-f]{32})")


@pytest.fixture
def smtp(settings):
    """aiosmtpd on a free port, and the settings that send notices to it (EMAIL_TIMEOUT 1 s)."""
    server = SmtpServer().start()
    send_to(settings, server.port)
    yield server
    server.stop()


def send_to(settings, port: int) -> None:
    """The settings that send notices to the SMTP server on 127.0.0.1:``port`` (EMAIL_TIMEOUT 1 s)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 1
    settings.OMIKEYS_SEND_EMAIL = True
    settings.OMIKEYS_PUBLIC_URL = PUBLIC_URL
    settings.DEFAULT_FROM_EMAIL = "Omi keys <keys@example.com>"


def staff_actor() -> Actor:
    staff = User.objects.create_user("staff-member", "staff@example.com", "x", is_staff=True)
    return Actor(kind=KeyEvent.ActorKind.STAFF, via=KeyEvent.Via.ADMIN, user=staff, label=staff.email)


def owner_actor(owner: User) -> Actor:
    return Actor(kind=KeyEvent.ActorKind.USER, via=KeyEvent.Via.WEB, user=owner, label=owner.email)


def assert_clean(mail, *secrets: str) -> None:
    """No secret and no hash in either part: a display prefix at most."""
    for part in (mail.text, mail.html):
        for secret in secrets:
            assert secret not in part
        assert not SECRET_LIKE.search(part)
        for api_key in ApiKey.objects.all():
            assert api_key.key_hash not in part
        assert not HASH_LIKE.search(part), "something hash-like in the mail"


# key_created ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_key_created_through_the_api_is_mailed_once_with_where_it_came_from(user_client, smtp):
    response = user_client.post(
        "/v1/dev/keys",
        data=json.dumps({"name": "CI deploy", "scopes": ["memories:read", "memories:write"]}),
        content_type="application/json",
        REMOTE_ADDR="203.0.113.9",
        HTTP_USER_AGENT="curl/8.5.0",
    )
    assert response.status_code in (200, 201)
    plaintext = response.json()["key"]
    api_key = ApiKey.objects.get(pk=response.json()["id"])
    notice = Notice.objects.get()
    assert (notice.kind, notice.status, notice.recipient) == ("key_created", "pending", user_client.emulator_user.email)
    assert smtp.mails == []  # never inside the request

    assert tasks.send_due_notices() == 1
    assert tasks.send_due_notices() == 0  # a second pass sends nothing more
    [mail] = smtp.wait_for(1)
    time.sleep(0.3)
    assert len(smtp.mails) == 1
    assert mail.rcpt_tos == [user_client.emulator_user.email]
    assert mail.subject == "A new API key “CI deploy” was created on your Omi account"
    assert mail.message["From"] == "Omi keys <keys@example.com>"
    assert mail.message["Auto-Submitted"] == "auto-generated"
    key_url = f"{PUBLIC_URL}/keys/{api_key.pk}/"
    for part in (mail.text, mail.html):
        for fact in ("CI deploy", api_key.key_prefix, "memories:read, memories:write", "203.0.113.9", "curl/8.5.0"):
            assert fact in part
        assert "JSON API" in part and key_url in part and "revoke" in part.lower()
    assert_clean(mail, plaintext)
    notice.refresh_from_db()
    assert (notice.status, notice.attempts, notice.subject) == ("sent", 1, mail.subject)
    assert notice.sent_at is not None and notice.last_error == ""


@pytest.mark.django_db
def test_the_html_part_is_one_column_with_inline_styles_and_nothing_fetched(smtp):
    issue(make_owner(), "phone")
    tasks.send_due_notices()
    [mail] = smtp.wait_for(1)
    html = mail.html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "max-width:560px" in html
    for forbidden in ("<img", "<link", "<style", "<script", "url(", "@import", "<table"):
        assert forbidden not in html.lower()
    hosts = {urlsplit(href).netloc for href in re.findall(r'href="([^"]+)"', html)}
    assert hosts == {"keys.example.com"}


@pytest.mark.django_db
def test_every_link_in_a_mail_goes_to_a_page_that_asks_to_sign_in(smtp):
    owner = make_owner()
    api_key = issue(owner, "links", expires_at=timezone.now() + datetime.timedelta(days=3)).api_key
    ApiKey.objects.filter(pk=api_key.pk).update(created_at=timezone.now() - datetime.timedelta(days=20))
    notices.write_expiry_notices(now=timezone.now() + datetime.timedelta(days=2, hours=12))
    Notice.objects.update(next_attempt_at=timezone.now())
    notices.send_due(now=timezone.now())
    mails = smtp.wait_for(2)
    links = set()
    for mail in mails:
        links |= set(re.findall(r'href="([^"]+)"', mail.html))
        links |= set(re.findall(r"https://\S+", mail.text))
    assert {f"{PUBLIC_URL}/keys/{api_key.pk}/", f"{PUBLIC_URL}/keys/{api_key.pk}/edit/"} <= links
    assert f"{PUBLIC_URL}/settings/notifications/" in links
    anonymous = Client()
    for href in links:
        assert href.startswith(PUBLIC_URL + "/"), href
        response = anonymous.get(href.removeprefix(PUBLIC_URL), HTTP_HOST="localhost")
        assert response.status_code == 302, href
        assert "/signin/" in response["Location"], href


@pytest.mark.django_db
def test_the_created_notice_cannot_be_turned_off(smtp):
    owner = make_owner()
    NotificationSettings.objects.create(user=owner, changes_by_others=False, expiry_reminders=False, expired=False)
    issue(owner, "always")
    tasks.send_due_notices()
    [mail] = smtp.wait_for(1)
    assert "“always” was created" in mail.subject
    assert "cannot be turned off" in mail.text


@pytest.mark.django_db
def test_a_key_created_by_staff_says_so(smtp):
    owner = make_owner()
    issue(owner, "made for you", actor=staff_actor())
    tasks.send_due_notices()
    [mail] = smtp.wait_for(1)
    assert "admin, by Omi staff" in mail.text
    assert "staff@example.com" not in mail.text + mail.html  # staff are never named
    assert Notice.objects.filter(kind="changed_by_other").count() == 0


@pytest.mark.django_db
def test_an_owner_without_an_email_address_gets_a_skipped_notice_not_an_error(smtp):
    owner = User.objects.for_firebase("no-mail", None)
    issue(owner, "quiet")
    notice = Notice.objects.get()
    assert (notice.status, notice.last_error) == ("skipped", notices.NO_ADDRESS)
    assert tasks.send_due_notices() == 0
    assert smtp.mails == []


@pytest.mark.django_db
def test_without_mail_configured_notices_are_recorded_as_skipped(settings):
    settings.OMIKEYS_SEND_EMAIL = False
    issue(make_owner(), "no mail here")
    notice = Notice.objects.get()
    assert (notice.status, notice.last_error) == ("skipped", notices.MAIL_OFF)


# changed_by_other ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_changes_by_the_owner_send_no_notice_but_a_rotation_always_does(smtp):
    owner = make_owner()
    api_key = issue(owner, "mine").api_key
    me = owner_actor(owner)
    lifecycle.change_key(api_key, name="still mine", scopes=scopes("memories:write"), actor=me)
    lifecycle.disable_key(api_key, actor=me)
    lifecycle.enable_key(api_key, actor=me)
    lifecycle.set_expiry(api_key, timezone.now() + datetime.timedelta(days=30), actor=me)
    lifecycle.revoke_key(api_key, actor=me)
    assert list(Notice.objects.values_list("kind", flat=True)) == ["key_created"]
    # A new secret is told even when the owner's own session asked for it: a stolen session could
    # otherwise mint a working secret for an existing key unnoticed.
    rotated = issue(owner, "rotated").api_key
    lifecycle.rotate_key(rotated, actor=me)
    assert sorted(Notice.objects.values_list("kind", flat=True)) == ["key_created", "key_created", "key_rotated"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda key, actor: lifecycle.revoke_key(key, actor=actor, reason="leaked in a public repository"), "revoked"),
        # A key disabled by others is held: only staff can enable it (lifecycle.enable_key).
        (lambda key, actor: lifecycle.disable_key(key, actor=actor), "refused until Omi staff enable it again"),
        (lambda key, actor: lifecycle.change_key(key, name="renamed by staff", actor=actor), "renamed from “ci”"),
        (
            lambda key, actor: lifecycle.change_key(key, scopes=scopes("goals:read"), actor=actor),
            "scopes were changed from",
        ),
        (
            lambda key, actor: lifecycle.set_expiry(key, timezone.now() + datetime.timedelta(days=30), actor=actor),
            "expiry was changed from never",
        ),
    ],
)
def test_a_change_by_staff_is_mailed_to_the_owner(smtp, change, expected):
    owner = make_owner()
    api_key = issue(owner, "ci").api_key
    Notice.objects.all().delete()
    change(api_key, staff_actor())
    tasks.send_due_notices()
    [mail] = smtp.wait_for(1)
    assert mail.rcpt_tos == ["key-owner@example.com"]
    assert mail.subject.startswith("Your Omi API key")
    assert mail.subject.endswith("was changed by someone else")
    for part in (mail.text, mail.html):
        assert expected in part.replace("&ldquo;", "“").replace("&rdquo;", "”")
        assert "Omi staff" in part and api_key.key_prefix[:12] in part
    assert_clean(mail)
    assert f"{PUBLIC_URL}/settings/notifications/" in mail.html
    if "revoked" in expected:
        assert "Reason given: leaked in a public repository" in mail.text


@pytest.mark.django_db
def test_a_service_revoking_all_keys_sends_one_mail_listing_them(smtp):
    owner = make_owner("uid-banned", "banned@example.com")
    keys = [issue(owner, f"key {n}").api_key for n in range(4)]
    Notice.objects.all().delete()
    client = service("act_on_users", name="omi-moderation")
    response = client.post(
        f"/v1/service/users/{owner.firebase_uid}/keys/revoke", data={"reason": "abuse"}, format="json"
    )
    assert response.status_code == 200
    assert Notice.objects.filter(kind="changed_by_other", status="pending").count() == 4

    assert tasks.send_due_notices() == 1
    [mail] = smtp.wait_for(1)
    assert mail.subject == "4 of your Omi API keys were changed by someone else"
    for api_key in keys:
        assert api_key.name in mail.text and api_key.name in mail.html
    assert "an Omi service (omi-moderation)" in mail.text
    assert set(Notice.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.django_db
def test_changes_by_others_can_be_turned_off(smtp):
    owner = make_owner()
    NotificationSettings.objects.create(user=owner, changes_by_others=False)
    api_key = issue(owner, "quiet").api_key
    lifecycle.revoke_key(api_key, actor=staff_actor())
    assert list(Notice.objects.values_list("kind", flat=True)) == ["key_created"]


@pytest.mark.django_db
def test_turning_a_kind_off_before_it_is_sent_skips_it(smtp):
    owner = make_owner()
    api_key = issue(owner, "late").api_key
    lifecycle.revoke_key(api_key, actor=staff_actor())
    NotificationSettings.objects.create(user=owner, changes_by_others=False)
    tasks.send_due_notices()
    tasks.send_due_notices()
    [mail] = smtp.wait_for(1)
    assert "created" in mail.subject
    assert Notice.objects.get(kind="changed_by_other").status == "skipped"


@pytest.mark.django_db
def test_an_erased_user_is_mailed_nothing_and_their_notices_lose_the_address(smtp):
    owner = make_owner("uid-erase", "erase-me@example.com")
    issue(owner, "sent before")
    tasks.send_due_notices()
    smtp.wait_for(1)
    issue(owner, "not sent yet")
    lifecycle.erase_user(owner, actor=staff_actor())
    assert tasks.send_due_notices() == 0
    time.sleep(0.3)
    assert len(smtp.mails) == 1
    [kept] = Notice.objects.all()  # the pending one and the revocation's are gone
    assert (kept.status, kept.recipient, kept.subject, kept.last_error) == ("sent", "", "", "")


# mail server trouble -------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_mail_server_that_is_down_delays_the_mail_and_never_fails_the_request(user_client, smtp):
    smtp.stop()  # the port now refuses connections
    response = user_client.post(
        "/v1/dev/keys", data=json.dumps({"name": "while down"}), content_type="application/json"
    )
    assert response.status_code in (200, 201)
    assert tasks.send_due_notices() == 1
    notice = Notice.objects.get()
    assert (notice.status, notice.attempts) == ("pending", 1)
    assert "could not connect" in notice.last_error or "refused" in notice.last_error
    assert notice.next_attempt_at > timezone.now()
    assert tasks.send_due_notices() == 0  # not due again yet

    smtp.start()  # back, on the same port
    later = notice.next_attempt_at + datetime.timedelta(seconds=1)
    assert notices.send_due(now=later) == 1
    assert notices.send_due(now=later) == 0
    [mail] = smtp.wait_for(1)
    time.sleep(0.3)
    assert len(smtp.mails) == 1 and "“while down”" in mail.subject
    notice.refresh_from_db()
    assert (notice.status, notice.attempts) == ("sent", 2)


@pytest.mark.django_db
def test_a_mail_server_that_never_answers_costs_a_bounded_wait(smtp, settings):
    silent = SilentServer()
    settings.EMAIL_PORT = silent.port
    try:
        issue(make_owner(), "hung")
        started = time.monotonic()
        assert tasks.send_due_notices() == 1
        took = time.monotonic() - started
    finally:
        silent.stop()
    assert took < 10, f"a hung mail server held the worker for {took:.1f} s"
    notice = Notice.objects.get()
    assert (notice.status, notice.attempts) == ("pending", 1)
    assert "timed out" in notice.last_error

    settings.EMAIL_PORT = smtp.port  # the next attempt finds a server that answers
    assert notices.send_due(now=notice.next_attempt_at) == 1
    smtp.wait_for(1)
    notice.refresh_from_db()
    assert notice.status == "sent"


@pytest.mark.django_db
def test_a_mail_server_answering_each_step_just_in_time_is_cut_off_at_three_timeouts(smtp, settings):
    slow = SlowServer(delay=0.8)  # under EMAIL_TIMEOUT (1 s) per step; about 6 s for the whole mail
    settings.EMAIL_PORT = slow.port
    try:
        issue(make_owner(), "dripping")
        started = time.monotonic()
        assert tasks.send_due_notices() == 1
        took = time.monotonic() - started
    finally:
        slow.stop()
    assert took < 5, f"the whole mail was not cut off: {took:.1f} s"
    notice = Notice.objects.get()
    assert (notice.status, notice.attempts) == ("pending", 1)
    assert "timed out after 3 s for the whole mail" in notice.last_error
    assert slow.completed == 0


@pytest.mark.django_db
def test_a_permanent_refusal_fails_the_notice_at_once(smtp):
    smtp.refuse["gone@example.com"] = "550 5.1.1 No such user here"
    issue(make_owner("uid-gone", "gone@example.com"), "nobody home")
    tasks.send_due_notices()
    notice = Notice.objects.get()
    assert (notice.status, notice.attempts) == ("failed", 1)
    assert "550" in notice.last_error and notice.next_attempt_at is None
    assert notices.send_due(now=timezone.now() + datetime.timedelta(days=2)) == 0


@pytest.mark.django_db
def test_a_busy_server_is_tried_again_and_then_given_up(smtp, settings):
    settings.OMIKEYS_NOTICE_RETRY_SCHEDULE = [60, 60]
    smtp.refuse["busy@example.com"] = "451 4.3.0 Try again later"
    issue(make_owner("uid-busy", "busy@example.com"), "busy")
    moment = timezone.now()
    for attempt in range(1, 4):
        assert notices.send_due(now=moment) == 1
        notice = Notice.objects.get()
        assert notice.attempts == attempt and "451" in notice.last_error
        moment = (notice.next_attempt_at or moment) + datetime.timedelta(seconds=1)
    assert notice.status == "failed"
    assert smtp.mails == []


# expiry --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_expiry_notices_come_once_per_milestone_with_a_link_to_extend(smtp, clock):
    owner = make_owner()
    api_key = issue(owner, "expiring", expires_at=NOW + datetime.timedelta(days=10)).api_key
    tasks.send_due_notices()  # the created notice
    smtp.wait_for(1)

    assert tasks.write_expiry_notices() == 0  # nothing due 10 days ahead
    clock.move_to(NOW + datetime.timedelta(days=3, hours=1))
    assert tasks.write_expiry_notices() == 1
    assert tasks.write_expiry_notices() == 0
    mails = smtp.wait_for(2)
    assert mails[1].subject == "Your Omi API key “expiring” expires in 7 days"
    edit = f"{PUBLIC_URL}/keys/{api_key.pk}/edit/"
    assert edit in mails[1].text and edit in mails[1].html
    assert f"{PUBLIC_URL}/settings/notifications/" in mails[1].text and "2027-06-11 12:00 UTC" in mails[1].text
    assert f"{PUBLIC_URL}/keys/{api_key.pk}/rotate/" in mails[1].html
    assert_clean(mails[1])

    clock.move_to(NOW + datetime.timedelta(days=9, hours=1))
    assert tasks.write_expiry_notices() == 1
    clock.move_to(NOW + datetime.timedelta(days=10, minutes=5))
    assert tasks.write_expiry_notices() == 1
    assert tasks.write_expiry_notices() == 0
    mails = smtp.wait_for(4)
    assert [mail.subject for mail in mails[2:]] == [
        "Your Omi API key “expiring” expires in 23 hours",
        "Your Omi API key “expiring” has expired",
    ]
    assert list(Notice.objects.order_by("created_at").values_list("kind", "status")) == [
        ("key_created", "sent"),
        ("expires_7d", "sent"),
        ("expires_1d", "sent"),
        ("expired", "sent"),
    ]


@pytest.mark.django_db
def test_a_milestone_already_passed_when_the_expiry_was_set_is_not_sent(smtp, clock):
    owner = make_owner()
    issue(owner, "two days", expires_at=NOW + datetime.timedelta(days=2))
    assert notices.write_expiry_notices() == 0  # no "7 days" for a key made to live two days
    clock.move_to(NOW + datetime.timedelta(days=1, hours=1))
    assert notices.write_expiry_notices() == 1
    assert list(Notice.objects.filter(kind__startswith="expire").values_list("kind", flat=True)) == ["expires_1d"]


@pytest.mark.django_db
def test_a_changed_expiry_gets_reminders_of_its_own_and_the_old_ones_are_dropped(smtp, clock):
    owner = make_owner()
    api_key = issue(owner, "moved", expires_at=NOW + datetime.timedelta(days=10)).api_key
    clock.move_to(NOW + datetime.timedelta(days=3, hours=1))
    notices.write_expiry_notices()  # the 7-day notice, not sent yet
    lifecycle.set_expiry(api_key, NOW + datetime.timedelta(days=20), actor=owner_actor(owner))
    tasks.send_due_notices()
    tasks.send_due_notices()
    assert Notice.objects.get(kind="expires_7d").status == "skipped"  # no longer true
    clock.move_to(NOW + datetime.timedelta(days=13, hours=1))
    assert notices.write_expiry_notices() == 1
    assert Notice.objects.filter(kind="expires_7d").count() == 2


@pytest.mark.django_db
def test_the_expiry_pass_skips_old_expiries_revoked_keys_and_turned_off_settings(smtp, clock):
    old = make_owner("uid-old", "old@example.com")
    issue(old, "long gone", expires_at=NOW + datetime.timedelta(days=1))
    off = make_owner("uid-off", "off@example.com")
    NotificationSettings.objects.create(user=off, expiry_reminders=False, expired=False)
    issue(off, "quiet", expires_at=NOW + datetime.timedelta(days=30))
    revoked = issue(make_owner("uid-rev", "rev@example.com"), "revoked", expires_at=NOW + datetime.timedelta(days=30))
    lifecycle.revoke_key(revoked.api_key)
    clock.move_to(NOW + datetime.timedelta(days=30, hours=1))
    assert notices.write_expiry_notices() == 0
    # The "long gone" key expired 29 days ago: past the lookback, never reported on a first run.


def _run_in_threads(count: int, target) -> list:
    errors, barrier = [], threading.Barrier(count)

    def run():
        try:
            barrier.wait(timeout=30)
            target()
        except Exception as error:  # reported to the test below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return errors


@pytest.mark.django_db(transaction=True)
def test_the_expiry_pass_run_concurrently_writes_and_sends_each_notice_once(smtp, settings):
    settings.OMIKEYS_SEND_EMAIL = True
    now = timezone.now()
    owners = [make_owner(f"uid-{n}", f"owner{n}@example.com") for n in range(6)]
    for owner in owners:
        issue(owner, "soon", expires_at=now + datetime.timedelta(days=10))
    ApiKey.objects.update(created_at=now - datetime.timedelta(days=30))
    Notice.objects.all().delete()
    later = now + datetime.timedelta(days=3, hours=1)

    assert _run_in_threads(3, lambda: notices.write_expiry_notices(now=later)) == []
    assert notices.write_expiry_notices(now=later) == 0  # and once more, after them
    assert Notice.objects.filter(kind="expires_7d").count() == 6

    assert _run_in_threads(3, lambda: notices.send_due(now=later)) == []
    mails = smtp.wait_for(6)
    time.sleep(0.5)
    assert len(smtp.mails) == 6
    assert sorted(mail.rcpt_tos[0] for mail in mails) == sorted(owner.email for owner in owners)
    assert set(Notice.objects.values_list("status", "attempts")) == {("sent", 1)}


@pytest.mark.django_db(transaction=True)
def test_a_committed_change_queues_one_task_per_owner_and_a_rolled_back_one_none(smtp):
    from django.db import transaction
    from django_q.models import OrmQ

    owner = make_owner()
    keys = [issue(owner, f"k{n}").api_key for n in range(3)]
    OrmQ.objects.all().delete()
    lifecycle.revoke_user_keys(owner, reason="test", actor=staff_actor())
    assert OrmQ.objects.count() == 1  # one task for three notices

    other = make_owner("uid-other", "other@example.com")
    with pytest.raises(RuntimeError), transaction.atomic():
        issue(other, "rolled back")
        raise RuntimeError
    assert OrmQ.objects.count() == 1
    assert not Notice.objects.filter(user=other).exists()
    assert tasks.send_notices(owner.pk) == 2  # the keys' creation, then their revocation: one mail each
    created, revoked = smtp.wait_for(2)
    assert created.subject == "3 new API keys were created on your Omi account"
    assert revoked.subject == "3 of your Omi API keys were changed by someone else"
    assert all(api_key.name in revoked.text for api_key in keys)
