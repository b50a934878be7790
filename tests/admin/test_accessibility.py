"""The admin's key pages pass axe-core's WCAG 2.1 AA rules and reflow, at desktop width, 320 px and 200 % zoom.

One walk per layout through real Chromium against a live server, as a staff member: sign-in, the
index, the key list, add (empty, with errors, and the key shown once), a key's page (with its usage
chart, table, last use and addresses; and with errors), rotate (and with an error, and the new
secret shown once), disable (and with an error) and enable, revoking from the list, the key's events
and one event, and the user and scope pages. A key name with no space or hyphen is in the data.
Labels axe cannot judge are checked by name: the expiry date and time inputs, the owner combobox,
and the scopes group with its help.
"""

import datetime

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from apikeys import lifecycle
from apikeys.audit import Actor
from apikeys.models import KeyAddress, KeyEvent, KeyLastUse, KeyUsageHour, Scope, User

from ..axe import LAYOUTS, Findings, serve_axe, unseen_focus
from .pages import (
    EVENT_CHANGELIST,
    KEY_ADD,
    KEY_CHANGELIST,
    SCOPE_CHANGELIST,
    USER_CHANGELIST,
    event_url,
    events_of,
    key_url,
    pause_url,
    rotate_url,
    scope_url,
    user_url,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("contract_scopes")]

LONG_NAME = "NightlyExportOfEveryMemoryAndConversationToTheAnalyticsWarehouse_ForTheQuarterlyComplianceAuditTeam"
PASSWORD = "staff-password-1"


def assert_described_by(control, text: str) -> None:
    """``control`` is described by an element holding ``text``."""
    ids = (control.get_attribute("aria-describedby") or "").split()
    page = control.page
    described = " ".join(page.locator(f"[id='{element_id}']").inner_text() for element_id in ids)
    assert text in described, f"{control} is described by {described!r}, not by {text!r}"


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.name)
def test_the_admin_key_pages_pass_axe_and_reflow(browser, live_server, layout):
    get_user_model().objects.create_superuser("staff", "staff@example.com", PASSWORD)
    owner = User.objects.for_firebase("uid-" + "o" * 60, "customer-with-a-rather-long-address@example.com")
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)
    long_key = lifecycle.issue_key(owner=owner, name=LONG_NAME, expires_at=soon).api_key
    lifecycle.rotate_key(long_key, grace_seconds=3600, actor=Actor.command("rotatekeys"))
    hour = datetime.datetime.now(datetime.UTC).replace(minute=0, second=0, microsecond=0)
    for day in range(0, 30, 3):
        KeyUsageHour.objects.create(api_key=long_key, hour=hour - datetime.timedelta(days=day), accepted=day, expired=1)
    agent = "OmiNightlyExporter/3.2.1(" + "x" * 120 + ")"
    KeyLastUse.objects.create(api_key=long_key, at=hour, outcome="expired", address="2001:db8::1", user_agent=agent)
    KeyAddress.objects.create(api_key=long_key, address="2001:db8::1", first_seen=hour, last_seen=hour, requests=9)
    context = browser.new_context(base_url=live_server.url, **layout.context_options())
    serve_axe(context)
    page = context.new_page()
    script_errors = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    findings = Findings(layout)

    page.goto("/admin/")
    findings.check(page, "admin sign-in")
    page.get_by_label("Username").fill("staff")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Keys, scopes and users")).to_be_visible()
    findings.check(page, "admin index")
    page.goto(KEY_CHANGELIST)
    findings.check(page, "key list")

    # Add: every control has a name, the scopes group its label and help.
    page.goto(KEY_ADD)
    expect(page.get_by_role("combobox", name="Owner")).to_be_visible()
    expires = page.get_by_role("group", name="Expires")
    date, time = expires.get_by_label("Date"), expires.get_by_label("Time")
    expect(date).to_be_visible()
    expect(time).to_be_visible()
    assert_described_by(expires, "Leave empty for a key that never expires.")
    scopes = page.get_by_role("group", name="Scopes")
    expect(scopes).to_be_visible()
    assert_described_by(scopes, "read-only default")
    findings.check(page, "add key")
    assert unseen_focus(page, 30) == [], "these showed no focus indicator when tabbed to"
    date.fill("not a date")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".errornote")).to_be_visible()
    name = page.get_by_label("Name")
    expect(name).to_have_attribute("aria-invalid", "true")
    assert_described_by(name, "This field is required.")
    for control in (date, time):
        expect(control).to_have_attribute("aria-invalid", "true")
    assert_described_by(expires, "Enter a valid date.")
    findings.check(page, "add key, errors")
    page.goto(f"{KEY_ADD}?owner={owner.pk}&name={LONG_NAME}")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#issued-key")).to_be_visible()
    findings.check(page, "key issued, shown once")

    # A key's page, with an error; rotate, with an error, then the new secret shown once.
    page.goto(key_url(long_key))
    expect(page.get_by_role("group", name="Scopes")).to_be_visible()
    findings.check(page, "key page")
    page.get_by_text("Requests per day", exact=True).click()
    expect(page.get_by_role("region", name="Requests per day")).to_be_visible()
    findings.check(page, "key page, usage per day")
    page.get_by_label("Name").fill("")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".errornote")).to_be_visible()
    findings.check(page, "key page, errors")
    page.goto(rotate_url(long_key))
    findings.check(page, "rotate key")
    page.locator("input[type=radio]").evaluate_all("radios => radios.forEach(r => { r.checked = false; })")
    page.get_by_role("button", name="Rotate key").click()
    expect(page.locator(".errornote")).to_be_visible()
    radios = page.locator("input[type=radio]")
    for radio in radios.all():
        expect(radio).to_have_attribute("aria-invalid", "true")
    assert_described_by(page.get_by_role("group", name="The current secret stops working"), "This field is required.")
    findings.check(page, "rotate key, error")
    radios.first.check()
    page.get_by_role("button", name="Rotate key").click()
    expect(page.locator("#issued-key")).to_be_visible()
    findings.check(page, "key rotated, shown once")

    # Disabling (with an error) and enabling again.
    page.goto(pause_url(long_key, "disable"))
    findings.check(page, "disable key")
    page.get_by_label("Reason").fill("a tab\there")
    page.get_by_role("button", name="Disable key").click()
    expect(page.locator(".errornote")).to_be_visible()
    expect(page.get_by_label("Reason")).to_have_attribute("aria-invalid", "true")
    findings.check(page, "disable key, error")
    page.get_by_label("Reason").fill("checking a leak")
    page.get_by_role("button", name="Disable key").click()
    expect(page.get_by_text("The key is disabled")).to_be_visible()
    findings.check(page, "key page, disabled")
    page.goto(pause_url(long_key, "enable"))
    findings.check(page, "enable key")
    page.get_by_role("button", name="Enable key").click()
    expect(page.get_by_text("The key is enabled")).to_be_visible()

    # Revoking from the list, then the events, the user and the scope.
    page.goto(KEY_CHANGELIST)
    page.locator("input.action-select").first.check()
    page.locator("select[name=action]").select_option("revoke_selected")
    page.get_by_role("button", name="Go").click()
    expect(page.get_by_text("Revoked 1 key.")).to_be_visible()
    findings.check(page, "key list, revoked")
    page.goto(events_of(long_key))
    findings.check(page, "key events")
    page.goto(EVENT_CHANGELIST)
    findings.check(page, "event log")
    page.goto(event_url(KeyEvent.objects.filter(api_key=long_key).latest("at")))
    findings.check(page, "event")
    page.goto(USER_CHANGELIST)
    findings.check(page, "users")
    page.goto(user_url(owner))
    findings.check(page, "user")
    page.goto(SCOPE_CHANGELIST)
    findings.check(page, "scopes")
    page.goto(scope_url(Scope.objects.get(code="memories:read")))
    findings.check(page, "scope")

    context.close()
    assert script_errors == []
    findings.assert_none()
