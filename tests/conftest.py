"""Shared fixtures: real Firebase users on the Auth Emulator, key owners, API clients, and the token-signing seam."""

import datetime
import importlib
import io
import json
import logging
import os
import shutil
import time

import google.auth.crypt
import google.auth.exceptions
import google.auth.jwt
import google.oauth2.id_token
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.utils.module_loading import import_string
from playwright.sync_api import sync_playwright
from rest_framework.test import APIClient

from apikeys import dependencies, firebase

from . import firebase_emulator, servers
from .helpers import NOW, make_owner

CHROMIUM = os.environ.get("OMIKEYS_CHROMIUM", "/usr/bin/chromium")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "owner(uid, email=None): the identity of the ``owner`` fixture's user in the marked tests"
    )


def pytest_sessionstart(session):
    if not firebase_emulator.is_running():
        pytest.exit(
            f"The Firebase Auth Emulator is not answering at {firebase_emulator.HOST}. "
            "Run the suite with scripts/test, which starts it (or start it with "
            "'npx firebase emulators:start --only auth --project demo-omikeys').",
            returncode=3,
        )


@pytest.fixture(scope="session")
def other_emulator(tmp_path_factory):
    """A second real Auth Emulator, of project demo-other, on free ports (a ``servers.Server``).

    Started once for the run, as each start costs about 10 s of CPU: tests/test_dev_scripts.py
    needs an emulator of another project than demo-omikeys, and tests/test_faults.py one of its
    own to pause (pausing the shared one on 9099 would stall other runs), with servers set to its project.
    """
    server = servers.start_auth_emulator(tmp_path_factory.mktemp("other-emulator"), project="demo-other")
    yield server
    server.stop()


@pytest.fixture
def clock(time_machine):
    """Time stopped at ``helpers.NOW``; move it with ``clock.move_to(...)``."""
    time_machine.move_to(NOW, tick=False)
    return time_machine


@pytest.fixture(autouse=True)
def fresh_firebase_app():
    """Each test starts from a Firebase app built from the environment it sees."""
    firebase.reset_app()
    yield
    firebase.reset_app()


@pytest.fixture(autouse=True)
def fresh_breakers():
    """Each test starts with every dependency's circuit breaker closed and no outage recorded."""
    dependencies.reset()
    yield
    dependencies.reset()


@pytest.fixture(autouse=True)
def fresh_key_lookup():
    """Each test starts as a new database connection does: with no key-lookup statement built yet.

    ``apikeys.lookup`` builds its statement once per connection and keeps it there; the
    tests share one connection, so without this only the first test would build it.
    """
    for connection in connections.all(initialized_only=True):
        connection.__dict__.pop("_omikeys_key_lookup", None)
    yield


@pytest.fixture(autouse=True)
def fresh_usage():
    """Key usage counts wait in the process's memory (lifecycle.usage): each test starts with none pending."""
    from apikeys.lifecycle import usage

    usage.ACCUMULATOR.clear()
    yield
    usage.ACCUMULATOR.clear()


@pytest.fixture(autouse=True)
def fresh_cache():
    """Throttle counters live in the cache: each test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def emulator_user():
    """A brand-new user on the Auth Emulator, with a real ID token."""
    return firebase_emulator.sign_up()


@pytest.fixture
def owner(request):
    """The local user who owns the keys a test issues: ``key-owner`` unless ``pytest.mark.owner`` names another."""
    marker = request.node.get_closest_marker("owner")
    return make_owner(*marker.args, **marker.kwargs) if marker else make_owner()


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def client_for():
    """``client_for(user)``: an API client sending that user's ID token."""

    def make(user: firebase_emulator.EmulatorUser) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {user.id_token}")
        return client

    return make


@pytest.fixture
def user_client(emulator_user, client_for):
    client = client_for(emulator_user)
    client.emulator_user = emulator_user
    return client


class TokenSigner:
    """Mints RS256 Firebase-style ID tokens with a key of our own."""

    def __init__(self, private_key_pem: bytes, kid: str):
        self.kid = kid
        self._signer = google.auth.crypt.RSASigner.from_string(private_key_pem, key_id=kid)

    def mint(
        self, *, uid="local-user", project=None, issued=None, lifetime=3600, signer=None, kid=None, extra=None
    ) -> str:
        """A token for ``uid`` issued at ``issued`` (Unix seconds, default now); ``extra`` claims override any."""
        project = project or settings.FIREBASE_PROJECT_ID
        issued = int(issued if issued is not None else time.time())
        claims = {
            "iss": f"https://securetoken.google.com/{project}",
            "aud": project,
            "auth_time": issued,
            "user_id": uid,
            "sub": uid,
            "iat": issued,
            "exp": issued + lifetime,
            "email": f"{uid}@example.com",
            "firebase": {"identities": {}, "sign_in_provider": "password"},
            **(extra or {}),
        }
        return google.auth.jwt.encode(signer or self._signer, claims, header={"kid": kid or self.kid}).decode()


def _key_and_certificate() -> tuple[bytes, bytes, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "omikeys test signer")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return private_pem, certificate.public_bytes(serialization.Encoding.PEM), key


@pytest.fixture
def signed_tokens(monkeypatch, tmp_path):
    """The one seam for what the Auth Emulator cannot produce: expired and badly signed tokens.

    firebase-admin checks signatures and expiry only outside emulator mode, so
    this fixture leaves emulator mode and makes Google's certificate fetch
    (``google.oauth2.id_token._fetch_certs``, private: google-auth is pinned)
    return the public certificate of a key generated here. The rest of
    firebase-admin's verification runs unchanged.
    """
    private_pem, certificate_pem, _ = _key_and_certificate()
    signer = TokenSigner(private_pem, kid="omikeys-test-key")
    signer.certificates = {signer.kid: certificate_pem.decode()}
    # Outside emulator mode firebase-admin insists on credentials; a made-up
    # service account satisfies it and is never able to reach Google.
    service_account = tmp_path / "service-account.json"
    service_account.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": settings.FIREBASE_PROJECT_ID,
                "private_key_id": "omikeys-test",
                "private_key": private_pem.decode(),
                "client_email": f"test@{settings.FIREBASE_PROJECT_ID}.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(service_account))
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST")
    monkeypatch.setattr(google.oauth2.id_token, "_fetch_certs", lambda request, url: signer.certificates)
    firebase.reset_app()
    yield signer
    firebase.reset_app()


@pytest.fixture
def foreign_signer():
    """A signer whose key Google's (stand-in) certificates do not know."""
    private_pem, _, _ = _key_and_certificate()
    return google.auth.crypt.RSASigner.from_string(private_pem, key_id="omikeys-test-key")


@pytest.fixture
def contract_scopes(transactional_db):
    """The scopes the data migration seeds, put back after earlier transactional tests flushed them."""
    from django.apps import apps

    importlib.import_module("apikeys.migrations.0002_seed_scopes").seed(apps, None)


@pytest.fixture(autouse=True)
def seeded_scopes_in_transactional_tests(request):
    """Every transactional test starts with the seeded scopes, as every deployment has them.

    pytest-django runs transactional tests last and empties the tables after each one,
    the migration's scopes included; a key asked for without scopes needs the default.
    """
    marker = request.node.get_closest_marker("django_db")
    marked = marker is not None and bool(marker.kwargs.get("transaction", marker.args[0] if marker.args else False))
    if marked or {"transactional_db", "live_server"} & set(request.fixturenames):
        request.getfixturevalue("contract_scopes")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """Give SQLite a file test database, so that threads get real locking instead of an in-memory shared cache."""
    from django.db import connections

    settings_dict = connections["default"].settings_dict
    if settings_dict["ENGINE"] == "django.db.backends.sqlite3":
        settings_dict.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


@pytest.fixture(scope="module")
def browser(django_db_setup, django_db_blocker):
    """Headless Chromium (``OMIKEYS_CHROMIUM``, default /usr/bin/chromium), one per test module."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it with 'apt-get install -y chromium' (.ci/run does).")
    # Playwright's sync API keeps an event loop running in this thread while it is
    # started, which makes Django refuse synchronous ORM calls. The ORM calls these
    # tests make between browser steps are ordinary synchronous code, so allow them
    # for the module using this fixture only.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--disable-background-networking", "--disable-component-update"]
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class ProjectLog:
    """What the project's own log handler (``LOGGING``'s "console") writes, captured as text."""

    def __init__(self, handler: logging.Handler, stream: io.StringIO):
        self.handler, self.stream = handler, stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[str]:
        return self.text.splitlines()

    def use(self, format_name: str) -> None:
        """Switch the handler to the "plain" or "json" formatter of ``LOGGING``."""
        config = settings.LOGGING["formatters"][format_name]
        factory = import_string(config["()"])
        self.handler.setFormatter(factory(**({"fmt": config["format"]} if "format" in config else {})))


@pytest.fixture
def project_log():
    """The project's console handler writing to a buffer, every logger at DEBUG, for the test's duration."""
    handler = next((h for h in logging.getLogger().handlers if h.name == "console"), None)
    assert handler is not None, "LOGGING's console handler is not installed"
    stream = io.StringIO()
    old_stream, old_formatter = handler.setStream(stream), handler.formatter
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]
    levels = [(logger, logger.level) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    try:
        yield ProjectLog(handler, stream)
    finally:
        for logger, level in levels:
            logger.setLevel(level)
        handler.setStream(old_stream)
        handler.setFormatter(old_formatter)
