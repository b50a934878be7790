"""Faults injected into real servers: dependencies hung, stopped or locked; slow clients; server errors.

The servers are the production configuration in the repository: gunicorn with
``gunicorn.conf.py`` behind nginx with ``deploy/nginx/omikeys-proxy.conf``, Debian's
redis-server as the cache, and an Auth Emulator of these tests' own (pausing the shared
one would stall other runs): conftest's ``other_emulator``, of project demo-other, which
the servers are set to. Faults are real: SIGSTOP/SIGCONT, a stopped server, a
held SQLite write lock, half-sent requests. Times are generous bounds that tell an
answer (well under 2 s) from a hang (5 s to a minute), never performance claims.
gunicorn runs 2 workers instead of the configuration's per-core count, to spare CI.
"""

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection

from . import servers
from .helpers import issue, make_owner
from .test_processes import database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("contract_scopes")]

ANSWER = 2.0  # seconds: an answer, not a wait on a dependency
RESET = 2  # OMIKEYS_BREAKER_RESET_SECONDS of the servers under test
WORKERS = ("--workers", "2")
LOCK_WAIT = 5  # OMIKEYS_DATABASE_TIMEOUT of the server in the SQLite write-lock test


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def emulator(other_emulator):
    yield other_emulator
    other_emulator.resume()  # never left paused for the next module that uses it


@pytest.fixture(scope="module")
def redis_server(workdir):
    box = {"server": servers.start_redis(workdir)}
    yield box
    box["server"].stop()


def omikeys_env(database: str, emulator: servers.Server, **extra) -> dict:
    return servers.server_env(
        database,
        FIREBASE_AUTH_EMULATOR_HOST=emulator.address,
        FIREBASE_PROJECT_ID=emulator.extra["project"],
        OMIKEYS_BREAKER_RESET_SECONDS=str(RESET),
        OMIKEYS_NUM_PROXIES="1",
        OMIKEYS_TRUST_REQUEST_ID="true",
        **extra,
    )


@pytest.fixture(scope="module")
def stack(workdir, emulator, redis_server, django_db_setup, django_db_blocker):
    """gunicorn (gunicorn.conf.py) on the test database behind nginx, with Redis as the cache."""
    with django_db_blocker.unblock():
        url = database_url()
    cache = redis_server["server"].url
    env = omikeys_env(url, emulator, CACHE_URL=cache)
    gunicorn = servers.start_gunicorn(workdir, env, *WORKERS)
    nginx = servers.start_nginx(workdir, gunicorn.address)
    yield {"gunicorn": gunicorn, "nginx": nginx, "url": nginx.url}
    nginx.stop()
    gunicorn.stop()


def get(url: str, key: str | None = None, **kwargs) -> tuple[requests.Response, float]:
    """A request and the seconds it took."""
    headers = kwargs.pop("headers", {})
    if key:
        headers["Authorization"] = f"Bearer {key}"
    started = time.monotonic()
    response = requests.request(kwargs.pop("method", "GET"), url, headers=headers, timeout=90, **kwargs)
    return response, time.monotonic() - started


def create_service_client(env: dict) -> str:
    """A new service client allowed to verify keys, made by ``manage.py createserviceclient`` with ``env``;
    its token."""
    result = subprocess.run(
        [sys.executable, "manage.py", "createserviceclient", f"faults-{time.monotonic_ns()}", "--allow", "verify_keys"],
        cwd=servers.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return re.search(r"omi_svc_[0-9a-f]{32}", result.stdout + result.stderr).group(0)


def new_log(server: servers.Server, since: int) -> str:
    return server.log_text()[since:]


def assert_unavailable_json(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert set(response.json()) == {"detail"}
    assert int(response.headers["Retry-After"]) >= 1


def wait_until(check, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.2)


# --- Redis ------------------------------------------------------------------------------


def assert_one_cache_outage_then_recovery(gunicorn: servers.Server, since: int, probe) -> None:
    """One outage line per worker process (not one, with a traceback, per request); then,
    calling ``probe()`` until it shows, one recovery line."""
    log = new_log(gunicorn, since)
    assert 1 <= log.count("cache unavailable after") <= 2, log
    assert "Traceback" not in log

    def recovered() -> bool:
        probe()
        return "cache available again" in new_log(gunicorn, since)

    wait_until(recovered, "the cache breaker closes once Redis answers", timeout=10 * RESET)


def test_verification_is_unaffected_while_redis_hangs(stack, redis_server):
    valid = issue(make_owner("redis-hang")).plaintext
    wrong = "omi_dev_" + "5" * 32
    base, gunicorn = stack["url"], stack["gunicorn"]
    assert get(f"{base}/v1/dev/key", valid)[0].status_code == 200
    since = len(gunicorn.log_text())
    redis_server["server"].pause()
    try:
        times = []
        for _ in range(8):
            ok, took_ok = get(f"{base}/v1/dev/key", valid)
            refused, took_refused = get(f"{base}/v1/dev/key", wrong)
            assert (ok.status_code, refused.status_code) == (200, 401)
            times += [took_ok, took_refused]
        # Without bounds each took redis-py's 5 s socket timeout, once or twice.
        assert max(times) < ANSWER, times
        assert sum(times) < 5, times
        ready, _ = get(f"{base}/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["cache"] == "unavailable"
    finally:
        redis_server["server"].resume()
    assert_one_cache_outage_then_recovery(gunicorn, since, lambda: get(f"{base}/v1/dev/key", wrong))
    assert get(f"{base}/readyz")[0].json()["checks"]["cache"] == "ok"


def test_redis_refusing_connections_logs_once_per_outage_and_serves_at_full_speed(stack, redis_server, workdir):
    valid = issue(make_owner("redis-down")).plaintext
    base, gunicorn = stack["url"], stack["gunicorn"]
    port = int(redis_server["server"].url.rsplit(":", 1)[1].split("/")[0])
    since = len(gunicorn.log_text())
    redis_server["server"].stop()
    try:
        for _ in range(20):
            response, took = get(f"{base}/v1/dev/key", valid)
            assert response.status_code == 200
            assert took < ANSWER
    finally:
        redis_server["server"] = servers.start_redis(workdir, port=port)
    assert_one_cache_outage_then_recovery(gunicorn, since, lambda: get(f"{base}/v1/dev/key", valid))


# --- Firebase ---------------------------------------------------------------------------


def test_a_hung_firebase_answers_503_json_quickly_and_verification_keeps_answering(stack, emulator):
    base = stack["url"]
    token = servers.emulator_token(emulator)
    created, _ = get(f"{base}/v1/dev/keys", token, method="POST", json={"name": "before the hang"})
    assert created.status_code == 200, created.text
    key = created.json()["key"]
    since = len(stack["gunicorn"].log_text())
    emulator.pause()
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            # Three clients managing keys while Firebase hangs, as in the field.
            managing = [pool.submit(get, f"{base}/v1/dev/keys", token) for _ in range(3)]
            time.sleep(0.3)
            verifying = [get(f"{base}/v1/dev/key", key) for _ in range(10)]
            answers = [future.result() for future in managing]
        for response, took in verifying:
            assert response.status_code == 200
            assert took < ANSWER
        for response, took in answers:
            assert_unavailable_json(response)
            assert took < 15  # OMIKEYS_FIREBASE_TIMEOUT (2 s), retried once by firebase-admin; unbounded it was 61 s
        response, took = get(f"{base}/v1/dev/keys", token)
        assert_unavailable_json(response)
    finally:
        emulator.resume()
    log = new_log(stack["gunicorn"], since)
    assert "Traceback" not in log
    assert "Service Unavailable" not in log  # no error line per 503: the outage is logged by its breaker

    def recovered() -> bool:
        return get(f"{base}/v1/dev/keys", token)[0].status_code == 200

    wait_until(recovered, "key management works again after Firebase resumes", timeout=10 * RESET + 10)


# --- Slow clients -----------------------------------------------------------------------


def test_clients_sending_half_a_request_do_not_hold_up_verification(stack):
    valid = issue(make_owner("slow-clients")).plaintext
    host, port = stack["nginx"].address.split(":")
    idle = []
    try:
        for _ in range(40):  # far more than gunicorn's threads (2 workers x 4)
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(b"GET /v1/dev/key HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer omi_dev_")
            idle.append(sock)
        for _ in range(10):
            response, took = get(f"{stack['url']}/v1/dev/key", valid)
            assert response.status_code == 200
            assert took < ANSWER
    finally:
        for sock in idle:
            sock.close()


# --- Errors from the server layer -------------------------------------------------------


def test_a_header_over_8_kb_is_431_json_on_the_api(stack):
    response, _ = get(f"{stack['url']}/v1/dev/key", headers={"X-Padding": "a" * 9000})
    assert response.status_code == 431
    assert response.headers["Content-Type"].startswith("application/json")
    assert "8 KB" in response.json()["detail"]
    # Pages keep nginx's own page.
    page, _ = get(f"{stack['url']}/keys/", headers={"X-Padding": "a" * 9000})
    assert page.status_code == 400
    assert not page.headers["Content-Type"].startswith("application/json")


def raw_request(address: str, request: bytes) -> tuple[int, dict, bytes]:
    """Send ``request`` as it is (requests would refuse to send a malformed one); status, headers, body.

    Read until the answer's ``Content-Length`` is in, or else until the server closes the connection:
    nginx, refusing a body announced but never sent, keeps reading for its ``lingering_timeout`` (5 s)
    before it closes.
    """
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while not _complete(data) and (chunk := sock.recv(65536)):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def _complete(data: bytes) -> bool:
    """Whether ``data`` holds a whole answer with a ``Content-Length``."""
    head, separator, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"^content-length:\s*(\d+)\s*$", head, re.IGNORECASE | re.MULTILINE)
    return bool(separator and length and len(body) >= int(length.group(1)))


def assert_api_error(status: int, headers: dict, body: bytes, expected: int) -> None:
    """An error in the API's shape: JSON ``{"detail": ...}``, never stored by a cache."""
    assert status == expected, body
    assert headers["content-type"].startswith("application/json"), headers
    assert set(json.loads(body)) == {"detail"}
    assert headers["cache-control"] == "no-store"
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])  # nginx's $request_id


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        # A header line without a colon: nginx's 400.
        (b"GET /v1/dev/key HTTP/1.1\r\nHost: 127.0.0.1\r\nNo colon here\r\nConnection: close\r\n\r\n", 400),
        # A request line over 8 KB: nginx's 414.
        (b"GET /v1/dev/key?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 414),
        # A header line over 8 KB: nginx's 494, answered 431.
        (b"GET /v1/dev/key HTTP/1.1\r\nHost: 127.0.0.1\r\nX-P: " + b"a" * 9000 + b"\r\nConnection: close\r\n\r\n", 431),
        # A body over 64 KB: nginx's 413, found once location /v1/ is chosen.
        (
            b"POST /v1/dev/keys HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 70000\r\nConnection: close\r\n\r\n" + b"a" * 70000,
            413,
        ),
    ],
    ids=["malformed-header", "uri-too-long", "header-too-large", "body-too-large"],
)
def test_errors_nginx_makes_on_the_api_are_json(stack, request_bytes, expected):
    status, headers, body = raw_request(stack["nginx"].address, request_bytes)
    assert_api_error(status, headers, body, expected)
    # Pages keep nginx's own page.
    page = request_bytes.replace(b"/v1/dev/keys", b"/keys/").replace(b"/v1/dev/key", b"/keys/")
    status, headers, body = raw_request(stack["nginx"].address, page)
    assert status == (400 if expected == 431 else expected)
    assert not headers["content-type"].startswith("application/json")


def test_github_leak_alerts_may_be_larger_than_other_bodies_up_to_1_mb(stack):
    """deploy/nginx gives POST /v1/leaks/github its own body limit (1 MB, OMIKEYS_LEAK_BODY_MAX_BYTES' default)."""
    body = b"[" + b" " * 200_000 + b"]"
    head = b"POST /v1/leaks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    status, headers, answer = raw_request(
        stack["nginx"].address, head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
    )
    assert_api_error(status, headers, answer, 401)  # omikeys' own answer: the alert is not signed
    status, headers, answer = raw_request(
        stack["nginx"].address, head + b"Content-Length: 1100000\r\nConnection: close\r\n\r\n"
    )
    assert_api_error(status, headers, answer, 413)
    assert json.loads(answer)["detail"] == "The request body is too large: 1 MB at most."


def test_a_worker_killed_for_timing_out_is_503_json_and_gunicorn_recovers(workdir, emulator):
    env = omikeys_env(database_url(), emulator, OMIKEYS_FIREBASE_TIMEOUT="20")
    gunicorn = servers.start_gunicorn(workdir, env, *WORKERS, "--timeout", "2")
    nginx = servers.start_nginx(workdir, gunicorn.address)
    token = servers.emulator_token(emulator)
    try:
        emulator.pause()  # the request below now waits inside a worker
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(get, f"{nginx.url}/v1/dev/keys", token)
            time.sleep(1)
            stopped = servers.worker_pids(gunicorn)
            for pid in stopped:  # the worker stops answering the master: a worker timeout
                os.kill(pid, signal.SIGSTOP)
            response, took = pending.result()
        assert_unavailable_json(response)
        assert took < 20
        emulator.resume()
        wait_until(lambda: set(servers.worker_pids(gunicorn)).isdisjoint(stopped), "new workers", timeout=30)
        assert get(f"{nginx.url}/v1/dev/keys", token)[0].status_code == 200
    finally:
        emulator.resume()
        nginx.stop()
        gunicorn.stop()


def test_gunicorn_down_is_503_json_on_the_api(workdir, emulator):
    gunicorn = servers.start_gunicorn(workdir, omikeys_env(database_url(), emulator), *WORKERS)
    nginx = servers.start_nginx(workdir, gunicorn.address)
    try:
        gunicorn.stop()
        response, took = get(f"{nginx.url}/v1/dev/key", "omi_dev_" + "1" * 32)
        assert_unavailable_json(response)
        assert took < ANSWER
    finally:
        nginx.stop()


# --- Databases --------------------------------------------------------------------------


@pytest.fixture
def own_database(workdir):
    """A database of the test's own, migrated, of the same kind as the suite's."""
    if connection.vendor == "postgresql":
        postgres = servers.start_postgres(workdir)
        servers.migrate(postgres.url, workdir)
        yield postgres.url, postgres
        postgres.stop()
        servers.shutil.rmtree(postgres.extra["pgdata"], ignore_errors=True)
    else:
        url = f"sqlite:///{workdir}/own-{time.monotonic_ns()}.sqlite3"
        servers.migrate(url, workdir)
        yield url, None


def create_key(base: str, token: str) -> str:
    response, _ = get(f"{base}/v1/dev/keys", token, method="POST", json={"name": "fault test"})
    assert response.status_code == 200, response.text
    return response.json()["key"]


# Skipped before own_database starts a database of the other kind, which would cost seconds for nothing.
@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="PostgreSQL's row of the fault table runs in the PostgreSQL run of the suite",
)
def test_postgresql_stopped_is_503_and_service_returns_without_restart(own_database, workdir, emulator):
    url, postgres = own_database
    gunicorn = servers.start_gunicorn(workdir, omikeys_env(url, emulator), *WORKERS)
    nginx = servers.start_nginx(workdir, gunicorn.address)
    base = nginx.url
    try:
        key = create_key(base, servers.emulator_token(emulator))
        for _ in range(12):  # every thread keeps a connection
            assert get(f"{base}/v1/dev/key", key)[0].status_code == 200

        # A quick restart: kept connections are dead; the first request after it must not fail.
        postgres.extra["stop_server"]()
        postgres.extra["start_server"]()
        assert [get(f"{base}/v1/dev/key", key)[0].status_code for _ in range(12)] == [200] * 12

        since = len(gunicorn.log_text())
        postgres.extra["stop_server"]()
        for _ in range(6):
            response, took = get(f"{base}/v1/dev/key", key)
            assert_unavailable_json(response)
            assert took < ANSWER
        page, took = get(f"{base}/keys/", headers={"Cookie": "sessionid=abcdefghijklmnopqrstuvwxyz012345"})
        assert page.status_code == 503
        assert "Temporarily unavailable" in page.text
        assert int(page.headers["Retry-After"]) >= 1
        ready, _ = get(f"{base}/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] == "unavailable"
        # Liveness stays 200: the process is alive; readiness takes the instance out.
        assert get(f"{base}/healthz")[0].status_code == 200
        log = new_log(gunicorn, since)
        assert "Traceback" not in log
        assert 1 <= log.count("database unavailable after") <= 2, log

        postgres.extra["start_server"]()
        wait_until(lambda: get(f"{base}/v1/dev/key", key)[0].status_code == 200, "the API back", 10 * RESET)
        assert get(f"{base}/readyz")[0].status_code == 200
    finally:
        nginx.stop()
        gunicorn.stop()


@pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="SQLite's row of the fault table runs in the SQLite run of the suite",
)
def test_sqlite_write_lock_held_verification_answers_and_creation_is_503(own_database, workdir, emulator):
    url, _ = own_database
    # A wait for the lock lasts OMIKEYS_DATABASE_TIMEOUT: well above ANSWER, so that an answer
    # that waited cannot pass for one that did not (at 2 s, a wait was 2.07 s against 2.0).
    env = omikeys_env(url, emulator, OMIKEYS_DATABASE_TIMEOUT=str(LOCK_WAIT))
    gunicorn = servers.start_gunicorn(workdir, env, *WORKERS)
    nginx = servers.start_nginx(workdir, gunicorn.address)
    base = nginx.url
    token = servers.emulator_token(emulator)
    try:
        key = create_key(base, token)  # never used: its first verification stamps last_used_at
        service_token = create_service_client(env)  # never used either: its first call stamps it too
        holder = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=10, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            for _ in range(6):
                response, took = get(f"{base}/v1/dev/key", key)
                assert response.status_code == 200, response.text
                assert took < ANSWER  # was 20 s, then a 500
            assert response.json()["last_used_at"] is None  # the stamp was skipped, not waited for
            for _ in range(3):  # the service door: its token's stamp and the key's are skipped alike
                verdict, took = get(
                    f"{base}/v1/service/keys/verify",
                    service_token,
                    method="POST",
                    json={"key": key, "client_ip": "192.0.2.7"},
                )
                assert (verdict.status_code, verdict.json()["code"]) == (200, "VALID"), verdict.text
                assert took < ANSWER  # was OMIKEYS_DATABASE_TIMEOUT: the token's stamp waited for the lock
            created, took = get(f"{base}/v1/dev/keys", token, method="POST", json={"name": "while locked"})
            assert_unavailable_json(created)
            assert took < LOCK_WAIT + 8  # OMIKEYS_DATABASE_TIMEOUT, with a wide margin
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        response, _ = get(f"{base}/v1/dev/key", key)
        assert response.status_code == 200
        assert response.json()["last_used_at"] is not None
        assert create_key(base, token)
    finally:
        nginx.stop()
        gunicorn.stop()


def test_the_access_logs_have_no_credentials(stack):
    """Neither gunicorn's nor nginx's access log holds a key from the query string or a header."""
    valid = issue(make_owner("access-log")).plaintext
    ids = []
    for path in ("/v1/dev/key", "/keys/", "/no-such-page"):
        response, _ = get(
            f"{stack['url']}{path}?api_key={valid}&token={valid}",
            valid,
            headers={
                "User-Agent": f"client/1.0 {valid}",
                "Referer": f"https://example.com/?k={valid}",
                "X-Request-ID": "chosen-by-the-client",
            },
        )
        ids.append(response.headers["X-Request-ID"])
    time.sleep(0.5)  # nginx writes its access line once the response is sent
    for log in (stack["gunicorn"].log_text(), stack["nginx"].extra["access_log"].read_text()):
        assert "/v1/dev/key" in log
        assert not re.search(r"omi_dev_(?:[0-9A-Za-z]{36}|[0-9a-f]{32})", log), log
        assert valid[8:] not in log
        assert "Bearer" not in log
        assert "api_key" not in log
        # The id nginx made is the one gunicorn logs and the response carries, never the client's.
        for request_id in ids:
            assert re.fullmatch(r"[0-9a-f]{32}", request_id)
            assert request_id in log


def test_the_tls_site_configuration_is_accepted_by_nginx(tmp_path):
    """deploy/nginx/omikeys.conf as docs/deployment.md installs it, with a certificate made here."""
    from .conftest import _key_and_certificate

    key, certificate, _ = _key_and_certificate()
    (tmp_path / "snippets").mkdir()
    for snippet in ("omikeys-proxy.conf", "omikeys-log.conf"):
        (tmp_path / "snippets" / snippet).write_text((servers.ROOT / "deploy" / "nginx" / snippet).read_text())
    (tmp_path / "key.pem").write_bytes(key)
    (tmp_path / "cert.pem").write_bytes(certificate)
    site = (servers.ROOT / "deploy" / "nginx" / "omikeys.conf").read_text()
    site = site.replace("/etc/nginx/snippets/", f"{tmp_path}/snippets/")
    site = site.replace("/var/log/nginx/", f"{tmp_path}/")
    site = site.replace("/etc/letsencrypt/live/keys.example.com/fullchain.pem", str(tmp_path / "cert.pem"))
    site = site.replace("/etc/letsencrypt/live/keys.example.com/privkey.pem", str(tmp_path / "key.pem"))
    (tmp_path / "site.conf").write_text(site)
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp_paths = " ".join(f"{kind}_temp_path {tmp_path}/{kind};" for kind in kinds)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log; events {{}}\n"
        f"http {{ access_log off; {temp_paths} include {tmp_path}/site.conf; }}\n"
    )
    nginx = servers.shutil.which("nginx") or "/usr/sbin/nginx"
    result = servers.subprocess.run(
        [nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
