"""Throttles under concurrency: how many events each algorithm lets through, and what one check costs.

    .venv/bin/python bench/throttles.py [--redis redis://127.0.0.1:PORT/0] [--threads 8] [--attempts 400]

With ``--redis``, Django's Redis cache backend (shared, as in production); without, the
in-memory one. Each algorithm gets ``--attempts`` events for one subject from
``--threads`` threads at once, against a limit of 100 an hour, five rounds; the table
gives the median number let through (the limit is 100) and the median microseconds per
event. Compared: DRF's ``SimpleRateThrottle`` (one history list per subject, read and
written back) and omikeys' sliding-window slots (``apikeys.limits.Throttle``).
"""

import argparse
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django
from django.conf import settings

LIMIT, PERIOD = 100, 3600


def configure(redis_url: str | None) -> None:
    if redis_url:
        cache = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}
    else:
        cache = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    settings.configure(CACHES={"default": cache}, INSTALLED_APPS=["rest_framework"], USE_TZ=True)
    django.setup()


def drf_event():
    """One event through DRF's SimpleRateThrottle; True when let through."""
    from rest_framework.throttling import SimpleRateThrottle

    subject = f"drf-{uuid.uuid4().hex}"

    class Throttle(SimpleRateThrottle):
        rate = f"{LIMIT}/hour"

        def get_cache_key(self, request, view):
            return subject

    return lambda: Throttle().allow_request(None, None)


def omikeys_event():
    from apikeys.limits import Throttle

    throttle, subject = Throttle("bench", LIMIT, PERIOD), uuid.uuid4().hex
    return lambda: throttle.hit(subject) is None


def run(make_event, threads: int, attempts: int) -> tuple[int, float]:
    event = make_event()
    allowed, barrier = [], threading.Barrier(threads)
    per_thread = attempts // threads

    def worker():
        barrier.wait()
        allowed.extend(event() for _ in range(per_thread))

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.perf_counter()
    for worker_thread in workers:
        worker_thread.start()
    for worker_thread in workers:
        worker_thread.join()
    elapsed = time.perf_counter() - started
    return sum(allowed), elapsed / (per_thread * threads) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", help="redis://host:port/db; default: the in-memory cache")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--attempts", type=int, default=400)
    args = parser.parse_args()
    configure(args.redis)
    print(f"cache: {'Redis' if args.redis else 'local memory'}; limit {LIMIT}/hour; {args.attempts} events")
    print(f"from {args.threads} threads; median of 5 rounds")
    print("| algorithm | let through (limit 100) | us per event |")
    print("|---|---|---|")
    for name, make in (("DRF SimpleRateThrottle", drf_event), ("omikeys sliding-window slots", omikeys_event)):
        rounds = [run(make, args.threads, args.attempts) for _ in range(5)]
        through = statistics.median(r[0] for r in rounds)
        micros = statistics.median(r[1] for r in rounds)
        print(f"| {name} | {through:.0f} (min {min(r[0] for r in rounds)}, max {max(r[0] for r in rounds)}) "
              f"| {micros:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
