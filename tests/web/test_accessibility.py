"""Every end-user page passes axe-core's WCAG 2.1 AA rules and reflows, at desktop width, 320 px and 200 % zoom.

One walk per layout through real Chromium against a live server and the Auth Emulator:
the sign-in and sign-up pages (with their errors), the key list, the create form (with
errors), the show-once page, a key's page with its history and its usage chart, table, last use and
addresses (also edited, and disabled),
edit (with errors; a revoked and an expired key's), the notification settings (and saved),
rotate (with errors) and its show-once page, revoke, a revoked and an expired key, and the
error pages users see (404, the expired-form 403, the 503 and the 500). The data holds a key
name with no spaces or hyphens, so a page that cannot wrap it scrolls sideways and fails.
Error messages are checked to be tied to their fields (``aria-invalid``,
``aria-describedby``), which axe cannot judge.
"""

import datetime
import re
import uuid

import pytest
from django.db import OperationalError
from playwright.sync_api import expect

from apikeys import lifecycle
from apikeys.audit import Actor
from apikeys.models import ApiKey, KeyAddress, KeyLastUse, KeyUsageHour, User
from apikeys.web import views

from .. import firebase_emulator
from ..axe import LAYOUTS, Findings, serve_axe, unseen_focus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("contract_scopes")]

# 100 characters (the longest name allowed) and no place to break a line.
LONG_NAME = "NightlyExportOfEveryMemoryAndConversationToTheAnalyticsWarehouse_ForTheQuarterlyComplianceAuditTeam"


def described_by(locator) -> set[str]:
    """The ids an element's ``aria-describedby`` names."""
    return set((locator.get_attribute("aria-describedby") or "").split())


def assert_tied(page, field, error_id: str) -> None:
    """``field`` is marked invalid and described by the visible error ``error_id``."""
    expect(field).to_have_attribute("aria-invalid", "true")
    assert error_id in described_by(field), f"{field} is not described by #{error_id}"
    expect(page.locator(f"#{error_id}")).to_be_visible()


def assert_not_marked(field) -> None:
    assert field.get_attribute("aria-invalid") in (None, "false")


def keys_of(email):
    owner = User.objects.get(email=email)
    long_key = lifecycle.issue_key(
        owner=owner, name=LONG_NAME, expires_at=datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=60)
    ).api_key
    lifecycle.rotate_key(long_key, grace_seconds=3600, actor=Actor.command("rotatekeys"))
    # Usage on most of the last 30 days, a long IPv6 address and a user agent with no place to break a line.
    now = datetime.datetime.now(datetime.UTC).replace(minute=0, second=0, microsecond=0)
    KeyUsageHour.objects.bulk_create(
        KeyUsageHour(api_key=long_key, hour=now - datetime.timedelta(days=day), accepted=day * 7, revoked=day % 3)
        for day in range(0, 30, 2)
    )
    agent = "OmiNightlyExporter/3.2.1(" + "x" * 120 + ")"
    KeyLastUse.objects.create(
        api_key=long_key, at=now, outcome="accepted", address="2001:db8:85a3::8a2e:370:7334", user_agent=agent
    )
    for address in ("2001:db8:85a3::8a2e:370:7334", "203.0.113.250"):
        KeyAddress.objects.create(api_key=long_key, address=address, first_seen=now, last_seen=now, requests=12345)
    expired = lifecycle.issue_key(owner=owner, name="Expired" + LONG_NAME[7:]).api_key
    ApiKey.objects.filter(pk=expired.pk).update(
        expires_at=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    )
    return long_key, expired


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.name)
def test_every_user_page_passes_axe_and_reflows(browser, live_server, layout, monkeypatch):
    person = firebase_emulator.sign_up(f"a11y-{uuid.uuid4().hex[:8]}-with-a-long-address@example.com")
    User.objects.for_firebase(person.uid, person.email)
    long_key, expired = keys_of(person.email)
    context = browser.new_context(base_url=live_server.url, **layout.context_options())
    serve_axe(context)
    page = context.new_page()
    script_errors = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and not message.text.startswith("Failed to load resource")
            and script_errors.append(message.text)
        ),
    )
    findings = Findings(layout)
    email, password = page.get_by_label("Email"), page.get_by_label("Password")

    # Sign in and sign up, each with an error tied to the field it is about.
    response = page.goto("/signin/")
    assert "script-src 'self'" in response.headers["content-security-policy"]  # axe runs under the real policy
    findings.check(page, "sign in")
    page.get_by_role("button", name="Sign in").click()
    assert_tied(page, email, "auth-error")
    expect(email).to_be_focused()
    findings.check(page, "sign in, no email")
    email.fill(person.email)
    password.fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That email and password do not match an account.")
    assert_tied(page, email, "auth-error")
    assert_tied(page, password, "auth-error")
    page.goto("/signup/")
    findings.check(page, "sign up")
    email.fill(person.email)
    password.fill("short")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("alert")).to_contain_text("at least 6 characters")
    assert_tied(page, password, "auth-error")
    assert_not_marked(email)
    findings.check(page, "sign up, short password")
    password.fill(firebase_emulator.PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("alert")).to_contain_text("already an account")
    assert_tied(page, email, "auth-error")
    assert_not_marked(password)
    page.goto("/signin/")
    email.fill(person.email)
    password.fill(firebase_emulator.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/keys/$"))
    findings.check(page, "key list")

    # Create: the form, its errors tied to each control, and the show-once page.
    page.goto("/keys/new/")
    findings.check(page, "create")
    assert unseen_focus(page, 25) == [], "these showed no focus indicator when tabbed to"
    page.locator("input[type=checkbox]:checked").evaluate_all("boxes => boxes.forEach(b => b.click())")
    page.get_by_role("button", name="Create key").click()
    assert_tied(page, page.get_by_label("Name"), "name-error")
    for box in page.locator("input[type=checkbox]").all():
        assert_tied(page, box, "scopes-error")
    findings.check(page, "create, errors")
    page.get_by_label("Name").fill(LONG_NAME)
    page.locator("input[value='memories:read']").check()
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_label("API key")).to_be_visible()
    findings.check(page, "show-once")

    # A key's page with its history; the history's scroll container is a named, focusable region.
    page.goto(f"/keys/{long_key.pk}/")
    findings.check(page, "key detail")
    page.get_by_text("Requests per day", exact=True).click()
    expect(page.get_by_role("region", name="Requests per day")).to_be_visible()
    findings.check(page, "key detail, usage per day")
    history = page.get_by_role("region", name="History of this key, newest first")
    expect(history).to_have_attribute("tabindex", "0")
    page.locator("h1").click()  # start the keyboard walk from the page's title
    for _ in range(20):  # past the usage section's tab stops (its table toggle and two scrolling regions)
        page.keyboard.press("Tab")
        if history.evaluate("element => element === document.activeElement"):
            break
    expect(history).to_be_focused()
    outline = history.evaluate("element => getComputedStyle(element).outlineStyle")
    assert outline not in ("none", ""), "the focused history region shows no focus outline"

    # Edit: the form, its errors tied to each control (all or nothing), and the key after a change.
    page.get_by_role("link", name="Edit key…").click()
    expect(page.get_by_role("heading", name=re.compile("^Edit "))).to_be_visible()
    findings.check(page, "edit")
    page.get_by_label("Name").fill("")
    page.locator("input[type=checkbox]:checked").evaluate_all("boxes => boxes.forEach(b => b.click())")
    page.get_by_label(re.compile(r"\b30 days from now")).check()
    page.get_by_role("button", name="Save changes").click()
    assert_tied(page, page.get_by_label("Name"), "name-error")
    expect(page.get_by_label("Name")).to_be_focused()
    for box in page.locator("input[type=checkbox]").all():
        assert_tied(page, box, "scopes-error")
    for radio in page.locator("input[type=radio]").all():
        assert_not_marked(radio)
    findings.check(page, "edit, errors")
    page.get_by_label("Name").fill(LONG_NAME)
    page.locator("input[value='memories:read']").check()
    page.get_by_label(re.compile(r"Keep the current expiry")).check()
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Scopes changed.")).to_be_visible()
    findings.check(page, "key detail, edited")

    # Disable and enable: the disabled key's page, its status explained.
    page.get_by_role("button", name="Disable key").click()
    expect(page.locator("#disabled-note")).to_be_visible()
    findings.check(page, "key detail, disabled")
    page.get_by_role("button", name="Enable key").click()
    expect(page.get_by_text("It works again.")).to_be_visible()

    # A key Omi staff disabled: who and why, and no Enable button.
    key_id = re.search(r"/keys/([0-9a-f-]{36})/", page.url).group(1)
    lifecycle.disable_key(ApiKey.objects.get(pk=key_id), actor=Actor.command("disableapikey"), reason="checking a leak")
    page.reload()
    expect(page.locator("#disabled-note")).to_contain_text("Disabled by Omi staff: “checking a leak”.")
    expect(page.get_by_role("button", name="Enable key")).to_have_count(0)
    findings.check(page, "key detail, disabled by staff")

    # Notification settings, before and after saving.
    page.get_by_role("link", name="Notifications").click()
    expect(page.get_by_role("heading", name="Email notifications")).to_be_visible()
    findings.check(page, "notification settings")
    page.get_by_label("A key expires soon").uncheck()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Notification settings saved.")).to_be_visible()
    expect(page.get_by_label("A key expires soon")).not_to_be_checked()
    expect(page.get_by_label("A key was created on my account")).to_be_disabled()
    findings.check(page, "notification settings, saved")

    # Rotate: the page, an error tied to the radio buttons, and the new secret shown once.
    page.goto(f"/keys/{long_key.pk}/rotate/")
    findings.check(page, "rotate")
    page.locator("input[type=radio]").evaluate_all("radios => radios.forEach(r => { r.checked = false; })")
    page.get_by_role("button", name="Rotate key").click()
    for radio in page.locator("input[type=radio]").all():
        assert_tied(page, radio, "grace-error")
    findings.check(page, "rotate, errors")
    page.get_by_label("After 1 hour").check()
    page.get_by_role("button", name="Rotate key").click()
    expect(page.get_by_label("API key")).to_be_visible()
    findings.check(page, "rotated, show-once")

    # Revoke, and what is left to see.
    page.goto(f"/keys/{long_key.pk}/revoke/")
    findings.check(page, "revoke")
    page.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_text("It no longer works.")).to_be_visible()
    findings.check(page, "key list, revoked message")
    page.goto(f"/keys/{long_key.pk}/")
    findings.check(page, "key detail, revoked")
    assert page.goto(f"/keys/{long_key.pk}/edit/").status == 409
    findings.check(page, "edit, revoked")
    page.goto(f"/keys/{expired.pk}/")
    findings.check(page, "key detail, expired")
    page.goto(f"/keys/{expired.pk}/edit/")
    findings.check(page, "edit, expired")

    # The error pages users see.
    assert page.goto(f"/keys/{uuid.uuid4()}/").status == 404
    findings.check(page, "not found")
    page.goto(f"/keys/{expired.pk}/revoke/")
    page.locator("main input[name=csrfmiddlewaretoken]").evaluate("input => { input.value = 'x'.repeat(64); }")
    with page.expect_response(lambda response: response.request.method == "POST") as sent:
        page.get_by_role("button", name="Revoke key").click()
    assert sent.value.status == 403
    findings.check(page, "form expired")

    def database_gone(*args, **kwargs):
        raise OperationalError("the database went away")

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(views, "_own_key", database_gone)  # the live server runs in this process
    assert page.goto(f"/keys/{expired.pk}/").status == 503
    findings.check(page, "unavailable")
    monkeypatch.setattr(views, "_own_key", broken)
    assert page.goto(f"/keys/{expired.pk}/").status == 500
    findings.check(page, "server error")

    context.close()
    assert script_errors == [], "a script or the content security policy reported errors"
    findings.assert_none()
