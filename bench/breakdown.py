"""Where the time of one verification goes: each step of (a) and of (c), timed alone.

    DJANGO_SETTINGS_MODULE=bench.settings DATABASE_URL=... .venv/bin/python bench/breakdown.py KEYS.json [-n 2000]

KEYS.json is seed.py's output. Each line is the best of five runs of ``-n``
calls, in microseconds per call, so that other work on the machine inflates
the figures as little as possible.
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
warnings.filterwarnings("ignore", message="No directory at")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.db.models import Aggregate, CharField, OuterRef, Q, Subquery  # noqa: E402
from django.test import Client  # noqa: E402
from rest_framework.renderers import JSONRenderer  # noqa: E402
from rest_framework_api_key.models import APIKey  # noqa: E402

from apikeys import crypto, lifecycle, limits  # noqa: E402
from apikeys.api import serializers  # noqa: E402
from apikeys.models import ApiKey  # noqa: E402
from bench.explain import PATHS, headers  # noqa: E402

try:  # the hand-written statement, where the working tree has it
    from apikeys.lookup import find_by_hash
except ImportError:
    find_by_hash = None


class GroupConcat(Aggregate):
    function = "GROUP_CONCAT"
    output_field = CharField()

    def as_postgresql(self, compiler, connection, **extra_context):
        return super().as_sql(
            compiler, connection, function="STRING_AGG", template="%(function)s(%(expressions)s, ',')", **extra_context
        )


def orm_lookup(hashed: str, legacy_hashed: str):
    """The verification read as a queryset: key by either stored form in either hash column, owner, scope codes."""
    codes = (
        ApiKey.scopes.through.objects.filter(apikey_id=OuterRef("pk"))
        .order_by()
        .values("apikey_id")
        .annotate(codes=GroupConcat("scope__code"))
        .values("codes")
    )
    return (
        ApiKey.objects.filter(
            Q(key_hash__in=[hashed, legacy_hashed]) | Q(previous_key_hash__in=[hashed, legacy_hashed])
        )
        .select_related("owner")
        .annotate(scope_codes=Subquery(codes))
        .order_by()
    )


def best(fn, n: int) -> float:
    fn()
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - start) / n * 1e6)
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("keys", type=Path)
    parser.add_argument("-n", type=int, default=2000)
    args = parser.parse_args()
    keys = json.loads(args.keys.read_text())
    key, library_key = keys["omikeys_key"], keys["drf_api_key"]
    hashes = crypto.candidate_hashes(key)
    api_key = lifecycle.verify_key(key).api_key
    assert api_key is not None
    sql, params = orm_lookup(*hashes).query.get_compiler(connection.alias).as_sql()

    def raw():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            cursor.fetchall()

    throttle = limits.failed_verification()
    data = serializers.CallingApiKeySerializer(api_key).data
    client = Client(HTTP_HOST="127.0.0.1")
    extra = headers(keys)
    steps = [
        ("whole request (a), test client", lambda: client.get(PATHS["a"], **extra["a"])),
        ("whole request (b), test client", lambda: client.get(PATHS["b"], **extra["b"])),
        ("whole request (c), test client", lambda: client.get(PATHS["c"], **extra["c"])),
        ("(a) lifecycle.verify_key(key), all of it", lambda: lifecycle.verify_key(key)),
    ]
    if find_by_hash is not None:
        steps.append(("(a)   lookup.find_by_hash(hash)", lambda: find_by_hash(*hashes)))
    steps += [
        ("the lookup as an ORM queryset: build it", lambda: orm_lookup(*hashes)),
        ("  build and compile it to SQL", lambda: orm_lookup(*hashes).query.get_compiler(connection.alias).as_sql()),
        ("  build, compile, run, make instances", lambda: list(orm_lookup(*hashes))),
        ("  the same SQL, run on a raw cursor", raw),
        ("(a) failed-verification throttle check", lambda: throttle.retry_after("127.0.0.1")),
    ]
    if hasattr(serializers, "calling_key_body"):
        steps.append(("(a) serializers.calling_key_body(key)", lambda: serializers.calling_key_body(api_key)))
    steps += [
        ("(a) CallingApiKeySerializer(key).data", lambda: serializers.CallingApiKeySerializer(api_key).data),
        ("(a) JSONRenderer().render(body)", lambda: JSONRenderer().render(data)),
        ("(c) APIKey.objects.is_valid(key), all of it", lambda: APIKey.objects.is_valid(library_key)),
    ]
    print(f"database: {connection.vendor}; {keys['counts']['omikeys']:,} omikeys keys; best of 5 x {args.n} calls")
    for label, fn in steps:
        print(f"  {label:<46} {best(fn, args.n):8.0f} us")


if __name__ == "__main__":
    main()
