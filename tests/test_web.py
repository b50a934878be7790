"""The end-user pages through Django's test client: sign-in, access control, create/show-once, revoke, CSRF."""

import json
import re
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse
from firebase_admin import auth

from apikeys import firebase, lifecycle
from apikeys.models import ApiKey, Scope, User
from apikeys.web import firebase_sdk, views

from . import firebase_emulator

pytestmark = pytest.mark.django_db

KEY_RE = re.compile(r"omi_dev_[0-9a-f]{32}")


def firebase_user(uid=None, email=None) -> User:
    uid = uid or f"uid-{uuid.uuid4().hex[:10]}"
    return User.objects.for_firebase(uid, email or f"{uid}@example.com")


def sign_in(client, account=None) -> Client:
    """``client`` with a session for a real emulator account, as the sign-in page opens it."""
    account = account or firebase_emulator.sign_up()
    client.user = firebase_user(account.uid, account.email)
    client.account = account
    client.force_login(client.user)
    session = client.session
    session[views.AUTH_TIME_KEY] = firebase_emulator.decode_claims(account.id_token)["auth_time"]
    session.save()
    return client


@pytest.fixture
def person(client):
    return sign_in(client)


def create_form_token(client) -> str:
    page = client.get(reverse("web:key-create"))
    return re.search(r'name="form_token" value="([^"]+)"', page.content.decode()).group(1)


def post_new_key(client, name="Zapier sync", scopes=("memories:read",), token=None):
    token = token or create_form_token(client)
    return client.post(reverse("web:key-create"), {"name": name, "scopes": list(scopes), "form_token": token})


# --- access control ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["web:key-list", "web:key-create"])
def test_anonymous_visitors_are_sent_to_sign_in_and_back(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('web:signin')}?next={reverse(name)}"


@pytest.mark.parametrize("name", ["web:key-detail", "web:key-revoke"])
def test_anonymous_visitors_cannot_see_or_revoke_a_key(client, name):
    issued = lifecycle.issue_key(owner=firebase_user(), name="n")
    assert client.get(reverse(name, args=[issued.api_key.pk])).status_code == 302
    assert client.post(reverse("web:key-revoke", args=[issued.api_key.pk])).status_code == 302
    assert ApiKey.objects.get(pk=issued.api_key.pk).revoked_at is None


def test_a_staff_only_account_is_asked_to_sign_in_with_firebase(client, admin_user):
    client.force_login(admin_user)
    response = client.get(reverse("web:key-list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("web:signin"))


def test_another_users_key_is_404_and_stays_active(person):
    theirs = lifecycle.issue_key(owner=firebase_user(), name="theirs")
    for name in ["web:key-detail", "web:key-revoke"]:
        assert person.get(reverse(name, args=[theirs.api_key.pk])).status_code == 404
    assert person.post(reverse("web:key-revoke", args=[theirs.api_key.pk])).status_code == 404
    assert lifecycle.verify_key(theirs.plaintext) is not None


def test_an_unknown_key_id_is_404(person):
    assert person.get(reverse("web:key-detail", args=[uuid.uuid4()])).status_code == 404
    assert person.get("/keys/not-a-uuid/").status_code == 404


def test_signed_in_pages_are_never_cached(person):
    for url in [reverse("web:key-list"), reverse("web:key-create"), reverse("web:signin")]:
        assert "no-store" in person.get(url)["Cache-Control"]


# --- sign-in and sign-out ---------------------------------------------------------------------


def test_sign_in_page_loads_the_sdk_from_our_static_files(client):
    page = client.get(reverse("web:signin")).content.decode()
    import_map = json.loads(re.search(r'<script type="importmap"[^>]*>(.*?)</script>', page, re.S).group(1))
    targets = set(import_map["imports"].values())
    assert targets == {f"/static/{firebase_sdk.STATIC_DIR}/{name}" for name in firebase_sdk.MODULES}
    assert f"{firebase_sdk.CDN_BASE}/firebase-app.js" in import_map["imports"]
    assert "https://" not in re.sub(r'"https://www.gstatic.com[^"]*":', "", page.split("<body>")[0])


def test_sign_in_with_a_fresh_emulator_token_opens_a_session_and_returns(client):
    person = firebase_emulator.sign_up()
    response = client.post(reverse("web:signin"), {"id_token": person.id_token, "next": "/keys/new/"})
    assert response.status_code == 302
    assert response["Location"] == "/keys/new/"
    user = User.objects.get(firebase_uid=person.uid)
    assert user.email == person.email
    assert client.get(reverse("web:key-list")).status_code == 200


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/keys/", "javascript:alert(1)", ""])
def test_sign_in_never_redirects_off_site(client, next_url):
    person = firebase_emulator.sign_up()
    response = client.post(reverse("web:signin"), {"id_token": person.id_token, "next": next_url})
    assert response["Location"] == reverse("web:key-list")


def test_sign_in_rotates_the_session_key(client):
    client.get(reverse("web:signin"))
    client.session.save()
    before = client.session.session_key
    client.post(reverse("web:signin"), {"id_token": firebase_emulator.sign_up().id_token})
    assert client.session.session_key != before


def test_a_bad_token_is_refused_with_the_reason(client):
    response = client.post(reverse("web:signin"), {"id_token": "not-a-token"})
    assert response.status_code == 403
    assert "Your sign-in could not be verified. Please sign in again." in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_missing_token_is_400(client):
    response = client.post(reverse("web:signin"), {})
    assert response.status_code == 400
    assert "Sign in with Firebase first." in response.content.decode()


def test_a_disabled_account_is_refused_clearly(client):
    person = firebase_emulator.sign_up()
    auth.update_user(person.uid, disabled=True, app=firebase.get_app())
    response = client.post(reverse("web:signin"), {"id_token": person.id_token})
    assert response.status_code == 403
    assert "This account has been disabled." in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_deactivated_local_account_is_refused(client):
    person = firebase_emulator.sign_up()
    User.objects.filter(pk=firebase_user(person.uid, person.email).pk).update(is_active=False)
    response = client.post(reverse("web:signin"), {"id_token": person.id_token})
    assert response.status_code == 403
    assert "deactivated" in response.content.decode()


def test_a_token_from_an_old_sign_in_cannot_open_a_session(client):
    person = firebase_emulator.sign_up()
    claims = firebase_emulator.decode_claims(person.id_token)
    claims["auth_time"] = int(time.time()) - 10 * 60  # signed in ten minutes ago, token still valid
    response = client.post(reverse("web:signin"), {"id_token": firebase_emulator.unsigned_token(claims)})
    assert response.status_code == 403
    assert "too old" in response.content.decode()


def test_sign_in_says_when_firebase_is_unreachable(client, monkeypatch):
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9")
    firebase.reset_app()
    response = client.post(reverse("web:signin"), {"id_token": firebase_emulator.sign_up().id_token})
    assert response.status_code == 503
    assert "unavailable" in response.content.decode()


def test_a_signed_in_visitor_skips_the_sign_in_page(person):
    response = person.get(reverse("web:signin") + "?next=/keys/new/")
    assert response["Location"] == "/keys/new/"


def test_sign_out_ends_the_session_on_the_server(person):
    session_key = person.session.session_key
    assert person.get(reverse("web:signout")).status_code == 405
    response = person.post(reverse("web:signout"))
    assert response["Location"] == reverse("web:signin")
    assert not Session.objects.filter(session_key=session_key).exists()
    assert person.get(reverse("web:key-list")).status_code == 302


def test_sign_in_page_explains_when_web_sign_in_is_not_configured(client, settings):
    settings.FIREBASE_WEB_API_KEY = ""
    page = client.get(reverse("web:signin")).content.decode()
    assert "FIREBASE_WEB_API_KEY is missing" in page
    assert 'id="auth-form"' not in page


# --- the key list -----------------------------------------------------------------------------


def test_a_first_time_user_sees_the_empty_state(person):
    page = person.get(reverse("web:key-list")).content.decode()
    assert "No keys yet" in page
    assert "Create your first key" in page


def test_the_list_shows_only_my_active_keys(person):
    mine = lifecycle.issue_key(owner=person.user, name="Mine", scopes=Scope.objects.filter(code="goals:write"))
    gone = lifecycle.issue_key(owner=person.user, name="Gone")
    lifecycle.revoke_key(owner=person.user, key_id=gone.api_key.pk)
    lifecycle.issue_key(owner=firebase_user(), name="Theirs")
    page = person.get(reverse("web:key-list")).content.decode()
    assert "Mine" in page and mine.api_key.key_prefix in page and "goals:write" in page
    assert "never" in page
    assert "Gone" not in page and "Theirs" not in page
    assert "No keys yet" not in page


def test_the_list_costs_the_same_queries_for_many_keys(person, django_assert_max_num_queries):
    for i in range(12):
        lifecycle.issue_key(owner=person.user, name=f"k{i}")
    person.get(reverse("web:key-list"))  # the periodic account check writes the session once
    with django_assert_max_num_queries(4):
        person.get(reverse("web:key-list"))


# --- creating a key and the show-once page ----------------------------------------------------


def test_the_form_groups_scopes_and_checks_the_read_only_default(person):
    page = person.get(reverse("web:key-create")).content.decode()
    for scope in Scope.objects.all():
        checkbox = re.search(rf'<input[^>]*value="{re.escape(scope.code)}"[^>]*>', page).group(0)
        assert ("checked" in checkbox) == scope.is_default
    assert "<legend>Memories</legend>" in page and "<legend>Action items</legend>" in page
    # Each scope's description is visible text tied to its checkbox.
    memories_write = re.search(r'<input[^>]*value="memories:write"[^>]*>', page).group(0)
    described_by = re.search(r'aria-describedby="([^"]+)"', memories_write).group(1)
    assert re.search(rf'id="{described_by}">Create, update and delete memories<', page)


def test_creating_a_key_shows_it_once_and_stores_only_its_hash(person):
    response = post_new_key(person, name="  Zapier sync ", scopes=["memories:read", "memories:write"])
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    plaintext = KEY_RE.search(page).group(0)
    assert page.count(plaintext) == 1
    api_key = lifecycle.verify_key(plaintext)
    assert api_key.owner == person.user and api_key.name == "Zapier sync"
    assert sorted(api_key.scopes.values_list("code", flat=True)) == ["memories:read", "memories:write"]
    assert "will not be shown again" in page
    # Nowhere but that page: not in a cookie, the session store, or any later page.
    assert plaintext not in str(response.cookies)
    assert all(plaintext not in json.dumps(s.get_decoded()) for s in Session.objects.all())
    for url in [reverse("web:key-list"), reverse("web:key-detail", args=[api_key.pk])]:
        assert plaintext not in person.get(url).content.decode()


def test_sending_the_create_form_again_does_not_show_or_make_another_key(person):
    token = create_form_token(person)
    first = post_new_key(person, token=token)
    plaintext = KEY_RE.search(first.content.decode()).group(0)
    again = post_new_key(person, token=token)
    api_key = ApiKey.objects.get(owner=person.user)
    assert again.status_code == 302
    assert again["Location"] == reverse("web:key-detail", args=[api_key.pk])
    followed = person.get(again["Location"]).content.decode()
    assert "shown once and cannot be shown again" in followed
    assert plaintext not in followed
    assert ApiKey.objects.filter(owner=person.user).count() == 1


@pytest.mark.parametrize("token", ["", "short", "has spaces in it and is long enough"])
def test_a_missing_or_malformed_form_token_is_refused_with_input_kept(person, token):
    response = person.post(
        reverse("web:key-create"), {"name": "Kept name", "scopes": ["memories:read"], "form_token": token}
    )
    assert response.status_code == 422
    page = response.content.decode()
    assert "The form was incomplete" in page or "Enter a valid value" in page
    assert 'value="Kept name"' in page
    assert not ApiKey.objects.exists()
    # The re-rendered form carries a fresh, working token.
    fresh = re.search(r'name="form_token" value="([^"]+)"', page).group(1)
    assert post_new_key(person, token=fresh).status_code == 200


def test_the_same_form_token_serves_two_people_independently():
    token = "shared-token-0123456789"
    for _ in range(2):
        client = sign_in(Client())
        assert post_new_key(client, token=token).status_code == 200
    assert ApiKey.objects.filter(request_token=token).count() == 2


@pytest.mark.parametrize(
    "name, scopes, message",
    [
        ("   ", ["memories:read"], "The name must not be empty."),
        ("x" * 101, ["memories:read"], "at most 100 characters"),
        ("bad\nname", ["memories:read"], "control characters"),
        ("omi_dev_" + "a" * 32, ["memories:read"], "looks like it contains an API key"),
        ("Fine", [], "Choose at least one scope."),
        ("Fine", ["memories:delete"], "Unknown scope memories:delete."),
    ],
)
def test_invalid_input_is_explained_beside_the_field_and_kept(person, name, scopes, message):
    response = post_new_key(person, name=name, scopes=scopes)
    assert response.status_code == 422
    page = response.content.decode()
    assert message in page
    assert 'class="field-error"' in page
    if scopes == ["memories:read"]:
        assert re.search(r'value="memories:read"[^>]*checked', page)
    assert not ApiKey.objects.exists()


def test_a_rejected_name_is_put_back_in_the_field(person):
    page = post_new_key(person, name="x" * 101).content.decode()
    assert f'value="{"x" * 101}"' in page


# --- key detail and revocation ----------------------------------------------------------------


def test_the_detail_page_shows_metadata_but_never_the_hash(person):
    issued = lifecycle.issue_key(owner=person.user, name="Reporting")
    page = person.get(reverse("web:key-detail", args=[issued.api_key.pk])).content.decode()
    assert "Reporting" in page and issued.api_key.key_prefix in page and "never" in page
    assert issued.api_key.key_hash not in page
    assert "Revoke key" in page


def test_revoking_asks_first_then_takes_effect_at_once(person):
    issued = lifecycle.issue_key(owner=person.user, name="Old integration")
    confirm = person.get(reverse("web:key-revoke", args=[issued.api_key.pk]))
    assert "stops working immediately" in confirm.content.decode()
    assert lifecycle.verify_key(issued.plaintext) is not None
    response = person.post(reverse("web:key-revoke", args=[issued.api_key.pk]))
    assert response["Location"] == reverse("web:key-list")
    assert lifecycle.verify_key(issued.plaintext) is None
    listing = person.get(response["Location"]).content.decode()
    assert "Revoked “Old integration”" in listing
    assert "No keys yet" in listing


def test_a_revoked_key_page_says_so_and_offers_no_revoke(person):
    issued = lifecycle.issue_key(owner=person.user, name="n")
    lifecycle.revoke_key(owner=person.user, key_id=issued.api_key.pk)
    page = person.get(reverse("web:key-detail", args=[issued.api_key.pk])).content.decode()
    assert "Revoked" in page and "Revoke key" not in page
    assert person.get(reverse("web:key-revoke", args=[issued.api_key.pk]))["Location"] == reverse(
        "web:key-detail", args=[issued.api_key.pk]
    )


# --- CSRF and headers -------------------------------------------------------------------------


def test_every_form_needs_its_csrf_token():
    client = sign_in(Client(enforce_csrf_checks=True))
    issued = lifecycle.issue_key(owner=client.user, name="n")
    posts = {
        reverse("web:key-create"): {"name": "x", "scopes": ["memories:read"], "form_token": "t"},
        reverse("web:key-revoke", args=[issued.api_key.pk]): {},
        reverse("web:signout"): {},
        reverse("web:signin"): {"id_token": firebase_emulator.sign_up().id_token},
    }
    for url, data in posts.items():
        response = client.post(url, data)
        assert response.status_code == 403, url
        assert "That form has expired" in response.content.decode()
    assert ApiKey.objects.count() == 1 and lifecycle.verify_key(issued.plaintext) is not None
    assert client.get(reverse("web:key-list")).status_code == 200  # still signed in


def test_admin_csrf_failures_keep_djangos_own_page(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(reverse("admin:apikeys_scope_add"), {"code": "x:y", "description": "d"})
    assert response.status_code == 403
    assert "That form has expired" not in response.content.decode()
    assert "CSRF verification failed" in response.content.decode()


def test_a_csrf_token_from_the_page_is_accepted():
    client = sign_in(Client(enforce_csrf_checks=True))
    page = client.get(reverse("web:key-create")).content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    token = re.search(r'name="form_token" value="([^"]+)"', page).group(1)
    response = client.post(
        reverse("web:key-create"),
        {"csrfmiddlewaretoken": csrf, "name": "n", "scopes": ["memories:read"], "form_token": token},
    )
    assert response.status_code == 200


def test_web_pages_carry_a_strict_content_security_policy(client, person):
    response = Client().get(reverse("web:signin"))
    policy = response["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    assert f'<script type="importmap" nonce="{nonce}">' in response.content.decode()
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert f"http://{settings.FIREBASE_AUTH_EMULATOR_HOST}" in policy
    assert "Content-Security-Policy" in person.get(reverse("web:key-list"))


def test_outside_emulator_mode_the_policy_allows_only_firebase_endpoints(client, settings):
    settings.FIREBASE_AUTH_EMULATOR_HOST = ""
    policy = client.get(reverse("web:signin"))["Content-Security-Policy"]
    connect = re.search(r"connect-src ([^;]+)", policy).group(1).split()
    assert connect == ["'self'", "https://identitytoolkit.googleapis.com", "https://securetoken.googleapis.com"]


def test_an_unknown_page_is_an_html_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


# --- the Firebase web SDK as static files -----------------------------------------------------


def test_the_sdk_version_matches_package_json():
    package = json.loads((Path(settings.BASE_DIR) / "package.json").read_text())
    pinned = package.get("dependencies", {}).get("firebase") or package["devDependencies"]["firebase"]
    assert pinned == firebase_sdk.VERSION
    assert firebase_sdk.installed_version() == firebase_sdk.VERSION


def test_only_the_two_sdk_modules_are_served():
    for name in firebase_sdk.MODULES:
        assert finders.find(f"{firebase_sdk.STATIC_DIR}/{name}")
    assert not finders.find(f"{firebase_sdk.STATIC_DIR}/package.json")
    assert not finders.find(f"{firebase_sdk.STATIC_DIR}/firebase-firestore.js")
    finder = firebase_sdk.FirebaseSdkFinder()
    assert sorted(path for path, _ in finder.list(None)) == sorted(firebase_sdk.MODULES)
    assert finder.check() == []


def test_a_missing_sdk_is_a_system_check_error(settings, tmp_path):
    settings.BASE_DIR = tmp_path
    errors = firebase_sdk.FirebaseSdkFinder().check()
    assert [e.id for e in errors] == ["apikeys.E001"]
    assert "npm ci" in errors[0].hint


def test_a_firebase_sign_in_never_opens_a_staff_session(client):
    person = firebase_emulator.sign_up()
    user = firebase_user(person.uid, person.email)
    User.objects.filter(pk=user.pk).update(is_staff=True)
    response = client.post(reverse("web:signin"), {"id_token": person.id_token})
    assert response.status_code == 403
    assert "Staff accounts cannot sign in here" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("admin:index")).status_code == 302


def test_a_staff_session_with_a_firebase_uid_is_not_an_end_user(client):
    user = firebase_user()
    User.objects.filter(pk=user.pk).update(is_superuser=True)
    client.force_login(User.objects.get(pk=user.pk))
    assert client.get(reverse("web:key-list")).status_code == 302


# --- sessions follow the Firebase account -----------------------------------------------------


def expire_check(client):
    session = client.session
    session[views.CHECKED_AT_KEY] = time.time() - views.RECHECK_SECONDS - 1
    session.save()


def test_a_session_ends_when_the_account_is_disabled(person):
    assert person.get(reverse("web:key-list")).status_code == 200
    auth.update_user(person.account.uid, disabled=True, app=firebase.get_app())
    assert person.get(reverse("web:key-list")).status_code == 200  # until the next check is due
    expire_check(person)
    response = person.get(reverse("web:key-list"))
    assert response["Location"] == f"{reverse('web:signin')}?next={reverse('web:key-list')}"
    assert "_auth_user_id" not in person.session
    assert "This account has been disabled." in person.get(response["Location"]).content.decode()


def test_a_session_ends_when_firebase_sessions_are_revoked(person):
    time.sleep(1.1)  # Firebase records revocation to the second
    auth.revoke_refresh_tokens(person.account.uid, app=firebase.get_app())
    expire_check(person)
    response = person.get(reverse("web:key-list"))
    assert response.status_code == 302
    assert "Your sessions were ended" in person.get(response["Location"]).content.decode()


def test_a_session_ends_when_the_account_is_deleted(person):
    auth.delete_user(person.account.uid, app=firebase.get_app())
    expire_check(person)
    assert person.get(reverse("web:key-list")).status_code == 302
    assert "_auth_user_id" not in person.session


def test_creating_a_key_always_checks_the_account_first(person):
    token = create_form_token(person)
    auth.update_user(person.account.uid, disabled=True, app=firebase.get_app())
    response = post_new_key(person, token=token)  # no check was due, but creation asks anyway
    assert response.status_code == 302
    assert not ApiKey.objects.exists()


def test_no_key_is_created_when_firebase_cannot_confirm_the_account(person, monkeypatch):
    token = create_form_token(person)
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9")
    firebase.reset_app()
    response = post_new_key(person, name="Kept", token=token)
    assert response.status_code == 503
    assert "could not be confirmed" in response.content.decode()
    assert 'value="Kept"' in response.content.decode()
    assert not ApiKey.objects.exists()
    expire_check(person)
    assert person.get(reverse("web:key-list")).status_code == 200  # a routine check lets the session stand


def test_a_form_with_errors_keeps_its_valid_token(person):
    token = create_form_token(person)
    page = post_new_key(person, name="   ", token=token).content.decode()
    assert f'name="form_token" value="{token}"' in page
