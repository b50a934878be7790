"""Metrics under a real gunicorn with several workers: prometheus-client's multiprocess mode and the server hooks."""

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client import multiprocess

from .helpers import free_port, issue, make_owner
from .test_processes import ROOT, database_url, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("contract_scopes")]
TOKEN = "scrape-" + "t" * 40
VALID = 'omikeys_key_verifications_total{outcome="valid",secret="current"}'


class Server:
    """gunicorn with ``workers`` sync workers, its hooks from ``apikeys.gunicorn_hooks``, metrics in ``directory``."""

    def __init__(self, directory: Path | None, log: Path, workers: int = 2):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "DJANGO_ENV_FILE": "",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "metrics-process-test-key-Jx4Tq8Vn2Wc6Rb0Ym5Kd9Hs3Lp7Fg1Zt",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_LOG_LEVEL": "WARNING",
            "OMIKEYS_METRICS_TOKEN": TOKEN,
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if directory is not None:
            env["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        self.log_path = log
        self.log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "omikeys_project.wsgi", "-c", "python:apikeys.gunicorn_hooks"]
            + ["--bind", f"127.0.0.1:{self.port}", "--workers", str(workers)],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: requests.get(f"{self.base}/healthz", timeout=1).ok, "gunicorn")
        wait_for(lambda: len(self.workers()) == workers, f"{workers} workers")

    def workers(self) -> set[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return {int(pid) for pid in children}

    def scrape(self) -> float:
        response = requests.get(f"{self.base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        assert response.status_code == 200
        line = next(line for line in response.text.splitlines() if line.startswith(VALID))
        return float(line.split()[-1])

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=20)
        self.log.close()


def valid_by_worker(directory: Path) -> dict[int, float]:
    """Each process's own count of valid verifications, read from its file in the metrics directory."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.split("_")[-1])
        for family in multiprocess.MultiProcessCollector.merge([str(path)], accumulate=False):
            for sample in family.samples:
                if sample.name == "omikeys_key_verifications_total" and sample.labels == {
                    "outcome": "valid",
                    "secret": "current",
                }:
                    counts[pid] = sample.value
    return counts


def test_metrics_add_up_every_worker_and_start_from_zero_with_each_server(tmp_path):
    issued = issue(make_owner("multiprocess-owner"))
    directory = tmp_path / "metrics"  # the start hook creates it
    server = Server(directory, tmp_path / "gunicorn-1.log")
    try:
        headers = {"Authorization": f"Bearer {issued.plaintext}"}

        def verify(_):
            return requests.get(f"{server.base}/v1/dev/key", headers=headers, timeout=10).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            assert set(pool.map(verify, range(30))) == {200}
        # Stop the worker that served most, so the next requests go to the other one.
        served = valid_by_worker(directory)
        busiest = max(server.workers(), key=lambda pid: served.get(pid, 0))
        os.kill(busiest, signal.SIGSTOP)
        try:
            assert {verify(n) for n in range(30)} == {200}
        finally:
            os.kill(busiest, signal.SIGCONT)

        per_worker = valid_by_worker(directory)
        assert sum(per_worker.values()) == 60
        assert len([count for count in per_worker.values() if count]) == 2, per_worker  # each worker counted its own
        # Whichever worker answers the scrape, it reports every worker's verifications.
        assert {server.scrape() for _ in range(8)} == {60.0}

        # A worker that dies takes its gauges along, not its counts.
        victim = min(server.workers())
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: victim not in server.workers() and len(server.workers()) == 2, "a replacement worker")
        wait_for(lambda: not list(directory.glob(f"gauge_livemax_{victim}.db")), "the dead worker's gauges removed")
        assert server.scrape() == 60.0
    finally:
        server.stop()

    # The next server starts from a clean directory: no counts of the last one.
    server = Server(directory, tmp_path / "gunicorn-2.log")
    try:
        time.sleep(0.2)
        assert server.scrape() == 0.0
    finally:
        server.stop()


def test_without_a_metrics_directory_several_workers_get_a_warning(tmp_path):
    server = Server(None, tmp_path / "gunicorn.log")
    server.stop()
    log = server.log_path.read_text()
    assert "PROMETHEUS_MULTIPROC_DIR is not set: with 2 workers, /metrics shows one worker's values at a time" in log
