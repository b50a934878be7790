"""One key's usage write holding 100 addresses: its statements and milliseconds (docs/performance.md, Usage per key).

    DJANGO_SETTINGS_MODULE=bench.settings DATABASE_URL=... .venv/bin/python bench/usage_write.py

Four writes of the same key: new addresses (inserts), then the same ones again (updates), twice.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import django

django.setup()
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from apikeys.lifecycle import usage  # noqa: E402
from apikeys.models import ApiKey  # noqa: E402

settings.OMIKEYS_USAGE_MAX_PENDING_ADDRESSES = 100
key = ApiKey.objects.order_by("created_at")[5]
for attempt in range(4):
    now = timezone.now()
    for a in range(100):
        usage.ACCUMULATOR.add(key.pk, "accepted", now, f"198.51.{attempt // 2}.{a}", "bench/1")
    with CaptureQueriesContext(connection) as q:
        started = time.perf_counter()
        usage.flush_key(key.pk)
        ms = (time.perf_counter() - started) * 1000
    if "-v" in sys.argv:
        print([statement["sql"][:60] for statement in q.captured_queries])
    what = "insert" if attempt % 2 == 0 else "update"
    print(f"write {attempt + 1} ({what}): {len(q.captured_queries)} statements, {ms:.1f} ms")
