"""Request bodies sent chunked (Transfer-Encoding: chunked, no Content-Length), through real servers:
read within the size limit by gunicorn, refused with 411 by a server that cannot read them."""

import http.client
import json
import re
import socket
import subprocess
import sys
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from django.conf import settings
from django.test import Client

from apikeys.models import ApiKey

from .helpers import free_port
from .test_processes import ROOT, server_environment, start_server, wait_for  # noqa: F401 - start_server: a fixture
from .web.pages import sign_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("contract_scopes")]


def send_chunked(base: str, path: str, parts: list[bytes], headers: dict) -> tuple[int, dict, bytes]:
    """POST ``parts`` as the chunks of a body without Content-Length; the status, headers and body.

    Written at once on a raw socket: a server may answer (and close) before reading it all.
    """
    url = urlsplit(base)
    head = f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nTransfer-Encoding: chunked\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        try:
            sock.sendall(head.encode() + body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered before the whole body was read; the answer is still there
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def json_parts(body: dict, size: int = 5) -> list[bytes]:
    raw = json.dumps(body).encode()
    return [raw[i : i + size] for i in range(0, len(raw), size)]


@pytest.fixture
def gunicorn(start_server, emulator_user):  # noqa: F811
    base = start_server(DJANGO_SECRET_KEY=settings.SECRET_KEY)
    headers = {"Authorization": f"Bearer {emulator_user.id_token}", "Content-Type": "application/json"}
    return base, headers


def test_a_chunked_create_is_read(gunicorn):
    base, headers = gunicorn
    status, _, body = send_chunked(
        base, "/v1/dev/keys", json_parts({"name": "chunked", "scopes": ["goals:read"]}), headers
    )

    assert status == 200, body
    created = json.loads(body)
    assert (created["name"], created["scopes"]) == ("chunked", ["goals:read"])


def test_a_chunked_rotation_keeps_its_grace_period(gunicorn):
    base, headers = gunicorn
    created = requests.post(f"{base}/v1/dev/keys", json={"name": "to rotate"}, headers=headers, timeout=10).json()

    status, _, body = send_chunked(
        base, f"/v1/dev/keys/{created['id']}/rotate", json_parts({"grace_seconds": 3600}), headers
    )

    assert status == 200, body
    assert json.loads(body)["previous_key_expires_at"] is not None
    old = requests.get(f"{base}/v1/dev/key", headers={"Authorization": f"Bearer {created['key']}"}, timeout=10)
    assert old.status_code == 200 and old.json()["secret"] == "replaced"


def test_a_chunked_body_is_validated_like_any_other(gunicorn):
    base, headers = gunicorn
    status, _, body = send_chunked(base, "/v1/dev/keys", json_parts({"name": "x", "expiresAt": None}), headers)

    assert status == 422
    assert json.loads(body)["detail"][0]["loc"] == ["body", "expiresAt"]
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("size", [settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1, 10 * settings.DATA_UPLOAD_MAX_MEMORY_SIZE])
def test_a_chunked_body_over_the_limit_is_413(gunicorn, size):
    base, headers = gunicorn
    raw = json.dumps({"name": "x" * size}).encode()
    status, response_headers, body = send_chunked(
        base, "/v1/dev/keys", [raw[i : i + 4096] for i in range(0, len(raw), 4096)], headers
    )

    assert status == 413
    assert json.loads(body) == {
        "detail": f"The request body must be at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
    }
    assert response_headers["cache-control"] == "no-store"
    assert not ApiKey.objects.exists()


def test_a_chunked_body_just_within_the_limit_is_read(gunicorn):
    base, headers = gunicorn
    padding = settings.DATA_UPLOAD_MAX_MEMORY_SIZE - len(json.dumps({"name": "n", "scopes": None, "pad": ""}))
    raw = json.dumps({"name": "n", "scopes": None, "pad": " " * padding}).encode()
    assert len(raw) == settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    status, _, body = send_chunked(base, "/v1/dev/keys", [raw[:7000], raw[7000:]], headers)
    assert status == 422  # read whole: the unknown field "pad" is named
    assert json.loads(body)["detail"][0]["loc"] == ["body", "pad"]


def test_a_chunked_web_form_is_read(start_server):  # noqa: F811
    base = start_server(DJANGO_SECRET_KEY=settings.SECRET_KEY)
    person = sign_in(Client())
    session = requests.Session()
    session.cookies.set("sessionid", person.cookies["sessionid"].value)
    page = session.get(f"{base}/keys/new/", timeout=10)
    assert page.status_code == 200
    form = {
        "csrfmiddlewaretoken": re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1),
        "form_token": re.search(r'name="form_token" value="([^"]+)"', page.text).group(1),
        "name": "chunked form",
        "scopes": "memories:read",
    }
    raw = urlencode(form).encode()
    cookies = "; ".join(f"{name}={value}" for name, value in session.cookies.items())
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookies, "Referer": f"{base}/keys/new/"}

    status, _, body = send_chunked(base, "/keys/new/", [raw[:20], raw[20:]], headers)

    assert status == 200, body[:500]
    assert re.search(rb"omi_dev_(?:[0-9A-Za-z]{36}|[0-9a-f]{32})", body)
    assert ApiKey.objects.get().name == "chunked form"


@pytest.fixture
def runserver(tmp_path):
    """``manage.py runserver`` (what scripts/dev runs) on the test database; its base URL."""
    port = free_port()
    env = server_environment(DJANGO_DEBUG="true", DJANGO_LOG_LEVEL="INFO")
    log = open(tmp_path / "runserver.log", "w")  # noqa: SIM115 - closed with the server
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(f"{base}/healthz", timeout=1).ok, "runserver")
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def test_runserver_which_cannot_read_chunked_bodies_answers_411(runserver, emulator_user):
    # Django's development server does not decode chunks: refused, never read as empty.
    headers = {"Authorization": f"Bearer {emulator_user.id_token}", "Content-Type": "application/json"}
    status, response_headers, body = send_chunked(runserver, "/v1/dev/keys", json_parts({"name": "x"}), headers)

    assert status == 411
    assert "Content-Length" in json.loads(body)["detail"]
    assert response_headers["connection"] == "close"
    assert not ApiKey.objects.exists()
    status, _, body = send_chunked(runserver, "/keys/new/", [b"name=x"], {"Content-Type": "text/plain"})
    assert status == 411 and body.startswith(b"This server cannot read a chunked request body")
    sized = requests.post(f"{runserver}/v1/dev/keys", json={"name": "sized"}, headers=headers, timeout=10)
    assert sized.status_code == 200


def test_a_chunked_github_alert_may_be_as_large_as_the_leak_body_limit(gunicorn):
    base, _ = gunicorn
    raw = json.dumps([{"token": "x" * 40, "type": "t", "url": "https://github.com/o/r"}] * 400).encode()
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE < len(raw) < settings.OMIKEYS_LEAK_BODY_MAX_BYTES
    parts = [raw[i : i + 4096] for i in range(0, len(raw), 4096)]
    status, _, body = send_chunked(base, "/v1/leaks/github", parts, {"Content-Type": "application/json"})
    # Read whole, then refused only because it is unsigned (no key fetched: the headers are missing).
    assert status == 401, body
    too_large = parts * (settings.OMIKEYS_LEAK_BODY_MAX_BYTES // len(raw) + 1)
    status, _, body = send_chunked(base, "/v1/leaks/github", too_large, {"Content-Type": "application/json"})
    assert status == 413
    assert json.loads(body) == {
        "detail": f"The request body must be at most {settings.OMIKEYS_LEAK_BODY_MAX_BYTES} bytes."
    }
