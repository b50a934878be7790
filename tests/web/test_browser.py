"""The end-user pages in real headless Chromium, against a live server and the Firebase Auth Emulator.

Every page visited is saved as a screenshot under ``artifacts/screenshots/``
(git-ignored) so a person can look at them after a run.
"""

import datetime
import re
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings
from firebase_admin import auth
from playwright.sync_api import expect

from apikeys import firebase, lifecycle
from apikeys.audit import Actor
from apikeys.models import ApiKey, KeyEvent, Scope, User

from .. import firebase_emulator

SCREENSHOTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"
KEY_RE = re.compile(r"^omi_dev_(?:[0-9A-Za-z]{36}|[0-9a-f]{32})$")

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("contract_scopes")]


class Visit:
    """A browser tab that records where it went, what it loaded and what it complained about."""

    def __init__(self, browser, base_url: str, name: str, viewport: dict):
        self.base_url = base_url
        self.name = name
        self.context = browser.new_context(base_url=base_url, viewport=viewport)
        self.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
        self.page = self.context.new_page()
        self.hosts: set[str] = set()
        self.console_errors: list[str] = []
        self.page.on("request", lambda request: self.hosts.add(urlsplit(request.url).netloc))
        self.failed_loads: list[str] = []
        # A page answering 4xx on purpose (a form with errors) also logs "Failed to load
        # resource"; those are checked by status, so only script and CSP errors count here.
        self.page.on(
            "console",
            lambda message: (
                message.type == "error"
                and not message.text.startswith("Failed to load resource")
                and self.console_errors.append(message.text)
            ),
        )
        self.page.on(
            "response",
            lambda response: (
                response.status >= 400
                and response.request.resource_type != "document"
                and response.url.startswith(base_url)
                and self.failed_loads.append(f"{response.status} {response.url}")
            ),
        )
        self.page.on("pageerror", lambda error: self.console_errors.append(str(error)))
        self.shots = 0

    def shoot(self, label: str) -> None:
        self.shots += 1
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SCREENSHOTS / f"{self.name}-{self.shots:02d}-{label}.png", full_page=True)


@pytest.fixture
def visit(browser, live_server, request):
    opened = []

    def open_tab(viewport=None) -> Visit:
        tab = Visit(browser, live_server.url, request.node.name, viewport or {"width": 1280, "height": 800})
        opened.append(tab)
        return tab

    yield open_tab
    for tab in opened:
        tab.context.close()
        allowed = {urlsplit(live_server.url).netloc, settings.FIREBASE_AUTH_EMULATOR_HOST}
        assert tab.hosts <= allowed, f"requests left the site: {tab.hosts - allowed}"
        assert tab.failed_loads == [], "a stylesheet, script or call failed to load"
        assert tab.console_errors == [], "a script or the content security policy reported errors"


def api_keys(base_url: str, email: str) -> list[dict]:
    token = firebase_emulator.sign_in(email)
    response = requests.get(f"{base_url}/v1/dev/keys", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    response.raise_for_status()
    return response.json()


def call_with_key(page, secret: str):
    """``GET /v1/dev/key`` with an API key, as a service checking it would."""
    return page.request.get("/v1/dev/key", headers={"Authorization": f"Bearer {secret}"})


def fill_credentials(page, email: str, password: str = firebase_emulator.PASSWORD) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)


def test_a_newcomer_creates_copies_lists_and_revokes_a_key(visit, live_server):
    tab = visit()
    page = tab.page
    email = f"newcomer-{uuid.uuid4().hex[:8]}@example.com"

    # A protected page sends us to sign in, and back there afterwards.
    page.goto("/keys/new/")
    expect(page).to_have_url(re.compile(r"/signin/\?next=/keys/new/$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    tab.shoot("sign-in")
    page.get_by_role("link", name="Create an account").click()
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    fill_credentials(page, email)
    tab.shoot("create-account")
    page.get_by_label("Password").press("Enter")  # the keyboard is enough
    expect(page).to_have_url(re.compile(r"/keys/new/$"))
    expect(page.get_by_role("heading", name="Create a key")).to_be_visible()

    # Sign out ends the session; signing in again works with the same account.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/signin/$"))
    expect(page.get_by_text("You have signed out.")).to_be_visible()
    tab.shoot("signed-out")
    page.goto("/keys/")
    expect(page).to_have_url(re.compile(r"/signin/\?next=/keys/$"))
    fill_credentials(page, email)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/keys/$"))
    expect(page.get_by_role("heading", name="No keys yet")).to_be_visible()
    tab.shoot("empty-list")

    # Create a key with chosen scopes.
    page.get_by_role("link", name="Create your first key").click()
    expect(page.get_by_label("read").first).to_be_checked()
    tab.shoot("create-form")
    page.get_by_label("Name").fill("Zapier sync")
    page.locator("input[value='memories:write']").check()
    page.locator("input[value='goals:read']").uncheck()
    expect(page.get_by_label("Never")).to_be_checked()
    page.get_by_label(re.compile(r"\b90 days")).check()
    page.get_by_role("button", name="Create key").click()

    # Shown once, copied to the clipboard.
    expect(page.get_by_text("It will not be shown again.")).to_be_visible()
    plaintext = page.get_by_label("API key").input_value()
    assert KEY_RE.match(plaintext)
    tab.shoot("show-once")
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == plaintext
    assert plaintext not in page.url

    # The copied key works against the API, with the scopes ticked.
    chosen = ["action_items:read", "conversations:read", "memories:read", "memories:write"]
    calling = call_with_key(page, plaintext)
    assert calling.status == 200
    assert calling.json()["scopes"] == chosen and calling.json()["name"] == "Zapier sync"
    api_key = lifecycle.verify_key(plaintext).api_key
    assert api_key is not None and api_key.owner.email == email
    listed = api_keys(live_server.url, email)
    assert [(k["id"], k["name"], k["scopes"]) for k in listed] == [(str(api_key.pk), "Zapier sync", chosen)]
    expires = f"{api_key.expires_at:%-d %b %Y}"
    # Counted from the moment of creation (the form and the core each read the clock once, a moment apart).
    assert abs(api_key.expires_at - api_key.created_at - datetime.timedelta(days=90)) < datetime.timedelta(minutes=1)
    expect(page.locator(".meta")).to_contain_text(expires)

    # Reloading does not show the key again, nor create another.
    page.reload()
    expect(page.get_by_text("shown once and cannot be shown again")).to_be_visible()
    assert plaintext not in page.content()
    tab.shoot("after-reload")
    assert len(api_keys(live_server.url, email)) == 1

    # The list shows it: used once already, expiring in 90 days.
    page.get_by_role("link", name="My keys", exact=True).click()
    row = page.get_by_role("row", name=re.compile("Zapier sync"))
    expect(row).to_contain_text(api_key.key_prefix)
    expect(row).to_contain_text("memories:write")
    expect(row).to_contain_text("Active")
    expect(row.locator("td[data-label='Expires']")).to_contain_text(expires)
    expect(row.locator("td[data-label='Last used']")).not_to_contain_text("never")
    tab.shoot("key-list")

    # Rotate with a grace period: the new key is shown once, and both work meanwhile.
    row.get_by_role("link", name="Zapier sync").click()
    expect(page.get_by_role("heading", name="Zapier sync")).to_be_visible()
    tab.shoot("key-detail")
    page.get_by_role("link", name="Rotate key…").click()
    expect(page.get_by_role("heading", name="Rotate “Zapier sync”?")).to_be_visible()
    expect(page.get_by_label("Immediately")).to_be_checked()
    tab.shoot("rotate-confirm")
    assert lifecycle.verify_key(plaintext).api_key.key_prefix == api_key.key_prefix  # asking is not rotating
    page.get_by_label("After 24 hours").check()
    page.get_by_role("button", name="Rotate key").click()
    expect(page.get_by_role("heading", name="The new secret for “Zapier sync”")).to_be_visible()
    expect(page.get_by_text("The old key keeps working until")).to_be_visible()
    rotated = page.get_by_label("API key").input_value()
    assert KEY_RE.match(rotated) and rotated != plaintext and rotated not in page.url
    tab.shoot("rotated-show-once")
    page.get_by_role("button", name="Copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == rotated
    for secret in (plaintext, rotated):
        response = call_with_key(page, secret)
        assert response.status == 200 and response.json()["id"] == str(api_key.pk)
        assert response.json()["scopes"] == chosen

    # Sending the rotation again (a reload) rotates nothing and shows nothing.
    page.reload()
    expect(page.get_by_text("The new key was shown when it was rotated and cannot be shown again.")).to_be_visible()
    assert rotated not in page.content() and plaintext not in page.content()
    assert call_with_key(page, rotated).status == 200
    expect(page.locator(".meta")).to_contain_text("still works until")
    history = page.locator("table.events tbody tr")
    expect(history).to_have_count(2)
    expect(history.nth(0)).to_contain_text("Rotated; old secret accepted until")
    expect(history.nth(0)).to_contain_text("you")
    expect(history.nth(1)).to_contain_text("Created, expires")
    expect(history.nth(1)).to_contain_text("Headless Chrome")
    tab.shoot("key-detail-rotated")

    # Revoke, after confirming.
    page.get_by_role("link", name="Revoke key…").click()
    expect(page.get_by_role("heading", name="Revoke “Zapier sync”?")).to_be_visible()
    tab.shoot("revoke-confirm")
    assert lifecycle.verify_key(plaintext).api_key is not None  # asking is not revoking
    page.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_text("Revoked “Zapier sync”")).to_be_visible()
    expect(page.get_by_role("heading", name="No keys yet")).to_be_visible()
    tab.shoot("revoked")
    assert lifecycle.verify_key(plaintext).api_key is None
    assert api_keys(live_server.url, email) == []
    for secret in (plaintext, rotated):  # the grace period ends with the key
        refused = call_with_key(page, secret)
        assert refused.status == 401 and refused.json() == {"detail": "Invalid API Key"}


def test_wrong_password_and_disabled_accounts_get_clear_messages(visit):
    person = firebase_emulator.sign_up()
    tab = visit()
    page = tab.page
    page.goto("/signin/")
    fill_credentials(page, person.email, "not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That email and password do not match an account.")
    expect(page.get_by_role("button", name="Sign in")).to_be_enabled()
    tab.shoot("wrong-password")

    auth.update_user(person.uid, disabled=True, app=firebase.get_app())
    fill_credentials(page, person.email)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("This account has been disabled.")
    tab.shoot("disabled")
    assert "/signin/" in page.url


def test_creating_an_account_that_exists_says_sign_in_instead(visit):
    person = firebase_emulator.sign_up()
    tab = visit()
    tab.page.goto("/signup/")
    fill_credentials(tab.page, person.email)
    tab.page.get_by_role("button", name="Create account").click()
    expect(tab.page.get_by_role("alert")).to_have_text("There is already an account with this email. Sign in instead.")


def sign_in_as_new_user(tab) -> str:
    email = f"user-{uuid.uuid4().hex[:8]}@example.com"
    tab.page.goto("/signup/")
    fill_credentials(tab.page, email)
    tab.page.get_by_role("button", name="Create account").click()
    expect(tab.page).to_have_url(re.compile(r"/keys/$"))
    return email


def test_form_errors_appear_beside_the_field_with_input_kept(visit):
    tab = visit()
    sign_in_as_new_user(tab)
    page = tab.page
    page.goto("/keys/new/")
    page.get_by_label("Name").fill("omi_dev_" + "a" * 32)
    checked = page.locator("input[type=checkbox]:checked")
    expect(checked).to_have_count(Scope.objects.filter(is_default=True).count())
    checked.evaluate_all("boxes => boxes.forEach(b => b.click())")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#name-error")).to_contain_text("looks like it contains an API key")
    expect(page.locator("#scopes-error")).to_have_text("Choose at least one scope.")
    expect(page.get_by_label("Name")).to_have_value("omi_dev_" + "a" * 32)
    expect(page.get_by_label("Name")).to_be_focused()
    expect(page.locator("input[type=checkbox]")).to_have_count(Scope.objects.count())
    tab.shoot("form-errors")


def test_pages_fit_a_phone_screen(visit):
    tab = visit(viewport={"width": 390, "height": 844})
    sign_in_as_new_user(tab)
    page = tab.page
    page.goto("/keys/new/")
    page.get_by_label("Name").fill("Phone")
    page.get_by_role("button", name="Create key").dblclick()  # impatient thumbs
    expect(page.get_by_label("API key")).to_be_visible()
    assert ApiKey.objects.filter(name="Phone").count() == 1
    tab.shoot("show-once-phone")
    page.goto("/keys/")
    tab.shoot("key-list-phone")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0


def test_a_staff_member_finds_and_revokes_any_key_in_the_admin(visit, django_user_model):
    django_user_model.objects.create_superuser("staff", "staff@example.com", "staff-password-1")
    owner = User.objects.for_firebase("uid-customer", "customer@example.com")
    issued = lifecycle.issue_key(owner=owner, name="Leaked in a repo")
    lifecycle.issue_key(owner=User.objects.for_firebase("uid-other", "other@example.com"), name="Unrelated")
    tab = visit(viewport={"width": 1400, "height": 900})
    page = tab.page
    page.goto("/admin/")
    page.get_by_label("Username").fill("staff")
    page.get_by_label("Password").fill("staff-password-1")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Keys, scopes and users")).to_be_visible()
    page.goto("/admin/apikeys/apikey/")
    page.locator("#searchbar").fill("customer@example.com")
    page.locator("#searchbar").press("Enter")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(issued.api_key.key_prefix)
    tab.shoot("admin-search")
    rows.first.locator("input.action-select").check()
    page.locator("select[name=action]").select_option("revoke_selected")
    page.get_by_role("button", name="Go").click()
    expect(page.get_by_text("Revoked 1 key.")).to_be_visible()
    expect(rows.first).to_contain_text("Revoked")
    tab.shoot("admin-revoked")
    assert lifecycle.verify_key(issued.plaintext).api_key is None
    assert issued.api_key.key_hash not in page.content()


def phone_fits(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0


def test_rotation_fits_a_phone_and_a_double_tap_rotates_once(visit):
    tab = visit(viewport={"width": 390, "height": 844})
    email = sign_in_as_new_user(tab)
    owner = User.objects.get(email=email)
    issued = lifecycle.issue_key(owner=owner, name="Phone app")
    page = tab.page
    page.goto(f"/keys/{issued.api_key.pk}/")
    page.get_by_role("link", name="Rotate key…").click()
    expect(page.get_by_label("After 1 hour")).to_be_visible()
    phone_fits(page)
    tab.shoot("rotate-confirm-phone")
    page.get_by_label("After 1 hour").check()
    page.get_by_role("button", name="Rotate key").dblclick()  # impatient thumbs
    expect(page.get_by_label("API key")).to_be_visible()
    phone_fits(page)
    tab.shoot("rotated-show-once-phone")
    assert KeyEvent.objects.filter(api_key=issued.api_key, action=KeyEvent.Action.ROTATED).count() == 1
    new = page.get_by_label("API key").input_value()
    assert lifecycle.verify_key(new).api_key is not None and lifecycle.verify_key(issued.plaintext).api_key is not None
    page.get_by_role("link", name="I have copied it: back to the key").click()
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    phone_fits(page)
    tab.shoot("key-detail-history-phone")


def test_expired_keys_and_the_history_on_desktop_and_phone(visit, settings):
    desktop = visit()
    email = sign_in_as_new_user(desktop)
    owner = User.objects.get(email=email)
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)
    expired = lifecycle.issue_key(owner=owner, name="Last year's import", expires_at=soon)
    ApiKey.objects.filter(pk=expired.api_key.pk).update(
        expires_at=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2)
    )
    busy = lifecycle.issue_key(owner=owner, name="Nightly export", expires_at=soon)
    lifecycle.rotate_key(busy.api_key, grace_seconds=3600, actor=Actor.command("rotatekeys"))
    lifecycle.set_expiry(busy.api_key, soon + datetime.timedelta(days=30), actor=Actor.command("setexpiry"))
    page = desktop.page
    page.goto("/keys/")
    expired_row = page.get_by_role("row", name=re.compile("Last year's import"))
    expect(expired_row).to_contain_text("Expired")
    expect(expired_row).to_contain_text("no longer works")
    desktop.shoot("key-list-expired")
    expired_row.get_by_role("link", name="Last year's import").click()
    expect(page.get_by_text("An expired key cannot be rotated")).to_be_visible()
    expect(page.get_by_role("link", name="Rotate key…")).to_have_count(0)
    desktop.shoot("key-detail-expired")
    page.goto(f"/keys/{busy.api_key.pk}/")
    expect(page.locator("table.events tbody tr")).to_have_count(3)
    expect(page.locator("table.events tbody tr").first).to_contain_text("Omi staff, command setexpiry")
    desktop.shoot("key-detail-history")

    # At the active-key limit the form says so, and the message takes the focus.
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 1
    page.goto("/keys/new/")
    page.get_by_label("Name").fill("One too many")
    page.get_by_role("button", name="Create key").click()
    alert = page.locator(".notice-error[role=alert]")
    expect(alert).to_contain_text("You already have 1 active API key, the most allowed.")
    expect(alert).to_be_focused()
    expect(page.get_by_label("Name")).to_have_value("One too many")
    desktop.shoot("create-at-limit")

    phone = visit(viewport={"width": 390, "height": 844})
    phone.page.goto("/signin/")
    fill_credentials(phone.page, email)
    phone.page.get_by_role("button", name="Sign in").click()
    expect(phone.page).to_have_url(re.compile(r"/keys/$"))
    expect(phone.page.get_by_text("no longer works")).to_be_visible()
    phone_fits(phone.page)
    phone.shoot("key-list-expired-phone")
    phone.page.goto(f"/keys/{busy.api_key.pk}/")
    expect(phone.page.get_by_role("heading", name="History")).to_be_visible()
    phone_fits(phone.page)
    phone.shoot("key-detail-history-phone")


def test_an_owner_edits_a_key_in_place_all_or_nothing(visit):
    tab = visit()
    email = sign_in_as_new_user(tab)
    owner = User.objects.get(email=email)
    issued = lifecycle.issue_key(owner=owner, name="Zapier sync", scopes=Scope.objects.filter(code="memories:read"))
    page = tab.page
    page.goto(f"/keys/{issued.api_key.pk}/")
    page.get_by_role("link", name="Edit key…").click()
    expect(page.get_by_role("heading", name="Edit “Zapier sync”")).to_be_visible()
    expect(page.get_by_label("Name")).to_have_value("Zapier sync")
    expect(page.locator("input[type=checkbox]:checked")).to_have_count(1)
    keep = page.get_by_label(re.compile(r"Keep the current expiry"))
    expect(keep).to_be_checked()
    expect(keep.locator("xpath=..")).to_contain_text("never expires")
    tab.shoot("edit-form")

    # One bad part refuses every part: the messages sit beside their fields, the input is kept.
    page.get_by_label("Name").fill("omi_dev_" + "b" * 32)
    page.locator("input[value='memories:read']").uncheck()
    page.get_by_label(re.compile(r"\b90 days from now")).check()
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#name-error")).to_contain_text("looks like it contains an API key")
    expect(page.locator("#scopes-error")).to_have_text("Choose at least one scope.")
    expect(page.get_by_label("Name")).to_be_focused()
    expect(page.get_by_label(re.compile(r"\b90 days from now"))).to_be_checked()
    tab.shoot("edit-errors")
    unchanged = ApiKey.objects.get(pk=issued.api_key.pk)
    assert (unchanged.name, unchanged.expires_at) == ("Zapier sync", None)
    assert list(unchanged.scopes.values_list("code", flat=True)) == ["memories:read"]

    # Corrected, every part changes at once, and the same secret now carries the new scopes.
    page.get_by_label("Name").fill("Zapier sync (prod)")
    page.locator("input[value='memories:read']").check()
    page.locator("input[value='memories:write']").check()
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", name="Zapier sync (prod)")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Name, scopes, expiry changed.")
    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    expect(page.locator(".meta")).to_contain_text(f"{api_key.expires_at:%-d %b %Y}")
    rows = page.locator("table.events tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.filter(has_text="Renamed to “Zapier sync (prod)”")).to_have_count(1)
    expect(rows.filter(has_text="Scopes changed to memories:read, memories:write")).to_have_count(1)
    expect(rows.filter(has_text="Expiry changed to")).to_have_count(1)
    tab.shoot("edited")
    calling = call_with_key(page, issued.plaintext)
    assert calling.status == 200
    assert calling.json()["scopes"] == ["memories:read", "memories:write"]
    assert calling.json()["name"] == "Zapier sync (prod)"


def test_an_owner_disables_a_key_and_enables_it_again(visit):
    tab = visit()
    email = sign_in_as_new_user(tab)
    issued = lifecycle.issue_key(owner=User.objects.get(email=email), name="Nightly export")
    page = tab.page
    page.goto(f"/keys/{issued.api_key.pk}/")
    disable = page.get_by_role("button", name="Disable key")
    expect(disable).to_have_accessible_description(
        "It stops working at once and keeps its secret; enable it again any time. "
        "A safe first step if you think the key leaked."
    )
    expect(page.get_by_role("button", name="Enable key")).to_have_count(0)
    disable.click()

    expect(page.get_by_role("status")).to_contain_text("Disabled “Nightly export”")
    expect(page.locator(".meta .status")).to_have_text("Disabled")
    expect(page.locator("#disabled-note")).to_contain_text("requests with it are refused")
    expect(page.get_by_role("link", name="Rotate key…")).to_be_visible()
    tab.shoot("disabled")
    refused = call_with_key(page, issued.plaintext)
    assert refused.status == 401 and refused.json() == {"detail": "Invalid API Key: this key is disabled."}
    page.get_by_role("link", name="My keys", exact=True).click()
    expect(page.get_by_role("row", name=re.compile("Nightly export"))).to_contain_text("Disabled")

    page.get_by_role("link", name="Nightly export").click()
    page.get_by_role("button", name="Enable key").click()
    expect(page.get_by_role("status")).to_contain_text("It works again.")
    expect(page.locator(".meta .status")).to_have_text("Active")
    assert call_with_key(page, issued.plaintext).status == 200
    rows = page.locator("table.events tbody tr")
    expect(rows.nth(0)).to_contain_text("Enabled")
    expect(rows.nth(1)).to_contain_text("Disabled")
    expect(rows.nth(0)).to_contain_text("you")
