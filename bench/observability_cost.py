"""CPU time per GET /v1/dev/key in one process, with and without metrics and request logging.

    DATABASE_URL=sqlite:///... bench/observability_cost.py KEY [--batches 30] [--requests 200]

Run by bench/observability on its seeded database. Three configurations take turns,
batch by batch, through Django's test client (no network, no gunicorn), and each
batch's process CPU time (``time.process_time``) is divided by its requests, so other
work on the machine, which changes wall-clock figures a lot, changes these little:

- ref: no request id middleware, the metrics recorders replaced by no-ops;
- metrics: the project as shipped (metrics in multiprocess mode, request ids, no request log);
- full: as metrics, plus the JSON request log line, written to a file.

Prints the median CPU microseconds per request of each and their ratios to ref.
"""

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# prometheus-client picks its mode at import: multiprocess, as under gunicorn with several workers.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="omikeys-bench-metrics-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

from apikeys import log_format, metrics  # noqa: E402

RECORDERS = ("record_verification", "record_key_events", "record_throttle_refusal", "record_scope_refusal")
MIDDLEWARE_NAME = "apikeys.request_logging.RequestLogMiddleware"


def client_for(config: str) -> Client:
    middleware = [name for name in settings.MIDDLEWARE if config != "ref" or name != MIDDLEWARE_NAME]
    with override_settings(MIDDLEWARE=middleware):
        client = Client(HTTP_HOST="127.0.0.1")
        client.get("/healthz")  # loads the middleware chain with these settings
    return client


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("key")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    log_file = tempfile.NamedTemporaryFile("w", prefix="omikeys-bench-requests-", suffix=".log", delete=False)  # noqa: SIM115
    handler = logging.StreamHandler(log_file)
    handler.setFormatter(log_format.JsonFormatter())
    handler.addFilter(log_format.RequestIdFilter())
    request_logger = logging.getLogger("omikeys.requests")
    request_logger.addHandler(handler)
    request_logger.propagate = False
    request_logger.setLevel(logging.INFO)

    real = {name: getattr(metrics, name) for name in RECORDERS}
    clients = {config: client_for(config) for config in ("ref", "metrics", "full")}
    headers = {"HTTP_AUTHORIZATION": f"Bearer {args.key}"}
    per_request = {config: [] for config in clients}
    for batch in range(args.batches):
        order = list(clients)[batch % 3 :] + list(clients)[: batch % 3]
        for config in order:
            for name in RECORDERS:
                setattr(metrics, name, real[name] if config != "ref" else lambda *a, **k: None)
            with override_settings(OMIKEYS_REQUEST_LOG=config == "full"):
                client = clients[config]
                started = time.process_time()
                for _ in range(args.requests):
                    response = client.get("/v1/dev/key", **headers)
                elapsed = time.process_time() - started
            assert response.status_code == 200, response.content
            per_request[config].append(elapsed / args.requests * 1e6)
    log_file.close()
    with open(log_file.name) as written:
        lines = sum(1 for _ in written)
    os.unlink(log_file.name)

    medians = {config: statistics.median(values) for config, values in per_request.items()}
    print(f"in-process, {args.batches} batches of {args.requests} requests per configuration, taking turns")
    print(f"{'config':<10}{'CPU us/req':>12}{'(min-max)':>16}")
    for config, values in per_request.items():
        print(f"{config:<10}{medians[config]:>12.0f}{f'({min(values):.0f}-{max(values):.0f})':>16}")
    for config in ("metrics", "full"):
        print(f"{config}/ref: CPU per request {medians[config] / medians['ref']:.3f}")
    print(f"request log lines written by (full): {lines:,}")


if __name__ == "__main__":
    main()
