"""Across processes: a second server (gunicorn, two workers) sharing the database; throttles shared through Redis."""

import datetime
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.utils import timezone

from apikeys import lifecycle
from apikeys.models import ApiKey

from .helpers import database_url, free_port, issue, key_client, make_owner
from .servers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("contract_scopes")]
ROOT = Path(__file__).resolve().parent.parent


def server_environment(**extra_env) -> dict:
    """The environment of a server process on the test database (production settings unless overridden)."""
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_ENV_FILE": "",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "second-process-test-key-q8Wm3Zt6Yp1Rv4Xs7Bn2Kc5Hj9Lf0Dg",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_LOG_LEVEL": "WARNING",
        **extra_env,
    }


@pytest.fixture
def start_server(tmp_path):
    """``start_server(**env)``: gunicorn with two workers on the test database; its base URL."""
    servers = []

    def start(**extra_env) -> str:
        port = free_port()
        env = server_environment(**extra_env)
        log = open(tmp_path / f"gunicorn-{port}.log", "w")  # noqa: SIM115 - closed with the server
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "omikeys_project.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        servers.append((server, log))
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: requests.get(f"{base}/healthz", timeout=1).ok, "the second server")
        return base

    yield start
    for server, log in servers:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def statuses(base: str, plaintext: str, times: int = 8) -> set[int]:
    """Status codes of several requests, so both workers are likely to answer some."""
    headers = {"Authorization": f"Bearer {plaintext}"}
    return {requests.get(f"{base}/v1/dev/key", headers=headers, timeout=5).status_code for _ in range(times)}


def test_revocation_rotation_and_expiry_hold_in_another_process(start_server):
    owner = make_owner("two-process-owner")
    revoked, rotated, expiring = issue(owner, "revoked"), issue(owner, "rotated"), issue(owner, "expiring")
    base = start_server()
    for issued in (revoked, rotated, expiring):
        assert statuses(base, issued.plaintext) == {200}

    lifecycle.revoke_key(revoked.api_key)
    assert statuses(base, revoked.plaintext) == {401}

    new = lifecycle.rotate_key(rotated.api_key)
    assert statuses(base, rotated.plaintext) == {401}
    assert statuses(base, new.plaintext) == {200}

    lifecycle.set_expiry(expiring.api_key, timezone.now() + datetime.timedelta(seconds=1))
    time.sleep(1.1)
    response = requests.get(f"{base}/v1/dev/key", headers={"Authorization": f"Bearer {expiring.plaintext}"}, timeout=5)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid API Key: this key has expired."}
    assert statuses(base, expiring.plaintext) == {401}


def test_a_grace_period_ends_in_another_process(start_server):
    issued = issue(make_owner("grace-owner"))
    base = start_server()
    new = lifecycle.rotate_key(issued.api_key, grace_seconds=60)
    assert statuses(base, issued.plaintext) == {200}
    # End the grace period now, as time would.
    ApiKey.objects.filter(pk=issued.api_key.pk).update(previous_key_expires_at=timezone.now())
    assert statuses(base, issued.plaintext) == {401}
    assert statuses(base, new.plaintext) == {200}


def test_the_other_process_stamps_last_used_once_per_interval(start_server):
    issued = issue(make_owner("stamp-owner"))
    base = start_server()
    statuses(base, issued.plaintext, times=1)
    first = ApiKey.objects.get(pk=issued.api_key.pk).last_used_at
    assert first is not None
    statuses(base, issued.plaintext, times=10)
    assert ApiKey.objects.get(pk=issued.api_key.pk).last_used_at == first


# --- throttles shared through Redis ---------------------------------------------------


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A throwaway Redis server (Debian's redis-server), as a cache for several processes."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: apt-get install redis-server (scripts/test does this).")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def ping() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    wait_for(ping, "redis-server")
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(timeout=10)


def test_failed_verifications_are_counted_across_processes_through_redis(start_server, redis_url, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (4, 3600)
    issued = issue(make_owner("redis-owner"))
    base = start_server(CACHE_URL=redis_url, OMIKEYS_FAILED_VERIFICATION_RATE="4/hour")
    bad = {"Authorization": "Bearer omi_dev_" + "6" * 32}
    # Two failures in the other process's workers, two here: the fifth attempt anywhere is throttled.
    assert [requests.get(f"{base}/v1/dev/key", headers=bad, timeout=5).status_code for _ in range(2)] == [401, 401]
    here = key_client("omi_dev_" + "6" * 32, REMOTE_ADDR="127.0.0.1")
    assert [here.get("/v1/dev/key").status_code for _ in range(2)] == [401, 401]
    response = requests.get(f"{base}/v1/dev/key", headers=bad, timeout=5)
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    # The block covers valid keys from that address too, in both processes.
    assert statuses(base, issued.plaintext) == {429}
    assert key_client(issued.plaintext, REMOTE_ADDR="127.0.0.1").get("/v1/dev/key").status_code == 429
