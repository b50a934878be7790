"""Benchmark of key verification while a dependency hangs: GET /v1/dev/key under a hung Redis and a hung Firebase.

    .venv/bin/python bench/faults.py                       # production configuration, 3 rounds of 10 s
    .venv/bin/python bench/faults.py --worker-class sync --workers 3 --threads 1
    .venv/bin/python bench/faults.py --duration 5 --rounds 1 --scenarios redis

Starts the real servers (tests/servers.py): redis-server as the cache, an Auth
Emulator of its own, gunicorn with gunicorn.conf.py behind nginx with
deploy/nginx/omikeys-proxy.conf, on a fresh SQLite database with one key. Then, for each
round and scenario, ``wrk --latency`` on GET /v1/dev/key with a valid key, once healthy
and once with the fault injected (SIGSTOP of redis-server or of the emulator), in
alternating order. In the Firebase scenario three clients keep asking GET /v1/dev/keys
with a Firebase token in both runs, as key management would; only the hang differs.
Prints requests/s and p99 latency per run, the medians and the fault/healthy ratios.
See docs/performance.md.
"""

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import servers  # noqa: E402

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url: str, key: str, duration: int, connections: int) -> dict:
    """One wrk run: requests/s, p99 in ms, non-2xx responses."""
    header = f"Authorization: Bearer {key}"
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-H", header, url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p99_ms": float(value) * UNITS[unit], "non_2xx": int(errors.group(1)) if errors else 0}


class ManagementLoad:
    """``clients`` threads asking GET /v1/dev/keys with a Firebase token until stopped."""

    def __init__(self, url: str, token: str, clients: int = 3):
        self.url, self.token, self.stopping = url, token, threading.Event()
        self.statuses: dict[int, int] = {}
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]

    def run(self):
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.token}"
        while not self.stopping.is_set():
            try:
                status = session.get(self.url, timeout=60).status_code
            except requests.RequestException:
                status = 0
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=70)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run [10]")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of healthy and fault runs per scenario [3]")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections [16]")
    parser.add_argument("--scenarios", default="redis,firebase", help="redis and/or firebase [both]")
    parser.add_argument("--workers", type=int, help="gunicorn workers [gunicorn.conf.py's]")
    parser.add_argument("--threads", type=int, help="threads per worker [gunicorn.conf.py's]")
    parser.add_argument("--worker-class", help="gunicorn worker class [gunicorn.conf.py's]")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="omikeys-bench-faults-"))
    started = []
    try:
        emulator = servers.start_auth_emulator(workdir)
        started.append(emulator)
        redis = servers.start_redis(workdir)
        started.append(redis)
        database = f"sqlite:///{workdir}/bench.sqlite3"
        servers.migrate(database, workdir)
        env = servers.server_env(
            database,
            CACHE_URL=redis.url,
            FIREBASE_AUTH_EMULATOR_HOST=emulator.address,
            OMIKEYS_NUM_PROXIES="1",
            DJANGO_LOG_LEVEL="WARNING",
        )
        flags = []
        if args.workers:
            flags += ["--workers", str(args.workers)]
        if args.threads:
            flags += ["--threads", str(args.threads)]
        if args.worker_class:
            flags += ["--worker-class", args.worker_class]
        flags += ["--access-logfile", "/dev/null"]
        gunicorn = servers.start_gunicorn(workdir, env, *flags)
        started.append(gunicorn)
        nginx = servers.start_nginx(workdir, gunicorn.address)
        started.append(nginx)
        token = servers.emulator_token(emulator)
        created = requests.post(
            f"{nginx.url}/v1/dev/keys", headers={"Authorization": f"Bearer {token}"}, json={"name": "bench"}, timeout=30
        )
        created.raise_for_status()
        key = created.json()["key"]
        url = f"{nginx.url}/v1/dev/key"
        wrk(url, key, 3, args.connections)  # warm up

        faults = {"redis": redis, "firebase": emulator}
        results = {}
        described = " ".join(flags) or "(gunicorn.conf.py as it is)"
        print(f"gunicorn {described}; wrk -t2 -c{args.connections} -d{args.duration}s")
        for scenario in args.scenarios.split(","):
            runs = {"healthy": [], "fault": []}
            for round_ in range(args.rounds):
                order = ["healthy", "fault"] if round_ % 2 == 0 else ["fault", "healthy"]
                for kind in order:
                    load = ManagementLoad(f"{nginx.url}/v1/dev/keys", token) if scenario == "firebase" else None
                    if kind == "fault":
                        faults[scenario].pause()
                    try:
                        if load:
                            with load:
                                result = wrk(url, key, args.duration, args.connections)
                            result["management"] = dict(sorted(load.statuses.items()))
                        else:
                            result = wrk(url, key, args.duration, args.connections)
                    finally:
                        if kind == "fault":
                            faults[scenario].resume()
                    runs[kind].append(result)
                    print(f"  {scenario:8} round {round_ + 1} {kind:7} {result}", flush=True)
                    time.sleep(11)  # let the breakers close again (OMIKEYS_BREAKER_RESET_SECONDS is 10)
            results[scenario] = runs

        print("\nmedians (GET /v1/dev/key, valid key, through nginx)")
        columns = ("healthy req/s", "fault req/s", "ratio", "healthy p99", "fault p99")
        print(f"  {'scenario':10} {columns[0]:>14} {columns[1]:>12} {columns[2]:>6} {columns[3]:>12} {columns[4]:>10}")
        for scenario, runs in results.items():
            h_rps = statistics.median(r["rps"] for r in runs["healthy"])
            f_rps = statistics.median(r["rps"] for r in runs["fault"])
            h_p99 = statistics.median(r["p99_ms"] for r in runs["healthy"])
            f_p99 = statistics.median(r["p99_ms"] for r in runs["fault"])
            print(
                f"  {scenario:10} {h_rps:14,.0f} {f_rps:12,.0f} {f_rps / h_rps:6.2f} {h_p99:10.1f}ms {f_p99:8.1f}ms"
                f"   target (within 20%): {'met' if f_rps / h_rps >= 0.8 else 'MISSED'}"
            )
    finally:
        for server in reversed(started):
            try:
                server.resume()
            except (ProcessLookupError, AttributeError, TypeError):
                pass
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
