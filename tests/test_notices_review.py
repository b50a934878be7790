"""Email notices: a mail the server took is never sent again, every wait is bounded, rotations are always
told, staff are never shown with an address, reminders say the time actually left."""

import dataclasses
import datetime
import time

import pytest
from django.utils import timezone

from apikeys import lifecycle, notices, tasks
from apikeys.models import ApiKey, Notice, NotificationSettings, User

from .helpers import NOW, issue, make_owner
from .smtp_server import SlowServer, SmtpServer
from .test_notices import PUBLIC_URL, assert_clean, owner_actor, send_to, staff_actor


@pytest.fixture
def smtp(settings):
    """aiosmtpd on a free port, and the settings that send notices to it (EMAIL_TIMEOUT 1 s)."""
    server = SmtpServer().start()
    send_to(settings, server.port)
    yield server
    server.stop()


# the server took it -------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_mail_the_server_took_is_sent_even_if_the_deadline_passes_during_quit(smtp, settings):
    # Each step answered 0.2 s late, QUIT 0.45 s late: the message is taken after about 1.2 s, and the
    # whole-mail deadline (3 x 0.5 s) passes while waiting for QUIT's answer.
    slow = SlowServer(delay=0.2, quit_delay=0.45)
    settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = slow.port, 0.5
    try:
        issue(make_owner(), "taken")
        assert tasks.send_due_notices() == 1
        notice = Notice.objects.get()
        assert slow.completed == 1
        assert (notice.status, notice.attempts, notice.last_error) == ("sent", 1, "")
        later = timezone.now() + datetime.timedelta(days=1)
        assert notices.send_due(now=later) == 0  # nothing left to send again
        time.sleep(0.5)
        assert slow.completed == 1
    finally:
        slow.stop()


@pytest.mark.django_db
def test_a_server_dripping_its_greeting_is_cut_off_at_the_whole_mail_deadline(smtp, settings):
    # "220-still greeting" every 0.3 s: each line within EMAIL_TIMEOUT (0.5 s), the greeting never ends.
    slow = SlowServer(delay=0.3, greeting_drip=0.3)
    settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = slow.port, 0.5
    try:
        issue(make_owner(), "dripped")
        started = time.monotonic()
        assert tasks.send_due_notices() == 1
        took = time.monotonic() - started
    finally:
        slow.stop()
    assert took < 8, f"a greeting that never ends held the worker for {took:.1f} s"
    notice = Notice.objects.get()
    assert (notice.status, notice.attempts) == ("pending", 1)
    assert "timed out after 1.5 s for the whole mail" in notice.last_error


def test_the_lease_outlasts_the_longest_possible_mail(settings):
    settings.EMAIL_TIMEOUT = 10
    assert notices.lease_seconds() >= 2 * notices.longest_delivery_seconds()
    assert notices.longest_delivery_seconds() >= 4 * settings.EMAIL_TIMEOUT


@pytest.mark.django_db
# The test's relay asks for AUTH over plain TCP on 127.0.0.1 (no certificate to set up); aiosmtpd warns of it.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_a_relay_that_asks_for_a_login_gets_it_and_takes_the_mail(smtp, settings):
    relay = SmtpServer(credentials=("relay-user", "relay-pass")).start()
    settings.EMAIL_PORT = relay.port
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "relay-user", "relay-pass"
    try:
        issue(make_owner(), "through the relay")
        assert tasks.send_due_notices() == 1
        [mail] = relay.wait_for(1)
        assert relay.logins == ["relay-user"] and "through the relay" in mail.subject
        assert Notice.objects.get().status == "sent"
        settings.EMAIL_HOST_PASSWORD = "wrong"
        issue(User.objects.get(), "refused login")
        assert tasks.send_due_notices() == 1
        refused = Notice.objects.get(status="pending")
        assert "535" in refused.last_error and refused.attempts == 1
    finally:
        relay.stop()


# rotation -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_rotation_by_the_owner_is_always_mailed_with_where_it_came_from(smtp):
    owner = make_owner()
    NotificationSettings.objects.create(user=owner, changes_by_others=False, expiry_reminders=False, expired=False)
    api_key = issue(owner, "deploy").api_key
    Notice.objects.all().delete()
    actor = dataclasses.replace(
        owner_actor(owner), ip_address="198.51.100.7", user_agent="Mozilla/5.0 (stolen session)"
    )
    lifecycle.rotate_key(api_key, actor=actor)
    notice = Notice.objects.get()
    assert (notice.kind, notice.status) == ("key_rotated", "pending")
    tasks.send_due_notices()
    [mail] = smtp.wait_for(1)
    assert mail.subject == "A new secret was issued for your Omi API key “deploy”"
    for part in (mail.text, mail.html):
        for fact in ("198.51.100.7", "Mozilla/5.0 (stolen session)", "web pages", f"{PUBLIC_URL}/keys/{api_key.pk}/"):
            assert fact in part, fact
        assert "not you" in part.lower()
        assert "cannot be turned off" in part
    assert_clean(mail)


@pytest.mark.django_db
def test_a_rotation_by_staff_is_mailed_as_a_rotation_without_staff_s_address(smtp):
    owner = make_owner()
    api_key = issue(owner, "ci").api_key
    Notice.objects.all().delete()
    actor = dataclasses.replace(staff_actor(), ip_address="10.9.8.7", user_agent="StaffBrowser/1.0")
    lifecycle.rotate_key(api_key, actor=actor)
    assert list(Notice.objects.values_list("kind", flat=True)) == ["key_rotated"]
    tasks.send_due_notices()
    [mail] = smtp.wait_for(1)
    for part in (mail.text, mail.html):
        assert "by Omi staff" in part
        assert "10.9.8.7" not in part and "StaffBrowser" not in part and "staff@example.com" not in part


# privacy of the actor -----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_key_created_by_staff_shows_no_address_or_client(smtp):
    owner = make_owner()
    actor = dataclasses.replace(staff_actor(), ip_address="10.1.2.3", user_agent="StaffWorkstation/2.0")
    issue(owner, "by staff", actor=actor)
    tasks.send_due_notices()
    [mail] = smtp.wait_for(1)
    for part in (mail.text, mail.html):
        assert "by Omi staff" in part
        assert "10.1.2.3" not in part and "StaffWorkstation" not in part
        assert "From:" not in part and "Client:" not in part


# reminders say the time left ----------------------------------------------------------------


@pytest.mark.django_db
def test_a_late_seven_day_reminder_says_the_time_actually_left(smtp, clock):
    owner = make_owner()
    api_key = issue(owner, "imported long ago", expires_at=NOW + datetime.timedelta(days=30)).api_key
    Notice.objects.all().delete()
    clock.move_to(NOW + datetime.timedelta(days=28))  # the pass missed the 7-day moment: 2 days left
    assert notices.write_expiry_notices() == 1
    tasks.send_due_notices()
    [mail] = smtp.wait_for(1)
    assert mail.subject == "Your Omi API key “imported long ago” expires in 2 days"
    expiry = api_key.expires_at.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    for part in (mail.text, mail.html):
        assert "7 days" not in part
        assert f"expires on {expiry}, in 2 days" in part


@pytest.mark.django_db
def test_a_reminder_less_than_two_days_ahead_counts_hours(smtp, clock):
    owner = make_owner()
    issue(owner, "soon", expires_at=NOW + datetime.timedelta(days=30))
    Notice.objects.all().delete()
    clock.move_to(NOW + datetime.timedelta(days=28, hours=13))  # 35 hours left, no 1-day milestone yet
    assert notices.write_expiry_notices() == 1
    tasks.send_due_notices()
    [mail] = smtp.wait_for(1)
    assert mail.subject == "Your Omi API key “soon” expires in 35 hours"
    for part in (mail.text, mail.html):
        assert "in 35 hours" in part and "7 days" not in part


# a recipient's trouble is theirs ------------------------------------------------------------


@pytest.mark.django_db
def test_a_full_mailbox_delays_only_its_owner_s_mail(smtp):
    smtp.refuse["full@example.com"] = "452 4.2.2 Mailbox full"
    issue(make_owner("uid-full", "full@example.com"), "full")
    issue(make_owner("uid-ok", "ok@example.com"), "fine")
    assert notices.send_due() == 2  # one pass: the full mailbox, then the next owner
    [mail] = smtp.wait_for(1)
    assert mail.rcpt_tos == ["ok@example.com"]
    full = Notice.objects.get(recipient="full@example.com")
    assert (full.status, full.attempts) == ("pending", 1) and "452" in full.last_error
    assert Notice.objects.get(recipient="ok@example.com").status == "sent"


# the address of now -------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_pending_notice_goes_to_the_owner_s_address_of_the_moment_it_is_sent(smtp):
    owner = make_owner("uid-moved", "old@example.com")
    issue(owner, "moved")
    User.objects.filter(pk=owner.pk).update(email="new@example.com")
    tasks.send_due_notices()
    [mail] = smtp.wait_for(1)
    assert mail.rcpt_tos == ["new@example.com"]
    assert Notice.objects.get().recipient == "new@example.com"


@pytest.mark.django_db
def test_a_pending_notice_of_an_owner_whose_address_is_gone_is_skipped(smtp):
    owner = make_owner("uid-gone-address", "was@example.com")
    issue(owner, "nowhere")
    User.objects.filter(pk=owner.pk).update(email="")
    tasks.send_due_notices()
    notice = Notice.objects.get()
    assert (notice.status, notice.last_error) == ("skipped", notices.NO_ADDRESS)
    assert smtp.mails == [] and ApiKey.objects.count() == 1
