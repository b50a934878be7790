"""The SQL each benchmarked endpoint runs, with the database's plan for it.

    DJANGO_SETTINGS_MODULE=bench.settings DATABASE_URL=... .venv/bin/python bench/explain.py KEYS.json

KEYS.json is seed.py's output. Each endpoint is requested once in-process through
Django's test client (the full middleware stack, no HTTP server), every statement
it sends is captured with its parameters, and each SELECT is explained:
EXPLAIN QUERY PLAN on SQLite, EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL. Then each
endpoint is timed in-process (``--timed`` requests, default 2000), which shows the
cost of a request without the HTTP server and the network.
"""

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
warnings.filterwarnings("ignore", message="No directory at")  # no collectstatic for the bench

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

PATHS = {"a": "/v1/dev/key", "b": "/bench/open", "c": "/bench/drf-api-key"}


def headers(keys: dict) -> dict:
    return {
        "a": {"HTTP_AUTHORIZATION": f"Bearer {keys['omikeys_key']}"},
        "b": {},
        "c": {"HTTP_AUTHORIZATION": f"Api-Key {keys['drf_api_key']}"},
    }


def capture(client: Client, path: str, extra: dict):
    statements = []

    def wrapper(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    # Django's connection health check (CONN_HEALTH_CHECKS) runs its own query, outside
    # the wrappers: count it separately. The test client skips Django's request_started
    # handler that arms the check, so do what it does first.
    checks = []
    is_usable = connection.is_usable

    def counted():
        checks.append(1)
        return is_usable()

    connection.close_if_unusable_or_obsolete()
    connection.is_usable = counted
    try:
        with connection.execute_wrapper(wrapper):
            response = client.get(path, **extra)
    finally:
        del connection.is_usable
    return response, statements, len(checks)


def explain(sql: str, params) -> str:
    if connection.vendor == "postgresql":
        prefix = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY ON) "
    else:
        prefix = "EXPLAIN QUERY PLAN "
    with connection.cursor() as cursor:
        cursor.execute(prefix + sql, params)
        rows = cursor.fetchall()
    if connection.vendor == "postgresql":
        return "\n".join(row[0] for row in rows)
    return "\n".join(f"{'  ' * depth(rows, row)}{row[-1]}" for row in rows)


def depth(rows, row) -> int:
    # SQLite's plan rows are (id, parent, notused, detail); indent children under parents.
    parents = {r[0]: r[1] for r in rows}
    level, parent = 0, row[1]
    while parent:
        level, parent = level + 1, parents.get(parent, 0)
    return level


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("keys", type=Path)
    parser.add_argument("--endpoints", default="a,b,c")
    parser.add_argument("--timed", type=int, default=2000, help="in-process requests timed per endpoint")
    args = parser.parse_args()
    keys = json.loads(args.keys.read_text())
    extra = headers(keys)
    client = Client(HTTP_HOST="127.0.0.1")
    endpoints = args.endpoints.split(",")

    print(
        f"database: {connection.vendor}; {keys['counts']['omikeys']:,} omikeys keys, "
        f"{keys['counts']['drf_api_key']:,} drf-api-key keys"
    )
    for ep in endpoints:
        client.get(PATHS[ep], **extra[ep])  # first request: imports, connection, last_used_at stamp
        response, statements, checks = capture(client, PATHS[ep], extra[ep])
        print(
            f"({ep}) GET {PATHS[ep]}: {response.status_code}, {len(response.content)} bytes, "
            f"{len(statements)} quer{'y' if len(statements) == 1 else 'ies'}"
            + (
                f" + {checks} connection health check (SELECT 1)"
                if checks and connection.vendor == "postgresql"
                else ""
            )
        )
        if response.status_code != 200:
            print(response.content.decode(errors="replace"))
            sys.exit(1)
        for sql, params in statements:
            print(f"  SQL: {sql}")
            words = sql.split(None, 1)
            if connection.vendor == "postgresql" and words[0].upper() == "EXECUTE":
                # A prepared statement: show what it runs; EXPLAIN works on EXECUTE too.
                name = words[1].split("(", 1)[0].strip()
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements WHERE name = %s",
                        [name],
                    )
                    for text, generic, custom in cursor.fetchall():
                        print(f"  prepared as: {text}")
                        print(f"  plans so far on this connection: {generic} generic, {custom} custom")
            if words[0].upper() in ("SELECT", "EXECUTE"):
                print("  plan:")
                for line in explain(sql, params).splitlines():
                    print(f"    {line}")

    print(f"in-process, {args.timed} requests each (Django test client, no HTTP server):")
    for ep in endpoints:
        for _ in range(50):
            client.get(PATHS[ep], **extra[ep])
        start = time.perf_counter()
        for _ in range(args.timed):
            client.get(PATHS[ep], **extra[ep])
        per = (time.perf_counter() - start) / args.timed * 1e6
        print(f"  ({ep}) {per:7.0f} us per request")


if __name__ == "__main__":
    main()
