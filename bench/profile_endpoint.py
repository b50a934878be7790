"""Profile one benchmarked endpoint in-process with cProfile.

    DJANGO_SETTINGS_MODULE=bench.settings DATABASE_URL=... \\
        .venv/bin/python bench/profile_endpoint.py KEYS.json a [-n 2000] [--top 25]

KEYS.json is seed.py's output; the endpoint is a, b or c as in bench/run. The
requests go through Django's test client (the whole middleware stack, no HTTP
server). Prints the time per request and the functions with the most time,
sorted by cumulative and by own time.
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
warnings.filterwarnings("ignore", message="No directory at")  # no collectstatic for the bench

import django  # noqa: E402

django.setup()

from django.test import Client  # noqa: E402

from bench.explain import PATHS, headers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("keys", type=Path)
    parser.add_argument("endpoint", choices=sorted(PATHS))
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    extra = headers(json.loads(args.keys.read_text()))[args.endpoint]
    client = Client(HTTP_HOST="127.0.0.1")
    path = PATHS[args.endpoint]
    for _ in range(100):
        assert client.get(path, **extra).status_code == 200
    start = time.perf_counter()
    for _ in range(args.n):
        client.get(path, **extra)
    plain = (time.perf_counter() - start) / args.n * 1e6
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.n):
        client.get(path, **extra)
    profiler.disable()
    print(f"({args.endpoint}) GET {path}: {plain:.0f} us per request without the profiler")
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(args.top)
        print(out.getvalue())


if __name__ == "__main__":
    main()
