"""Operational endpoints that belong to no door: liveness (GET /healthz) and readiness (GET /readyz)."""

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from . import dependencies, firebase


@require_safe
def health(request):
    """200 when the database answers, 503 otherwise; for load balancers and orchestrators."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_cache() -> None:
    cache.get("omikeys:readiness")


CHECKS = {
    dependencies.DATABASE: _check_database,
    dependencies.CACHE: _check_cache,
    dependencies.FIREBASE: firebase.check_reachable,
}


@never_cache
@require_safe
def readiness(request):
    """Whether this instance can serve: each dependency checked with its usual timeout and breaker.

    Answers ``{"status": "ready" | "not ready", "checks": {"database": "ok" |
    "unavailable", "cache": ..., "firebase": ...}}``: 200 when every dependency named in
    ``OMIKEYS_READINESS_REQUIRES`` answered, 503 (with ``Retry-After``) otherwise. A
    dependency whose breaker is open is reported unavailable without being called.
    """
    checks = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception:  # any failure means "not answering"; the breaker logged the outage
            checks[name] = "unavailable"
        else:
            checks[name] = "ok"
    ready = all(checks[name] == "ok" for name in settings.OMIKEYS_READINESS_REQUIRES)
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    response = JsonResponse(body, status=200 if ready else 503)
    if not ready:
        failing = [n for n in settings.OMIKEYS_READINESS_REQUIRES if checks[n] != "ok"]
        response["Retry-After"] = str(max(dependencies.retry_after_seconds(n) for n in failing))
    return response
