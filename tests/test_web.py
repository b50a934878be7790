"""The end-user pages through Django's test client: sign-in, access control, create/show-once, expiry,
rotation, history, revoke, limits, CSRF."""

import datetime
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
from django.utils import timezone
from firebase_admin import auth

from apikeys import firebase, lifecycle
from apikeys.audit import Actor
from apikeys.models import ApiKey, KeyEvent, Scope, User
from apikeys.web import firebase_sdk, history, views

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


def post_new_key(client, name="Zapier sync", scopes=("memories:read",), token=None, **extra):
    token = token or create_form_token(client)
    data = {"name": name, "scopes": list(scopes), "form_token": token}
    if "expires_in" in extra:
        data["expires_in"] = extra.pop("expires_in")
    return client.post(reverse("web:key-create"), data, **extra)


def rotate_form_prefix(client, key_id) -> str:
    """The display prefix the rotate page puts in its hidden field."""
    page = client.get(reverse("web:key-rotate", args=[key_id])).content.decode()
    return re.search(r'name="expected_prefix" value="([^"]+)"', page).group(1)


def post_rotate(client, key_id, grace_seconds=0, prefix=None, **extra):
    prefix = prefix or rotate_form_prefix(client, key_id)
    data = {"grace_seconds": grace_seconds, "expected_prefix": prefix}
    return client.post(reverse("web:key-rotate", args=[key_id]), data, **extra)


def tomorrow() -> datetime.datetime:
    return timezone.now() + datetime.timedelta(days=1)


def expire(api_key: ApiKey) -> None:
    """Make a key expired, as time passing would."""
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - datetime.timedelta(minutes=1))


# --- access control ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["web:key-list", "web:key-create"])
def test_anonymous_visitors_are_sent_to_sign_in_and_back(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('web:signin')}?next={reverse(name)}"


@pytest.mark.parametrize("name", ["web:key-detail", "web:key-revoke", "web:key-rotate"])
def test_anonymous_visitors_cannot_see_rotate_or_revoke_a_key(client, name):
    issued = lifecycle.issue_key(owner=firebase_user(), name="n")
    assert client.get(reverse(name, args=[issued.api_key.pk])).status_code == 302
    assert client.post(reverse("web:key-revoke", args=[issued.api_key.pk])).status_code == 302
    data = {"grace_seconds": 0, "expected_prefix": issued.api_key.key_prefix}
    assert client.post(reverse("web:key-rotate", args=[issued.api_key.pk]), data).status_code == 302
    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert api_key.revoked_at is None and api_key.rotated_at is None


def test_a_staff_only_account_is_asked_to_sign_in_with_firebase(client, admin_user):
    client.force_login(admin_user)
    response = client.get(reverse("web:key-list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("web:signin"))


def test_another_users_key_is_404_and_stays_active(person):
    theirs = lifecycle.issue_key(owner=firebase_user(), name="theirs")
    for name in ["web:key-detail", "web:key-revoke", "web:key-rotate"]:
        assert person.get(reverse(name, args=[theirs.api_key.pk])).status_code == 404
    assert person.post(reverse("web:key-revoke", args=[theirs.api_key.pk])).status_code == 404
    rotate = {"grace_seconds": 0, "expected_prefix": theirs.api_key.key_prefix}
    assert person.post(reverse("web:key-rotate", args=[theirs.api_key.pk]), rotate).status_code == 404
    assert lifecycle.verify_key(theirs.plaintext) is not None
    assert ApiKey.objects.get(pk=theirs.api_key.pk).key_prefix == theirs.api_key.key_prefix
    assert not KeyEvent.objects.filter(api_key=theirs.api_key).exclude(action=KeyEvent.Action.CREATED).exists()


def test_an_unknown_key_id_is_404(person):
    assert person.get(reverse("web:key-detail", args=[uuid.uuid4()])).status_code == 404
    assert person.get("/keys/not-a-uuid/").status_code == 404


def test_signed_in_pages_are_never_cached(person):
    issued = lifecycle.issue_key(owner=person.user, name="n")
    urls = [reverse("web:key-list"), reverse("web:key-create"), reverse("web:signin")]
    urls += [reverse(name, args=[issued.api_key.pk]) for name in ["web:key-detail", "web:key-rotate", "web:key-revoke"]]
    for url in urls:
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


def test_the_list_shows_only_my_unrevoked_keys(person):
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
        issued = lifecycle.issue_key(owner=person.user, name=f"k{i}", expires_at=tomorrow())
        if i % 3 == 0:
            expire(issued.api_key)
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
        reverse("web:key-rotate", args=[issued.api_key.pk]): {
            "grace_seconds": 0,
            "expected_prefix": issued.api_key.key_prefix,
        },
        reverse("web:key-revoke", args=[issued.api_key.pk]): {},
        reverse("web:signout"): {},
        reverse("web:signin"): {"id_token": firebase_emulator.sign_up().id_token},
    }
    for url, data in posts.items():
        response = client.post(url, data)
        assert response.status_code == 403, url
        assert "That form has expired" in response.content.decode()
    assert ApiKey.objects.count() == 1 and lifecycle.verify_key(issued.plaintext) is not None
    assert ApiKey.objects.get().rotated_at is None
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


def test_the_rotate_form_accepts_the_csrf_token_from_its_page():
    client = sign_in(Client(enforce_csrf_checks=True))
    issued = lifecycle.issue_key(owner=client.user, name="n")
    url = reverse("web:key-rotate", args=[issued.api_key.pk])
    page = client.get(url).content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    data = {"csrfmiddlewaretoken": csrf, "grace_seconds": 0, "expected_prefix": issued.api_key.key_prefix}
    response = client.post(url, data)
    assert response.status_code == 200
    assert lifecycle.verify_key(issued.plaintext) is None


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


# --- expiry -----------------------------------------------------------------------------------


def text(response) -> str:
    """A page's visible words, without tags, spaces collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())).replace(" ,", ",")


def radios(page: str, name: str) -> dict[str, bool]:
    """The radio buttons called ``name`` on a page: value -> checked."""
    found = re.findall(rf'<input type="radio" name="{name}" value="([^"]+)"[^>]*>', page)
    tags = re.findall(rf'<input type="radio" name="{name}" value="[^"]+"[^>]*>', page)
    return {value: " checked" in tag for value, tag in zip(found, tags, strict=True)}


def test_the_expiry_choices_default_to_never(person):
    page = person.get(reverse("web:key-create")).content.decode()
    assert radios(page, "expires_in") == {"never": True, "30": False, "90": False, "365": False}
    assert "<legend>Expires</legend>" in page
    in_thirty_days = timezone.now() + datetime.timedelta(days=30)
    assert f"until {in_thirty_days:%-d %b %Y}" in page


def test_expiry_choices_beyond_the_longest_lifetime_are_hidden_and_refused(person, settings):
    settings.OMIKEYS_MAX_KEY_LIFETIME_DAYS = 90
    page = person.get(reverse("web:key-create")).content.decode()
    assert list(radios(page, "expires_in")) == ["never", "30", "90"]
    response = post_new_key(person, expires_in="365")
    assert response.status_code == 422
    page = response.content.decode()
    assert "Choose one of the expiry options." in page
    assert re.search(r'name="expires_in" value="never"[^>]*autofocus', page)  # the first error has the focus
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("days", [30, 90, 365])
def test_a_chosen_expiry_is_counted_from_now_and_shown(person, days):
    before = timezone.now()
    response = post_new_key(person, name="Temporary", expires_in=str(days))
    assert response.status_code == 200
    api_key = ApiKey.objects.get(owner=person.user)
    expected = datetime.timedelta(days=days)
    assert before + expected <= api_key.expires_at <= timezone.now() + expected
    shown = f"{api_key.expires_at:%-d %b %Y}"
    assert shown in response.content.decode()
    assert shown in person.get(reverse("web:key-list")).content.decode()
    assert shown in person.get(reverse("web:key-detail", args=[api_key.pk])).content.decode()
    event = api_key.events.get()
    assert event.details["expires_at"] == api_key.expires_at.isoformat()


def test_without_an_expiry_choice_a_key_never_expires(person):
    assert post_new_key(person).status_code == 200  # an older form, without the field
    assert post_new_key(person, name="Chosen", expires_in="never").status_code == 200
    assert list(ApiKey.objects.values_list("expires_at", flat=True)) == [None, None]
    page = person.get(reverse("web:key-list")).content.decode()
    expires_cells = re.findall(r'<td data-label="Expires">(.*?)</td>', page, re.S)
    assert len(expires_cells) == 2 and all("never" in cell for cell in expires_cells)


def test_an_expired_key_is_listed_as_expired_and_can_still_be_revoked(person):
    issued = lifecycle.issue_key(owner=person.user, name="Old job", expires_at=tomorrow())
    lifecycle.issue_key(owner=person.user, name="Fresh")
    expire(issued.api_key)
    assert lifecycle.verify_key(issued.plaintext) is None
    page = person.get(reverse("web:key-list")).content.decode()
    expired_row = re.search(r'<tr class="is-expired">(.*?)</tr>', page, re.S).group(1)
    assert "Old job" in expired_row and "Expired" in expired_row and "no longer works" in expired_row
    assert page.count('class="is-expired"') == 1  # "Fresh" is not marked

    detail = person.get(reverse("web:key-detail", args=[issued.api_key.pk])).content.decode()
    assert "expired on" in detail and "no longer works" in detail
    assert "Rotate key" not in detail and "An expired key cannot be rotated" in detail
    assert "Revoke key…" in detail

    confirm = person.get(reverse("web:key-revoke", args=[issued.api_key.pk]))
    assert confirm.status_code == 200 and "already no longer works" in confirm.content.decode()
    response = person.post(reverse("web:key-revoke", args=[issued.api_key.pk]))
    assert response["Location"] == reverse("web:key-list")
    assert ApiKey.objects.get(pk=issued.api_key.pk).revoked_at is not None
    listing = person.get(response["Location"]).content.decode()
    assert "Revoked “Old job”" in listing
    assert 'class="is-expired"' not in listing and "Fresh" in listing


def test_expired_keys_do_not_count_against_the_active_key_limit(person, settings):
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 1
    issued = lifecycle.issue_key(owner=person.user, name="Old", expires_at=tomorrow())
    assert post_new_key(person).status_code == 409
    expire(issued.api_key)
    assert post_new_key(person).status_code == 200


# --- rotation ---------------------------------------------------------------------------------


def test_rotating_asks_first_with_grace_choices(person):
    issued = lifecycle.issue_key(owner=person.user, name="CI deploy")
    detail = person.get(reverse("web:key-detail", args=[issued.api_key.pk])).content.decode()
    assert f'href="{reverse("web:key-rotate", args=[issued.api_key.pk])}">Rotate key…</a>' in detail
    response = person.get(reverse("web:key-rotate", args=[issued.api_key.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert radios(page, "grace_seconds") == {"0": True, "3600": False, "86400": False, "604800": False}
    for label in ["Immediately", "After 1 hour", "After 24 hours", "After 7 days"]:
        assert label in page
    assert "stops working the moment you rotate" in page and "keeps working for a week" in page
    assert f'name="expected_prefix" value="{issued.api_key.key_prefix}"' in page
    assert re.search(r'<form method="post" action="[^"]+/rotate/" class="form" novalidate data-submit-once>', page)
    # Asking is not rotating.
    assert lifecycle.verify_key(issued.plaintext) is not None
    assert ApiKey.objects.get(pk=issued.api_key.pk).rotated_at is None


def test_rotating_shows_the_new_secret_once_and_stops_the_old_one(person):
    issued = lifecycle.issue_key(owner=person.user, name="CI deploy", scopes=Scope.objects.filter(code="goals:write"))
    response = post_rotate(person, issued.api_key.pk)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    plaintext = KEY_RE.search(page).group(0)
    assert plaintext != issued.plaintext and page.count(plaintext) == 1
    assert "The new secret for “CI deploy”" in page and "will not be shown again" in page
    assert "The old key stopped working just now." in page
    assert "goals:write" in page
    api_key = lifecycle.verify_key(plaintext)
    assert api_key.pk == issued.api_key.pk and api_key.name == "CI deploy"
    assert lifecycle.verify_key(issued.plaintext) is None
    # Nowhere but that page: not a cookie, the session store, a message, or a later page.
    assert plaintext not in str(response.cookies) and plaintext not in str(person.cookies)
    assert all(plaintext not in json.dumps(s.get_decoded()) for s in Session.objects.all())
    for url in [
        reverse("web:key-list"),
        reverse("web:key-detail", args=[api_key.pk]),
        reverse("web:key-rotate", args=[api_key.pk]),
    ]:
        later = person.get(url)
        assert plaintext not in later.content.decode() and plaintext not in str(later.cookies)
    assert not KEY_RE.search(json.dumps(list(KeyEvent.objects.values("details", "actor_label", "user_agent"))))


@pytest.mark.parametrize("grace_seconds", [3600, 86400, 604800])
def test_each_grace_choice_keeps_the_old_secret_working_that_long(person, grace_seconds):
    issued = lifecycle.issue_key(owner=person.user, name="n")
    response = post_rotate(person, issued.api_key.pk, grace_seconds=grace_seconds)
    assert response.status_code == 200
    new_plaintext = KEY_RE.search(response.content.decode()).group(0)
    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert api_key.previous_key_expires_at - api_key.rotated_at == datetime.timedelta(seconds=grace_seconds)
    assert f"keeps working until {api_key.previous_key_expires_at:%-d %b %Y, %H:%M}" in text(response)
    assert lifecycle.verify_key(issued.plaintext) is not None and lifecycle.verify_key(new_plaintext) is not None
    event = api_key.events.get(action=KeyEvent.Action.ROTATED)
    assert event.details["grace_seconds"] == grace_seconds
    detail = person.get(reverse("web:key-detail", args=[api_key.pk])).content.decode()
    assert "Old secret" in detail and "still works until" in detail


@pytest.mark.parametrize("data", [{"grace_seconds": "999"}, {"grace_seconds": "-1"}, {}])
def test_an_unknown_grace_period_is_refused_without_rotating(person, data):
    issued = lifecycle.issue_key(owner=person.user, name="n")
    data = {"expected_prefix": issued.api_key.key_prefix, **data}
    response = person.post(reverse("web:key-rotate", args=[issued.api_key.pk]), data)
    assert response.status_code == 422
    page = response.content.decode()
    assert "Choose" in page and 'class="field-error"' in page
    assert re.search(r'name="grace_seconds" value="0"[^>]*autofocus', page)
    assert ApiKey.objects.get(pk=issued.api_key.pk).rotated_at is None


def test_a_rotate_form_without_its_prefix_rotates_nothing(person):
    issued = lifecycle.issue_key(owner=person.user, name="n")
    response = person.post(reverse("web:key-rotate", args=[issued.api_key.pk]), {"grace_seconds": 0})
    assert response.status_code == 422
    assert "The form was incomplete" in response.content.decode()
    assert ApiKey.objects.get(pk=issued.api_key.pk).rotated_at is None


def test_sending_the_rotate_form_again_rotates_once(person, settings):
    settings.OMIKEYS_KEY_CREATION_RATE = (1, 3600)  # a repeat must not count against the rate either
    issued = lifecycle.issue_key(owner=person.user, name="n")
    prefix = rotate_form_prefix(person, issued.api_key.pk)
    first = post_rotate(person, issued.api_key.pk, prefix=prefix)
    new_plaintext = KEY_RE.search(first.content.decode()).group(0)
    again = post_rotate(person, issued.api_key.pk, prefix=prefix)  # a reload, or a second click
    assert again.status_code == 302
    assert again["Location"] == reverse("web:key-detail", args=[issued.api_key.pk])
    followed = person.get(again["Location"]).content.decode()
    assert "The new key was shown when it was rotated and cannot be shown again." in followed
    assert new_plaintext not in followed
    assert lifecycle.verify_key(new_plaintext) is not None
    assert KeyEvent.objects.filter(api_key=issued.api_key, action=KeyEvent.Action.ROTATED).count() == 1


@pytest.mark.parametrize("state", ["expired", "revoked"])
def test_an_expired_or_revoked_key_cannot_be_rotated(person, state):
    issued = lifecycle.issue_key(owner=person.user, name="n", expires_at=tomorrow())
    if state == "expired":
        expire(issued.api_key)
    else:
        lifecycle.revoke_api_key(issued.api_key)
    url = reverse("web:key-rotate", args=[issued.api_key.pk])
    detail = reverse("web:key-detail", args=[issued.api_key.pk])
    assert person.get(url)["Location"] == detail
    response = post_rotate(person, issued.api_key.pk, prefix=issued.api_key.key_prefix)
    assert response.status_code == 302 and response["Location"] == detail
    page = person.get(detail).content.decode()
    said = {"expired": "This key has expired", "revoked": "This key has been revoked"}[state]
    assert said in page and "cannot be rotated" in page
    assert not KeyEvent.objects.filter(action=KeyEvent.Action.ROTATED).exists()
    assert ApiKey.objects.get(pk=issued.api_key.pk).key_prefix == issued.api_key.key_prefix


def test_rotating_checks_the_account_first(person):
    issued = lifecycle.issue_key(owner=person.user, name="n")
    prefix = rotate_form_prefix(person, issued.api_key.pk)
    auth.update_user(person.account.uid, disabled=True, app=firebase.get_app())
    response = post_rotate(person, issued.api_key.pk, prefix=prefix)
    assert response.status_code == 302 and response["Location"].startswith(reverse("web:signin"))
    assert ApiKey.objects.get(pk=issued.api_key.pk).rotated_at is None


# --- limits -----------------------------------------------------------------------------------


def test_too_many_active_keys_is_explained_on_the_form(person, settings):
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 2
    first = lifecycle.issue_key(owner=person.user, name="one")
    lifecycle.issue_key(owner=person.user, name="two")
    token = create_form_token(person)
    response = post_new_key(person, name="Third", token=token, expires_in="30")
    assert response.status_code == 409
    page = response.content.decode()
    assert "You already have 2 active API keys, the most allowed." in page
    assert re.search(r'class="notice notice-error" role="alert" tabindex="-1" autofocus', page)
    assert 'value="Third"' in page and f'name="form_token" value="{token}"' in page
    assert radios(page, "expires_in")["30"]
    assert ApiKey.objects.filter(owner=person.user).count() == 2
    lifecycle.revoke_api_key(first.api_key)
    assert post_new_key(person, name="Third", token=token).status_code == 200  # the same form, sent again


def test_creating_keys_too_fast_is_429_with_retry_after(person, settings):
    settings.OMIKEYS_KEY_CREATION_RATE = (2, 3600)
    assert post_new_key(person, name="one").status_code == 200
    assert post_new_key(person, name="two").status_code == 200
    response = post_new_key(person, name="three")
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 3600
    page = response.content.decode()
    assert "Too many keys created or rotated recently. Try again in" in page
    assert 'value="three"' in page
    assert ApiKey.objects.filter(owner=person.user).count() == 2


def test_rotations_share_the_creation_rate_and_are_429_with_retry_after(person, settings):
    settings.OMIKEYS_KEY_CREATION_RATE = (1, 60)
    assert post_new_key(person).status_code == 200
    api_key = ApiKey.objects.get(owner=person.user)
    response = post_rotate(person, api_key.pk, grace_seconds=3600)
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    page = response.content.decode()
    assert re.search(r"Try again in \d+ seconds?\.", page)
    assert radios(page, "grace_seconds")["3600"]  # the choice is kept
    assert ApiKey.objects.get(pk=api_key.pk).rotated_at is None


# --- history and actors -----------------------------------------------------------------------

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"


def history_rows(page: str) -> list[str]:
    table = re.search(r'<table class="keys events">(.*?)</table>', page, re.S).group(1)
    rows = re.findall(r"<tr class=\"event-[a-z_]+\">(.*?)</tr>", table, re.S)
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip() for row in rows]


def test_the_history_says_what_happened_who_did_it_and_from_where(person):
    where = {"REMOTE_ADDR": "203.0.113.7", "HTTP_USER_AGENT": BROWSER}
    post_new_key(person, name="Audited", expires_in="90", **where)
    api_key = ApiKey.objects.get(owner=person.user)
    post_rotate(person, api_key.pk, grace_seconds=86400, **{**where, "REMOTE_ADDR": "2001:db8::1"})
    staff = Actor(
        kind=KeyEvent.ActorKind.STAFF,
        via=KeyEvent.Via.ADMIN,
        label="ops@omi.example",
        ip_address="10.1.2.3",
        user_agent="StaffBrowser/1.0",
    )
    lifecycle.set_expiry(api_key, timezone.now() + datetime.timedelta(days=10), actor=Actor.command("setexpiry"))
    lifecycle.revoke_api_key(api_key, actor=staff)

    page = person.get(reverse("web:key-detail", args=[api_key.pk])).content.decode()
    rows = history_rows(page)
    assert len(rows) == 4
    revoked, expiry, rotated, created = rows  # newest first
    assert "Revoked" in revoked and "Omi staff" in revoked and "admin" in revoked
    assert "Expiry changed to" in expiry and "Omi staff, command setexpiry" in expiry and "command line" in expiry
    assert "Rotated; old secret accepted until" in rotated and "you" in rotated and "web pages" in rotated
    assert "2001:db8::1" in rotated and "Chrome 131 on Linux" in rotated
    assert "Created, expires" in created and "you" in created and "203.0.113.7" in created
    # The full user agent is there on hover; staff members' own addresses, emails and OS accounts are not shown.
    assert f'title="{BROWSER}"' in page
    assert "10.1.2.3" not in page and "StaffBrowser" not in page and "ops@omi.example" not in page
    assert "run by" not in page


def test_every_web_change_records_the_person_their_address_and_browser(person):
    where = {"REMOTE_ADDR": "198.51.100.4", "HTTP_USER_AGENT": BROWSER}
    post_new_key(person, **where)
    api_key = ApiKey.objects.get(owner=person.user)
    post_rotate(person, api_key.pk, **where)
    person.post(reverse("web:key-revoke", args=[api_key.pk]), **where)
    events = list(api_key.events.order_by("at", "id"))
    assert [e.action for e in events] == ["created", "rotated", "revoked"]
    for event in events:
        assert (event.actor_id, event.actor_kind, event.via) == (person.user.pk, "user", "web")
        assert (event.ip_address, event.user_agent, event.actor_label) == ("198.51.100.4", BROWSER, person.user.email)


def test_the_detail_page_costs_the_same_queries_however_long_the_history(person, django_assert_max_num_queries):
    issued = lifecycle.issue_key(owner=person.user, name="Busy")
    for i in range(history.HISTORY_LENGTH + 5):
        lifecycle.rotate_key(issued.api_key, grace_seconds=60 * (i % 2), actor=Actor.command("rotatekeys"))
    url = reverse("web:key-detail", args=[issued.api_key.pk])
    person.get(url)  # the periodic account check writes the session once
    with django_assert_max_num_queries(5):
        page = person.get(url).content.decode()
    rows = history_rows(page)
    assert len(rows) == history.HISTORY_LENGTH
    assert all("Rotated" in row for row in rows)  # the newest; the creation is among the older ones left out
    assert f"Showing the latest {history.HISTORY_LENGTH} changes." in page


@pytest.mark.parametrize(
    "agent, short",
    [
        (BROWSER, "Chrome 131 on Linux"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox 133 on Windows"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/17.5 Mobile/15E148 Safari/604.1",
            "Safari 17 on iPhone",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
            "Safari/537.36 Edg/131.0.2903.86",
            "Edge 131 on Windows",
        ),
        ("curl/8.5.0", "curl 8"),
        ("python-requests/2.32.3", "Python requests 2"),
        (
            "MyCustomIntegration/1.0 (+https://example.com/some/very/long/path)",
            "MyCustomIntegration/1.0 (+https://examp…",
        ),
        ("", ""),
    ],
)
def test_user_agents_are_shortened_for_the_history(agent, short):
    assert history.short_user_agent(agent) == short


def test_changes_made_by_omi_itself_are_attributed_to_omi(person):
    issued = lifecycle.issue_key(owner=person.user, name="From a script")  # no request behind it
    KeyEvent.objects.create(  # as migration 0005 backfilled keys issued before the audit log
        api_key=issued.api_key,
        action="created",
        at=issued.api_key.created_at - datetime.timedelta(days=1),
        actor_kind="system",
        actor_label="recorded before the audit log existed",
        via="code",
    )
    rows = history_rows(person.get(reverse("web:key-detail", args=[issued.api_key.pk])).content.decode())
    assert len(rows) == 2
    assert " Omi Python code " in f" {rows[0]} " and "Omi (Python code)" not in rows[0]
    assert "Omi (recorded before the audit log existed)" in rows[1]
