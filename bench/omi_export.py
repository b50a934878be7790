"""Writes a synthetic export of Omi's dev_api_keys (NDJSON, gzip) for the import benchmark, in Omi's shapes.

    python bench/omi_export.py --documents 1000000 --out /tmp/export.ndjson.gz --samples /tmp/samples.json

Documents mix the shapes an export of a long-lived collection holds: 60% of today's
records (UUID ids, ISO 8601 times, a scope list, 2% of them with a scope omikeys does not
know), 30% from before scopes (Firestore auto ids, scopes null, ``{_seconds,
_nanoseconds}`` times) and 10% with scopes absent and protobuf ``{seconds, nanos}``
times. Owners hold two keys on average. ``--samples`` gets a few plaintexts with their
document ids, so the benchmark can check that imported keys verify.
"""

import argparse
import datetime
import gzip
import hashlib
import json
import os
import random
import uuid

KNOWN = ["memories:read", "conversations:read", "action_items:read", "goals:read", "memories:write"]


def documents(count: int, rng: random.Random, samples: list):
    owners = max(1, count // 2)
    for i in range(count):
        secret = os.urandom(16).hex()
        uid = f"bench-uid-{rng.randrange(owners):08d}"
        created = 1_600_000_000 + rng.randrange(150_000_000)
        kind = i % 10
        data = {
            "user_id": uid,
            "name": f"Integration {i}",
            "hashed_key": hashlib.sha256(secret.encode()).hexdigest(),
            "key_prefix": f"omi_dev_{secret[:4]}...{secret[-4:]}",
        }
        if kind < 6:
            document_id = str(uuid.UUID(bytes=os.urandom(16), version=4))
            scopes = rng.sample(KNOWN, rng.randint(1, 3)) + (["tasks:read"] if i % 50 == 0 else [])
            data |= {"created_at": _iso(created), "scopes": scopes, "app_id": "developer_api"}
            data["last_used_at"] = _iso(created + 86_400) if i % 3 else None
        elif kind < 9:
            document_id = os.urandom(15).hex()[:20]
            data |= {"created_at": {"_seconds": created, "_nanoseconds": 123_000}, "scopes": None, "last_used_at": None}
        else:
            document_id = os.urandom(15).hex()[:20]
            data |= {"created_at": {"seconds": str(created), "nanos": 0}, "last_used_at": {"seconds": created + 60}}
        data["id"] = document_id
        if len(samples) < 5 and i % 97 == 0:
            samples.append({"document_id": document_id, "key": f"omi_dev_{secret}", "uid": uid})
        yield {"id": document_id, "data": data}


def _iso(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).isoformat().replace("+00:00", "Z")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--out", required=True)
    parser.add_argument("--samples", required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    samples: list = []
    with gzip.open(args.out, "wt", compresslevel=1, encoding="utf-8") as out:
        for document in documents(args.documents, random.Random(args.seed), samples):
            out.write(json.dumps(document, separators=(",", ":")) + "\n")
    with open(args.samples, "w") as out:
        json.dump(samples, out)


if __name__ == "__main__":
    main()
