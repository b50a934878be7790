"""Operational endpoints that belong to no door: liveness (GET /healthz), readiness (GET /readyz)
and the Prometheus metrics (GET /metrics)."""

import hmac
import ipaddress

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import Http404, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client.django import PrometheusDjangoView

from . import dependencies, firebase
from .audit import client_ip


@require_safe
def health(request):
    """Liveness: 200 ``{"status": "ok"}`` whenever the process answers requests.

    It touches no dependency (no database query, no cache, no Firebase), so a database
    outage does not make an orchestrator restart healthy processes; whether an instance
    can serve is readiness (``GET /readyz``, :func:`readiness`).
    """
    return JsonResponse({"status": "ok"})


class MetricsView(PrometheusDjangoView):
    """``GET /metrics``: the Prometheus metrics of every worker (see ``apikeys.metrics``).

    Off (404) unless ``OMIKEYS_METRICS_TOKEN`` or ``OMIKEYS_METRICS_ALLOWED_NETWORKS`` is
    set. With networks, a client address (``audit.client_ip``) outside them gets 404;
    with a token, a request without ``Authorization: Bearer <token>`` gets 401 (RFC 6750).
    With both, both must hold.
    """

    http_method_names = ["get", "head"]

    def dispatch(self, request, *args, **kwargs):
        token, networks = settings.OMIKEYS_METRICS_TOKEN, settings.OMIKEYS_METRICS_ALLOWED_NETWORKS
        if not token and not networks:
            raise Http404("Metrics are off.")
        if networks and not _in_networks(client_ip(request), networks):
            raise Http404("Metrics are not served to this address.")
        if token and not _bearer_matches(request, token):
            response = JsonResponse({"detail": "Send 'Authorization: Bearer <metrics token>'."}, status=401)
            response["WWW-Authenticate"] = 'Bearer realm="omikeys-metrics"'
            return response
        return super().dispatch(request, *args, **kwargs)

    def head(self, request, *args, **kwargs):
        return self.get(request, *args, **kwargs)


def _in_networks(address: str | None, networks) -> bool:
    if address is None:
        return False
    parsed = ipaddress.ip_address(address)
    return any(parsed in network for network in networks)


def _bearer_matches(request, token: str) -> bool:
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(), token.encode())


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
