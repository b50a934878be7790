"""Prometheus metrics: verification outcomes, lifecycle events by door, throttles, dependencies, GET /metrics."""

import datetime
import ipaddress
import json

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from apikeys import lifecycle, metrics
from apikeys.audit import Actor
from apikeys.models import ApiKey, KeyEvent

from .helpers import issue, key_client, make_owner, scopes

URL = "/v1/dev/key"
TOKEN = "metrics-token-" + "x" * 32

pytestmark = [pytest.mark.django_db, pytest.mark.owner("metrics-owner")]


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """The change of one metric's samples since it was made, read with :meth:`now`."""

    def __init__(self, name: str, **labels):
        self.name, self.labels = name, labels
        self.before = value(name, **labels)

    def now(self) -> float:
        return value(self.name, **self.labels) - self.before


def verifications(outcome: str, secret: str = "none") -> Delta:
    return Delta("omikeys_key_verifications_total", outcome=outcome, secret=secret)


@pytest.fixture
def issued(owner):
    return issue(owner, "metered", ["memories:read"])


# --- verifications by outcome ---------------------------------------------------------


def test_a_valid_key_counts_as_valid_with_the_current_secret_and_is_timed(issued):
    counted = verifications("valid", "current")
    timed = Delta("omikeys_key_verification_duration_seconds_count")
    assert key_client(issued.plaintext).get(URL).status_code == 200
    assert counted.now() == 1
    assert timed.now() == 1


def test_the_replaced_secret_in_its_grace_period_counts_as_valid_replaced(issued):
    lifecycle.rotate_key(issued.api_key, grace_seconds=60)
    counted = verifications("valid", "replaced")
    assert key_client(issued.plaintext).get(URL).status_code == 200
    assert counted.now() == 1


def test_a_replaced_secret_after_its_grace_counts_as_grace_ended(issued):
    lifecycle.rotate_key(issued.api_key, grace_seconds=60)
    ApiKey.objects.filter(pk=issued.api_key.pk).update(previous_key_expires_at=timezone.now())
    counted = verifications("grace_ended", "replaced")
    assert key_client(issued.plaintext).get(URL).status_code == 401
    assert counted.now() == 1


def test_revoked_expired_and_deactivated_keys_count_by_reason(owner):
    revoked, expired, inactive = issue(owner, "r"), issue(owner, "e"), issue(make_owner("inactive-owner"), "i")
    lifecycle.revoke_key(revoked.api_key)
    ApiKey.objects.filter(pk=expired.api_key.pk).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    inactive.api_key.owner.is_active = False
    inactive.api_key.owner.save(update_fields=["is_active"])
    for issued_key, outcome in ((revoked, "revoked"), (expired, "expired"), (inactive, "owner_inactive")):
        counted = verifications(outcome, "current")
        assert key_client(issued_key.plaintext).get(URL).status_code == 401
        assert counted.now() == 1, outcome


@pytest.mark.parametrize(
    ("header", "outcome"),
    [
        ("Bearer omi_dev_" + "0" * 32, "not_found"),
        ("Bearer omi_dev_short", "malformed"),
        ("Bearer two words", "malformed"),
        ("Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "malformed"),
    ],
)
def test_refused_keys_count_by_outcome(header, outcome):
    counted = verifications(outcome)
    response = APIClient().get(URL, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert counted.now() == 1


def test_no_credential_is_no_verification():
    counted = Delta("omikeys_key_verification_duration_seconds_count")
    assert APIClient().get(URL).status_code == 401
    assert counted.now() == 0


def test_throttled_requests_count_as_throttled_and_as_a_throttle_refusal(settings, issued):
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (2, 3600)
    throttled, refusals = verifications("throttled"), Delta("omikeys_throttle_refusals_total", throttle="verify-fail")
    not_found = verifications("not_found")
    bad = key_client("omi_dev_" + "3" * 32, REMOTE_ADDR="203.0.113.20")
    assert [bad.get(URL).status_code for _ in range(3)] == [401, 401, 429]
    # While the address is blocked, even its valid key is refused before any lookup.
    assert key_client(issued.plaintext, REMOTE_ADDR="203.0.113.20").get(URL).status_code == 429
    assert (not_found.now(), throttled.now(), refusals.now()) == (2, 2, 2)


@pytest.mark.urls("tests.scoped_urls")
def test_a_valid_key_without_the_scope_counts_a_scope_refusal(owner):
    issued = issue(owner, "goals only", ["goals:read"])
    refusals, valid = Delta("omikeys_key_scope_refusals_total"), verifications("valid", "current")
    assert key_client(issued.plaintext).get("/v1/memories").status_code == 403
    assert key_client(issued.plaintext).get("/v1/goals").status_code == 200
    assert (refusals.now(), valid.now()) == (1, 2)


def test_every_outcome_the_core_gives_is_a_pre_created_series():
    exposed = REGISTRY.collect()
    samples = {
        (s.labels["outcome"], s.labels["secret"])
        for family in exposed
        if family.name == "omikeys_key_verifications"
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert samples == {(o, s) for o in metrics.VERIFICATION_OUTCOMES for s in metrics.SECRETS}


# --- lifecycle events by action and door ------------------------------------------------


def events(action: str, door: str) -> Delta:
    return Delta("omikeys_key_events_total", action=action, door=door)


@pytest.mark.django_db(transaction=True)
def test_api_changes_count_by_action_through_the_api_door(user_client):
    created, rotated, revoked = events("created", "api"), events("rotated", "api"), events("revoked", "api")
    body = user_client.post("/v1/dev/keys", data=json.dumps({"name": "n"}), content_type="application/json").json()
    assert user_client.post(f"/v1/dev/keys/{body['id']}/rotate").status_code == 200
    assert user_client.delete(f"/v1/dev/keys/{body['id']}").status_code == 204
    assert (created.now(), rotated.now(), revoked.now()) == (1, 1, 1)


@pytest.mark.django_db(transaction=True)
def test_command_and_code_changes_count_through_their_doors(owner, capsys):
    by_command, by_code = events("revoked", "command"), events("expiry_changed", "code")
    renamed, rescoped = events("renamed", "code"), events("scopes_changed", "code")
    first, second = issue(owner, "one"), issue(owner, "two")
    call_command("revokeapikey", str(first.api_key.pk))
    lifecycle.set_expiry(second.api_key, timezone.now() + datetime.timedelta(days=3))
    lifecycle.update_key(second.api_key, name="renamed", scopes=scopes("goals:read"))
    assert (by_command.now(), by_code.now(), renamed.now(), rescoped.now()) == (1, 1, 1, 1)


@pytest.mark.django_db(transaction=True)
def test_an_import_counts_each_key_it_imports_and_revokes_once_it_commits(owner):
    from .test_importing import record

    imported, revoked = events("imported", "command"), events("revoked", "command")
    actor = Actor.command("importomikeys")
    first = [record(n, owner) for n in range(1, 4)]
    assert [r.outcome for r in lifecycle.import_keys(first, actor=actor)] == ["created"] * 3
    again = [record(1, owner, revoke_reason="firebase_disabled"), record(4, owner)]
    assert [r.outcome for r in lifecycle.import_keys(again, actor=actor)] == ["updated", "created"]
    assert (imported.now(), revoked.now()) == (4, 1)

    with pytest.raises(RuntimeError), transaction.atomic():
        lifecycle.import_keys([record(5, owner)], actor=actor)
        raise RuntimeError("a dry run rolls the batch back")
    assert imported.now() == 4


@pytest.mark.django_db(transaction=True)
def test_a_change_rolled_back_is_not_counted(owner):
    created = events("created", "web")
    with pytest.raises(RuntimeError), transaction.atomic():
        issue(owner, "rolled back", actor=Actor(kind=KeyEvent.ActorKind.USER, via=KeyEvent.Via.WEB))
        raise RuntimeError("the request failed after the change")
    assert created.now() == 0
    assert not ApiKey.objects.filter(name="rolled back").exists()


# --- throttles and dependencies -----------------------------------------------------------


def test_the_creation_throttle_counts_its_refusals(settings, user_client):
    settings.OMIKEYS_KEY_CREATION_RATE = (1, 3600)
    refusals = Delta("omikeys_throttle_refusals_total", throttle="create")
    statuses = [
        user_client.post("/v1/dev/keys", data=json.dumps({"name": f"k{n}"}), content_type="application/json")
        for n in range(3)
    ]
    assert [response.status_code for response in statuses] == [200, 429, 429]
    assert refusals.now() == 2


def test_dependency_errors_and_breaker_states_are_recorded_by_name():
    errors = Delta("omikeys_dependency_errors_total", dependency="cache")
    metrics.record_dependency_error("cache")
    assert errors.now() == 1
    for state, number in (("open", 2), ("half-open", 1), ("closed", 0), (2, 2), (metrics.BreakerState.CLOSED, 0)):
        metrics.set_breaker_state("firebase", state)
        assert value("omikeys_dependency_breaker_state", dependency="firebase") == number
    for dependency in metrics.DEPENDENCIES:
        assert REGISTRY.get_sample_value("omikeys_dependency_errors_total", {"dependency": dependency}) is not None


@pytest.mark.parametrize(
    "call",
    [
        lambda: metrics.record_dependency_error("redis"),
        lambda: metrics.set_breaker_state("redis", "open"),
        lambda: metrics.set_breaker_state("cache", "ajar"),
        lambda: metrics.set_breaker_state("cache", 3),
    ],
)
def test_an_unknown_dependency_or_state_is_an_error(call):
    with pytest.raises(ValueError):
        call()


# --- GET /metrics -----------------------------------------------------------------------------


def test_metrics_are_off_by_default():
    assert APIClient().get("/metrics").status_code == 404


@pytest.fixture
def with_token(settings):
    settings.OMIKEYS_METRICS_TOKEN = TOKEN


@pytest.mark.usefixtures("with_token")
@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"])
def test_with_a_token_other_requests_get_401(header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = APIClient().get("/metrics", **extra)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="omikeys-metrics"'
    assert TOKEN not in response.content.decode()


@pytest.mark.usefixtures("with_token")
def test_with_the_token_the_metrics_are_served_in_prometheus_text_format(issued):
    key_client(issued.plaintext).get(URL)
    response = APIClient().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    for name in (
        "omikeys_key_verifications_total",
        "omikeys_key_verification_duration_seconds_bucket",
        "omikeys_key_scope_refusals_total",
        "omikeys_key_events_total",
        "omikeys_throttle_refusals_total",
        "omikeys_dependency_errors_total",
        "omikeys_dependency_breaker_state",
    ):
        assert f"\n{name}" in text, name
    assert 'omikeys_key_verifications_total{outcome="valid",secret="current"}' in text
    assert issued.plaintext not in text and issued.api_key.key_hash not in text


def test_networks_limit_who_may_read_metrics(settings):
    settings.OMIKEYS_METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("10.0.0.0/8")]
    assert APIClient(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    assert APIClient(REMOTE_ADDR="192.0.2.1").get("/metrics").status_code == 404
    # Behind a proxy, the forwarded client address counts, not the proxy's.
    settings.OMIKEYS_NUM_PROXIES = 1
    assert APIClient(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.1").get("/metrics").status_code == 404
    assert APIClient(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="10.9.9.9").get("/metrics").status_code == 200


@pytest.mark.usefixtures("with_token")
def test_with_networks_and_a_token_both_must_hold(settings):
    settings.OMIKEYS_METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    assert APIClient(REMOTE_ADDR="127.0.0.1").get("/metrics", **auth).status_code == 200
    assert APIClient(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 401
    assert APIClient(REMOTE_ADDR="192.0.2.1").get("/metrics", **auth).status_code == 404


@pytest.mark.usefixtures("with_token")
def test_metrics_answer_get_and_head_only():
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    assert APIClient().head("/metrics", **auth).status_code == 200
    assert APIClient().post("/metrics", **auth).status_code == 405


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OMIKEYS_METRICS_TOKEN": "short"}, "OMIKEYS_METRICS_TOKEN must be at least 32 characters"),
        ({"OMIKEYS_METRICS_ALLOWED_NETWORKS": "10.0.0.0/8, intranet"}, "must list IP networks such as 10.0.0.0/8"),
        ({"PROMETHEUS_MULTIPROC_DIR": "/nonexistent/metrics"}, "PROMETHEUS_MULTIPROC_DIR names no directory"),
    ],
)
def test_bad_metrics_settings_stop_the_start(env, message):
    from .test_settings import REQUIRED, run_settings

    result = run_settings({**REQUIRED, **env})
    assert result.returncode != 0 and message in result.stderr


def test_metrics_settings_come_from_the_environment(tmp_path):
    from .test_settings import REQUIRED, run_settings

    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(len(s.OMIKEYS_METRICS_TOKEN), [str(n) for n in s.OMIKEYS_METRICS_ALLOWED_NETWORKS])"
    )
    env = {"OMIKEYS_METRICS_TOKEN": "t" * 40, "OMIKEYS_METRICS_ALLOWED_NETWORKS": "10.0.0.0/8, 127.0.0.1,"}
    result = run_settings({**REQUIRED, **env}, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "40 ['10.0.0.0/8', '127.0.0.1/32']"
    assert run_settings(REQUIRED, code).stdout.strip() == "0 []"


def test_every_audited_action_and_door_has_its_series():
    assert set(metrics.KEY_EVENT_ACTIONS) == set(KeyEvent.Action.values)
    assert set(metrics.DOORS) == set(KeyEvent.Via.values)
