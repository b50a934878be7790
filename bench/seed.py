"""Fill a freshly migrated database with API keys for the benchmark.

    DJANGO_SETTINGS_MODULE=bench.settings DATABASE_URL=... .venv/bin/python bench/seed.py --keys 1000000

Creates, from instances of the ORM models (so columns added to ApiKey later need
no change here, see ``insert``):

- ``--keys`` omikeys ``ApiKey`` rows: ``--keys - 1`` filler keys, each the SHA-256
  of a distinct random ``omi_dev_`` key, carrying one scope (the eight contract
  scopes in turn), spread over as many users as the product's limit on active keys
  per owner needs (``OMIKEYS_MAX_ACTIVE_KEYS``, 50 by default: 20,000 owners for a
  million keys); then the measured key, issued for an owner of its own with
  ``lifecycle.issue_key``, so it carries the four default read scopes;
- ``--keys`` djangorestframework-api-key ``APIKey`` rows: fillers with unique
  prefixes and real SHA-512 hashes of random keys, then the measured key, made the
  library's way (``APIKey.objects.create_key``).

Prints one JSON line on stdout with the two measured keys; progress goes to stderr.
On PostgreSQL it runs ANALYZE at the end.
"""

import argparse
import hashlib
import json
import math
import os
import random
import string
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.db import IntegrityError, connection, transaction  # noqa: E402
from rest_framework_api_key.models import APIKey  # noqa: E402

from apikeys import crypto, lifecycle  # noqa: E402
from apikeys.bulk import insert  # noqa: E402
from apikeys.models import ApiKey, Scope, User  # noqa: E402

ALPHANUMERIC = string.ascii_letters + string.digits  # the library's prefix alphabet


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def batches(total: int, size: int):
    done = 0
    while done < total:
        n = min(size, total - done)
        yield done, n
        done += n


def seed_omikeys(fillers: int, owners: list[int], batch: int, label: str) -> None:
    scopes = list(Scope.objects.order_by("code"))
    through = ApiKey.scopes.through
    started = time.monotonic()
    for done, n in batches(fillers, batch):
        keys, links = [], []
        for i in range(done, done + n):
            plaintext = crypto.KEY_PREFIX + os.urandom(crypto.SECRET_BYTES).hex()
            key = ApiKey(
                owner_id=owners[i % len(owners)],
                name=f"filler {i}",
                key_prefix=crypto.display_prefix(plaintext),
                key_hash=crypto.hash_key(plaintext),
            )
            keys.append(key)
            links.append(through(apikey_id=key.id, scope_id=scopes[i % len(scopes)].id))
        with transaction.atomic():
            insert(ApiKey, keys)
            insert(through, links)
        report(label, done + n, n, fillers, started)


def seed_library(fillers: int, batch: int, label: str) -> None:
    hasher = APIKey.objects.key_generator
    used: set[str] = set()
    started = time.monotonic()
    rng = random.Random(os.urandom(16))  # filler data only: speed over unpredictability
    for done, n in batches(fillers, batch):
        rows = []
        while len(rows) < n:
            prefix = "".join(rng.choices(ALPHANUMERIC, k=hasher.prefix_length))
            if prefix in used:
                continue
            used.add(prefix)
            secret = os.urandom(hasher.secret_key_length // 2).hex()
            # What Sha512ApiKeyHasher.encode stores, computed without make_password's overhead.
            hashed = "sha512$$" + hashlib.sha512(f"{prefix}.{secret}".encode()).hexdigest()
            rows.append(
                APIKey(id=f"{prefix}.{hashed}", prefix=prefix, hashed_key=hashed, name=f"filler {done + len(rows)}")
            )
        with transaction.atomic():
            insert(APIKey, rows)
        report(label, done + n, n, fillers, started)


def report(label: str, done: int, n: int, total: int, started: float) -> None:
    """A line at every tenth of the way (and at the end)."""
    step = max(total // 10, 1)
    if done == total or done // step > (done - n) // step:
        rate = done / max(time.monotonic() - started, 1e-9)
        progress(f"    {label}: {done:,}/{total:,} filler rows ({rate:,.0f}/s)")


def make_owners(count: int, batch: int) -> list[int]:
    """Filler owners, made as ``User.objects.for_firebase`` makes them, inserted in bulk; their ids."""
    started = time.monotonic()
    for start, n in batches(count, batch):
        users = []
        for i in range(start, start + n):
            uid = f"bench-owner-{i}"
            users.append(
                User(
                    firebase_uid=uid,
                    username=User.username_for_uid(uid),
                    email=f"owner{i}@bench.example",
                    password=make_password(None),
                )
            )
        with transaction.atomic():
            insert(User, users)
        report("owners", start + n, n, count, started)
    return list(User.objects.filter(firebase_uid__startswith="bench-owner-").values_list("pk", flat=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, required=True, help="rows in each key table, the measured key included")
    parser.add_argument(
        "--keys-per-owner",
        type=int,
        default=settings.OMIKEYS_MAX_ACTIVE_KEYS,
        help="filler keys per owner (default: OMIKEYS_MAX_ACTIVE_KEYS, the product's limit)",
    )
    parser.add_argument("--batch", type=int, default=10_000, help="rows per insert and transaction")
    args = parser.parse_args()
    if args.keys < 1:
        parser.error("--keys must be at least 1")

    fillers = args.keys - 1
    started = time.monotonic()
    if connection.vendor == "sqlite":
        # This connection only (not the server's): a page cache big enough for the
        # indexes, so inserting random hashes does not re-read pages from disk.
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA cache_size = -1000000")  # KiB: up to about 1 GB
    owners = make_owners(max(1, math.ceil(fillers / args.keys_per_owner)), args.batch)
    seed_omikeys(fillers, owners, args.batch, "omikeys ApiKey")
    measured_owner = User.objects.for_firebase("bench-measured-owner", "measured@bench.example")
    issued = lifecycle.issue_key(owner=measured_owner, name="bench")

    seed_library(fillers, args.batch, "drf-api-key APIKey")
    for _ in range(10):  # the library picks a random prefix; retry in the unlikely case it is taken
        try:
            with transaction.atomic():
                _, library_key = APIKey.objects.create_key(name="bench")
            break
        except IntegrityError:
            continue
    else:
        raise SystemExit("could not create the library's measured key")

    if connection.vendor == "postgresql":
        progress("    ANALYZE")
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    counts = {"omikeys": ApiKey.objects.count(), "drf_api_key": APIKey.objects.count(), "users": User.objects.count()}
    progress(
        f"    seeded {counts['omikeys']:,} omikeys keys ({counts['users']:,} owners) and "
        f"{counts['drf_api_key']:,} drf-api-key keys in {time.monotonic() - started:.0f} s"
    )
    scopes = [scope.code for scope in issued.api_key.scopes.order_by("code")]
    print(
        json.dumps(
            {
                "omikeys_key": issued.plaintext,
                "omikeys_key_id": str(issued.api_key.pk),
                "omikeys_scopes": scopes,
                "drf_api_key": library_key,
                "counts": counts,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
