"""Under DEBUG (what scripts/dev runs), Django's error pages work in a browser despite the pages' CSP."""

import uuid

import pytest
from django.test import Client

from apikeys import lifecycle
from apikeys.models import User
from apikeys.web import history

from .pages import sign_in

pytestmark = pytest.mark.django_db(transaction=True)

DEBUG_YELLOW = "rgb(255, 255, 204)"  # #ffc, the summary box of Django's technical 404 and 500 pages


@pytest.fixture
def debug(settings):
    settings.DEBUG = True
    return settings


@pytest.fixture
def tab(browser, live_server):
    """A browser tab signed in as a real emulator account, recording CSP reports and script errors."""
    client = sign_in(Client())
    context = browser.new_context(base_url=live_server.url)
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page = context.new_page()
    page.problems = []
    # The page's own 404/500 status (and the debug page's missing favicon) are reported as failed
    # loads; what counts is a blocked style or script, or a script error.
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and not message.text.startswith("Failed to load resource")
            and page.problems.append(message.text)
        ),
    )
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    yield page
    context.close()


def summary_background(page) -> str:
    return page.evaluate("getComputedStyle(document.querySelector('#summary')).backgroundColor")


def test_the_debug_404_of_a_web_page_is_styled(debug, tab):
    response = tab.goto(f"/keys/{uuid.uuid4()}/")

    assert response.status == 404
    assert "'unsafe-inline'" in response.headers["content-security-policy"]
    assert summary_background(tab) == DEBUG_YELLOW
    assert tab.problems == []


def test_the_debug_500_of_a_web_page_is_styled_and_its_script_runs(debug, tab, monkeypatch):
    user = User.objects.exclude(firebase_uid=None).get()
    key_id = lifecycle.issue_key(owner=user, name="broken page").api_key.pk
    monkeypatch.setattr(history, "event_rows", lambda *args: 1 / 0)

    response = tab.goto(f"/keys/{key_id}/")

    assert response.status == 500
    assert "ZeroDivisionError" in tab.content()
    assert summary_background(tab) == DEBUG_YELLOW
    assert tab.evaluate("typeof toggle") == "function"
    assert tab.problems == []


def test_without_debug_the_policy_stays_strict(tab):
    response = tab.goto(f"/keys/{uuid.uuid4()}/")

    assert response.status == 404
    policy = response.headers["content-security-policy"]
    assert "unsafe-inline" not in policy and "'nonce-" in policy
