"""Usage counts under concurrent load on a real gunicorn with several workers add up exactly once it stops; a
runserver process writes them too."""

import collections
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.db.models import Sum

from apikeys import lifecycle
from apikeys.lifecycle import usage
from apikeys.models import KeyAddress, KeyLastUse, KeyUsageHour

from .helpers import expire, free_port, issue, make_owner, service
from .servers import wait_for
from .test_processes import server_environment

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("contract_scopes")]
ROOT = Path(__file__).resolve().parent.parent
WORKERS = 3


def start_gunicorn(tmp_path: Path, **extra_env) -> tuple[subprocess.Popen, str]:
    """The repository's gunicorn.conf.py (gthread workers, its hooks) with three workers on the test database."""
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "w")  # noqa: SIM115 - closed by the caller's stop
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "omikeys_project.wsgi",
            "-c",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(WORKERS),
            "--threads",
            "4",
        ],
        cwd=ROOT,
        env=server_environment(**extra_env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server.log = log
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: requests.get(f"{base}/healthz", timeout=1).ok, "gunicorn")
    return server, base


def test_usage_counts_from_several_workers_add_up_exactly_after_a_graceful_stop(tmp_path):
    owner = make_owner("load-owner")
    accepted = issue(owner, "accepted", scopes=["memories:read"])
    scoped = issue(owner, "scoped", scopes=["memories:read"])
    disabled = issue(owner, "disabled")
    revoked = issue(owner, "revoked")
    expired = issue(owner, "expired")
    lifecycle.disable_key(disabled.api_key)
    lifecycle.revoke_key(revoked.api_key)
    expire(expired.api_key)
    token = service("verify_keys").token

    # A short interval: counts are also written while the load runs (by each worker's background writer).
    server, base = start_gunicorn(
        tmp_path, OMIKEYS_LAST_USED_INTERVAL="1", OMIKEYS_FAILED_VERIFICATION_RATE="1000000/minute"
    )
    # (door, key, expected status, expected outcome, how many): the dev door answers the key's verdict,
    # the service door answers 200 with a code.
    plan = [
        ("dev", accepted, 200, "accepted", 150),
        ("service", accepted, "VALID", "accepted", 90),
        ("service", scoped, "INSUFFICIENT_SCOPE", "insufficient_scope", 120),
        ("dev", disabled, 401, "disabled", 60),
        ("service", disabled, "DISABLED", "disabled", 30),
        ("dev", revoked, 401, "revoked", 45),
        ("service", revoked, "REVOKED", "revoked", 45),
        ("dev", expired, 401, "expired", 75),
    ]
    calls = [(door, issued, want, n) for door, issued, want, _, count in plan for n in range(count)]

    def call(args) -> bool:
        door, issued, want, n = args
        agent = f"load-test/{n % 3}"
        with requests.Session() as session:
            if door == "dev":
                response = session.get(
                    f"{base}/v1/dev/key",
                    headers={"Authorization": f"Bearer {issued.plaintext}", "User-Agent": agent},
                    timeout=30,
                )
                return response.status_code == want
            response = session.post(
                f"{base}/v1/service/keys/verify",
                headers={"Authorization": f"Bearer {token}"},
                json={
                    "key": issued.plaintext,
                    "client_ip": f"198.51.100.{n % 4}",
                    "user_agent": agent,
                    "required_scopes": ["memories:write"] if issued is scoped else ["memories:read"],
                },
                timeout=30,
            )
            return response.status_code == 200 and response.json()["code"] == want

    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = list(pool.map(call, calls))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        server.log.close()
    log = (tmp_path / "gunicorn.log").read_text()
    assert all(answers), log[-3000:]
    assert server.returncode == 0, log[-3000:]
    assert "could not be written" not in log and "not written at worker exit" not in log, log[-3000:]
    # The workers answered between them (several processes did write).
    assert log.count("Booting worker") >= WORKERS

    expected = collections.defaultdict(collections.Counter)
    for _, issued, _, outcome, count in plan:
        expected[issued.api_key.pk][outcome] += count
    for issued in (accepted, scoped, disabled, revoked, expired):
        sums = KeyUsageHour.objects.filter(api_key=issued.api_key).aggregate(
            **{outcome: Sum(outcome) for outcome in usage.USAGE_OUTCOMES}
        )
        stored = {outcome: n for outcome, n in sums.items() if n}
        assert stored == dict(expected[issued.api_key.pk]), issued.api_key.name
        requests_by_address = KeyAddress.objects.filter(api_key=issued.api_key).aggregate(n=Sum("requests"))["n"]
        assert requests_by_address == sum(expected[issued.api_key.pk].values())
        assert KeyLastUse.objects.get(api_key=issued.api_key).user_agent.startswith("load-test/")
    service_only = {a.address for a in KeyAddress.objects.filter(api_key=scoped.api_key)}
    assert service_only == {f"198.51.100.{n}" for n in range(4)}


def test_runserver_has_a_background_writer_too(tmp_path):
    issued = issue(make_owner("runserver-owner"))
    port = free_port()
    with open(tmp_path / "runserver.log", "w") as log:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=server_environment(OMIKEYS_LAST_USED_INTERVAL="1"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda: requests.get(f"{base}/healthz", timeout=1).ok, "runserver")
            answer = requests.get(
                f"{base}/v1/dev/key", headers={"Authorization": f"Bearer {issued.plaintext}"}, timeout=30
            )
            assert answer.status_code == 200
            # Written by the writer while the server runs (no worker_exit here): within a generous bound.
            deadline = time.monotonic() + 30
            while not KeyUsageHour.objects.filter(api_key=issued.api_key).exists() and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            server.terminate()
            server.wait(timeout=30)
    log = (tmp_path / "runserver.log").read_text()
    assert KeyUsageHour.objects.get(api_key=issued.api_key).accepted == 1, log[-3000:]


@pytest.mark.parametrize(
    ("argv", "environ", "starts"),
    [
        (["manage.py", "runserver"], {"RUN_MAIN": "true"}, True),  # the autoreloader's serving child
        (["manage.py", "runserver"], {}, False),  # the autoreloader itself serves nothing
        (["manage.py", "runserver", "--noreload"], {}, True),
        (["manage.py", "migrate"], {"RUN_MAIN": "true"}, False),
        (["pytest", "-q"], {}, False),
    ],
)
def test_only_runserver_s_serving_process_starts_a_writer(argv, environ, starts):
    from apikeys.apps import serving_with_runserver

    assert serving_with_runserver(argv, environ) is starts
