"""Email notices as their owner reads them: prefixes as shown elsewhere, advice that fits who acted,
a staff rotation that tells the owner what to do, one block per key, and the settings page's words."""

import dataclasses
import datetime
import html
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apikeys import lifecycle, tasks
from apikeys.audit import Actor
from apikeys.models import ApiKey, KeyEvent, Notice

from .helpers import issue, make_owner, scopes
from .smtp_server import SmtpServer
from .test_notices import PUBLIC_URL, assert_clean, owner_actor, send_to, staff_actor
from .web.pages import sign_in, text

OWN_WARNING = ": someone else may be using your account"
WHERE_TO_CHANGE = "change the password you sign in to Omi with (at Google or Apple if you sign in with one of them)"


@pytest.fixture
def smtp(settings):
    """aiosmtpd on a free port, and the settings that send notices to it (EMAIL_TIMEOUT 1 s)."""
    server = SmtpServer().start()
    send_to(settings, server.port)
    yield server
    server.stop()


def parts(mail) -> list[str]:
    """The text part and the HTML part's visible words (entities decoded), each with spaces collapsed."""
    words = html.unescape(re.sub(r"<[^>]+>", " ", mail.html))
    return [" ".join(mail.text.split()), " ".join(words.split())]


def sent_mails(smtp, count: int = 1) -> list:
    tasks.send_due_notices()
    return smtp.wait_for(count)


# display prefixes -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_display_prefix_is_shown_as_it_is_with_no_ellipsis_added(smtp, clock):
    owner = make_owner()
    api_key = issue(owner, "shown", expires_at=timezone.now() + datetime.timedelta(days=30)).api_key
    legacy = issue(owner, "imported").api_key
    ApiKey.objects.filter(pk=legacy.pk).update(key_prefix="omi_dev_legacy")
    created = sent_mails(smtp)[0]
    lifecycle.revoke_key(legacy, actor=staff_actor())
    clock.move_to(timezone.now() + datetime.timedelta(days=29))
    tasks.write_expiry_notices()
    mails = sent_mails(smtp, 3)
    assert {mail.subject for mail in mails[1:]} == {
        "Your Omi API key “imported” was changed by someone else",
        "Your Omi API key “shown” expires in 24 hours",
    }
    for mail in [created, *mails[1:]]:
        for part in (mail.text, mail.html):
            assert "…" not in part and "&hellip;" not in part
    for part in (created.text, created.html):
        assert api_key.key_prefix in part
    assert any("omi_dev_legacy" in mail.text and "omi_dev_legacy" in mail.html for mail in mails[1:])


# who created the key ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("actor", "who"),
    [
        (staff_actor, "Omi staff"),
        (lambda: Actor.command("createapikey"), "An Omi administrator"),
    ],
)
def test_a_key_staff_created_says_so_and_does_not_advise_revoking_it(smtp, actor, who):
    owner = make_owner()
    issue(owner, "made for you", actor=actor())
    [mail] = sent_mails(smtp)
    for part in parts(mail):
        assert f"{who} created this key for you. If you did not expect it, contact Omi's support before using" in part
        assert OWN_WARNING not in part and "revoke" not in part.lower() and "change your password" not in part
        assert f"{PUBLIC_URL}/keys/" in part or "See this key" in part
    assert "See this key" in mail.html


@pytest.mark.django_db
def test_a_key_the_owner_s_session_created_keeps_the_warning_and_says_where_to_change_the_password(smtp):
    owner = make_owner()
    issue(owner, "mine", actor=owner_actor(owner))
    [mail] = sent_mails(smtp)
    for part in parts(mail):
        assert "If this was not you, sign in and revoke the key at once." in part
        assert WHERE_TO_CHANGE in part and OWN_WARNING in part
        assert "change your password" not in part and "created this key for you" not in part


@pytest.mark.django_db
def test_a_mail_with_keys_by_the_owner_and_by_staff_words_each_key_for_who_made_it(smtp):
    owner = make_owner()
    issue(owner, "by my session", actor=owner_actor(owner))
    issue(owner, "by staff", actor=staff_actor())
    [mail] = sent_mails(smtp)
    assert mail.subject == "2 new API keys were created on your Omi account"
    for part in parts(mail):
        mine, theirs = part.split("by staff", 1)[0], "by staff" + part.split("by staff", 1)[1]
        assert "From:" in mine and "From:" not in theirs
        assert "created this key for you" not in mine and "Omi staff created this key for you." in theirs
        assert (
            "If you did not create a key shown above with the address and client it came from, "
            "sign in and revoke it at once."
        ) in part
        assert WHERE_TO_CHANGE in part
    assert mail.html.count("Not you? Revoke this key") == 1


# a rotation by staff --------------------------------------------------------------------------


def _rotated_by_command(api_key, grace=3600, recorded_by_earlier_version=False):
    """``rotateapikey --grace`` as the command does it; ``recorded_by_earlier_version``: its audit
    details without the replaced secret's prefix, as versions before it was recorded wrote them."""
    lifecycle.rotate_key(api_key, grace_seconds=grace, actor=Actor.command("rotateapikey"))
    event = KeyEvent.objects.filter(api_key=api_key, action=KeyEvent.Action.ROTATED).latest("at")
    if recorded_by_earlier_version:
        del event.details["previous_key_prefix"]
        event.save(update_fields=["details"])
    return ApiKey.objects.get(pk=api_key.pk)


@pytest.mark.django_db
def test_a_staff_rotation_tells_the_owner_their_apps_stop_and_to_rotate_it_themselves(smtp):
    owner = make_owner()
    api_key = issue(owner, "prod").api_key
    old_prefix = api_key.key_prefix
    Notice.objects.all().delete()
    rotated = _rotated_by_command(api_key)  # the lifecycle records the replaced prefix
    until = rotated.previous_key_expires_at.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    [mail] = sent_mails(smtp)
    rotate_url = f"{PUBLIC_URL}/keys/{api_key.pk}/rotate/"
    assert rotate_url in mail.text and rotate_url in mail.html
    for part in parts(mail):
        assert f"the secret you had ({old_prefix}) keeps working until {until}" in part
        assert "An Omi administrator issued the new secret, and only they saw it: it was not sent to you." in part
        assert f"Apps that use the secret you had ({old_prefix}) stop working at {until} unless they get a new" in part
        assert "Before then, rotate this key yourself to get a secret you hold" in part
        assert "rotating stops the secret you had at once" in part
        assert rotated.key_prefix in part
        assert OWN_WARNING not in part and "Not you? Revoke" not in part
    assert_clean(mail)


@pytest.mark.django_db
def test_without_the_old_prefix_recorded_the_mail_says_the_secret_you_had(smtp):
    owner = make_owner()
    api_key = issue(owner, "prod").api_key
    Notice.objects.all().delete()
    _rotated_by_command(api_key, grace=0, recorded_by_earlier_version=True)
    [mail] = sent_mails(smtp)
    for part in parts(mail):
        assert "the secret you had stopped working at once" in part
        assert "Apps that use the secret you had stopped working at once. Rotate this key yourself" in part


@pytest.mark.django_db
def test_a_staff_rotation_of_a_disabled_key_does_not_claim_the_old_secret_works(smtp):
    owner = make_owner()
    api_key = issue(owner, "paused").api_key
    lifecycle.disable_key(api_key, actor=owner_actor(owner))
    Notice.objects.all().delete()
    rotated = _rotated_by_command(api_key)
    until = rotated.previous_key_expires_at.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    [mail] = sent_mails(smtp)
    for part in parts(mail):
        assert "keeps working" not in part and "stop working at" not in part
        assert f"The key is disabled, so no secret of it works now; if it is enabled before {until}" in part
        assert "Before you use this key again, rotate it yourself to get a secret you hold" in part


@pytest.mark.django_db
def test_the_owner_s_own_rotation_stays_a_security_notice(smtp):
    owner = make_owner()
    api_key = issue(owner, "mine").api_key
    Notice.objects.all().delete()
    actor = dataclasses.replace(owner_actor(owner), ip_address="198.51.100.7")
    lifecycle.rotate_key(api_key, grace_seconds=600, actor=actor)
    [mail] = sent_mails(smtp)
    assert "Not you? Revoke this key" in mail.html
    for part in parts(mail):
        assert "198.51.100.7" in part
        assert "If this was not you, sign in at once and revoke the key." in part
        assert WHERE_TO_CHANGE in part and "only they saw it" not in part


# one block per key ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_one_staff_save_of_one_key_is_one_block_with_a_line_per_change(smtp):
    owner = make_owner()
    api_key = issue(owner, "ci").api_key
    Notice.objects.all().delete()
    later = timezone.now() + datetime.timedelta(days=30)
    staff = staff_actor()
    lifecycle.change_key(api_key, name="ci (renamed)", scopes=scopes("goals:read"), expires_at=later, actor=staff)
    assert Notice.objects.filter(kind="changed_by_other").count() == 3
    [mail] = sent_mails(smtp)
    assert mail.subject == "Changes were made to your Omi API key “ci (renamed)” by someone else"
    for part in parts(mail):
        assert "3 changes" not in part
        assert "One of your Omi API keys was changed by someone else" in part
        assert part.count(api_key.key_prefix) == 1 and part.count("When:") == 1
        assert "renamed from “ci” to “ci (renamed)”" in part and "scopes were changed from" in part
        assert "expiry was changed from never" in part
        assert "If you did not expect these changes" in part
    assert mail.html.count("See this key") == 1


@pytest.mark.django_db
def test_changes_to_several_keys_count_keys_in_the_subject(smtp):
    owner = make_owner()
    first, second = issue(owner, "one").api_key, issue(owner, "two").api_key
    Notice.objects.all().delete()
    staff = staff_actor()
    lifecycle.change_key(first, name="one renamed", scopes=scopes("goals:read"), actor=staff)
    lifecycle.revoke_key(second, actor=staff)
    [mail] = sent_mails(smtp)
    assert mail.subject == "2 of your Omi API keys were changed by someone else"
    for part in parts(mail):
        assert "2 of your Omi API keys were changed by someone else" in part
        assert part.count(first.key_prefix) == 1 and part.count(second.key_prefix) == 1


@pytest.mark.django_db
def test_two_rotations_of_one_key_in_one_mail_are_one_block(smtp):
    owner = make_owner()
    api_key = issue(owner, "twice").api_key
    Notice.objects.all().delete()
    lifecycle.rotate_key(api_key, actor=owner_actor(owner))
    _rotated_by_command(api_key, grace=0)
    [mail] = sent_mails(smtp)
    assert mail.subject == "New secrets were issued for your Omi API key “twice”"
    assert mail.text.count("Name:") == 1 and mail.html.count("font-weight:bold;word-wrap:break-word;") == 1
    for part in parts(mail):
        assert "A new secret was issued for one of your Omi API keys" in part
        assert part.count("When:") == 2
        assert "An Omi administrator issued the new secret" in part
        # the owner's own rotation keeps its warning, worded for the one shown with its address
        assert "If you did not ask for a new secret shown above with the address and client it came from" in part


# the settings page ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_settings_page_says_rotation_notices_cannot_be_turned_off_either():
    person = sign_in(Client())
    words = text(person.get(reverse("web:notification-settings")))
    assert (
        "Always sent; it cannot be turned off. Neither can the notice that one of your keys was given "
        "a new secret (rotated)."
    ) in words
