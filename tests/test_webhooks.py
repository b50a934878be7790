"""Events out as signed webhooks: the outbox, signing, retries, leases, disabling, redelivery (apikeys.webhooks)."""

import datetime
import json
import time
import uuid

import pytest
from django.db import connection, transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from apikeys import crypto, events, lifecycle, webhooks
from apikeys.audit import Actor
from apikeys.models import Delivery, Event, KeyEvent, WebhookEndpoint

from .helpers import free_port, in_days, issue, make_owner, scopes, service
from .webhook_receiver import HOLD, Receiver

pytestmark = pytest.mark.django_db

ALL = [
    "key.created",
    "key.updated",
    "key.rotated",
    "key.revoked",
    "key.expired",
    "user.keys_revoked",
    "user.erased",
]


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def endpoint(receiver):
    """An endpoint for every event type at the receiver, and its signing secret."""
    return webhooks.register_endpoint(receiver.url, ALL, "test receiver")


@pytest.fixture
def now_retries(settings):
    """Retries due at once, three of them: due times pass without sleeping."""
    settings.OMIKEYS_WEBHOOK_RETRY_SCHEDULE = [0, 0, 0]


def test_a_key_change_arrives_signed_with_the_documented_payload(receiver, endpoint):
    _, secret = endpoint
    owner = make_owner("uid-payload", "payload-owner@example.com")
    issued = issue(owner, "Zapier", ["memories:read"], expires_at=in_days(30))

    assert webhooks.deliver_due() == 1

    [request] = receiver.wait_for(1)
    [payload] = receiver.verified(secret)
    event = Event.objects.get()
    assert request.webhook_id == str(event.pk) == payload["id"]
    assert request.headers["content-type"] == "application/json"
    assert payload["type"] == "key.created"
    assert payload["timestamp"].endswith("Z")
    data = payload["data"]
    assert data["key_id"] == str(issued.api_key.pk)
    assert data["owner_uid"] == "uid-payload"
    assert data["name"] == "Zapier"
    assert data["scopes"] == ["memories:read"]
    assert data["status"] == "active"
    assert data["expires_at"] == events.rfc3339(issued.api_key.expires_at)
    assert data["actor"] == {"kind": "system", "via": "code", "label": "Python code"}
    assert data["door"] == "code"
    body = request.body.decode()
    for secret_part in (issued.plaintext, issued.api_key.key_hash, "payload-owner@example.com"):
        assert secret_part not in body
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_response_code) == ("delivered", 1, 200)
    assert delivery.delivered_at is not None


def test_each_change_becomes_its_event_type(receiver, endpoint):
    owner = make_owner()
    issued = issue(owner, "first", ["memories:read"])
    api_key = issued.api_key
    lifecycle.update_key(api_key, name="second")
    lifecycle.update_key(api_key, scopes=scopes("memories:read", "memories:write"))
    lifecycle.set_expiry(api_key, in_days(10))
    lifecycle.rotate_key(api_key)
    lifecycle.revoke_key(api_key)
    lifecycle.revoke_key(api_key)  # already revoked: no change, no event

    types = list(Event.objects.order_by("created_at").values_list("type", flat=True))
    assert types == ["key.created", "key.updated", "key.updated", "key.updated", "key.rotated", "key.revoked"]
    updates = [e.payload["data"]["changed"] for e in Event.objects.filter(type="key.updated").order_by("created_at")]
    assert updates == [["name"], ["scopes"], ["expires_at"]]
    revoked = Event.objects.get(type="key.revoked").payload["data"]
    assert revoked["status"] == "revoked" and revoked["name"] == "second"
    assert revoked["scopes"] == ["memories:read", "memories:write"]

    assert webhooks.deliver_due() == 6
    assert [p["type"] for p in receiver.verified(endpoint[1])] == types


def test_an_endpoint_gets_only_the_types_it_subscribes_to(receiver):
    _, secret = webhooks.register_endpoint(receiver.url, ["key.revoked"])
    issued = issue(make_owner())
    lifecycle.revoke_key(issued.api_key)

    webhooks.deliver_due()

    assert [p["type"] for p in receiver.verified(secret)] == ["key.revoked"]


def test_without_a_subscribed_endpoint_no_event_is_written(receiver):
    endpoint, _ = webhooks.register_endpoint(receiver.url, ["key.revoked"])
    webhooks.disable_endpoint(endpoint, "test")
    issue(make_owner())
    lifecycle.revoke_key(issue(make_owner("other")).api_key)

    assert Event.objects.count() == 0
    assert Delivery.objects.count() == 0


def test_imports_make_no_event(receiver, endpoint):
    generated = crypto.generate_key()
    imported = lifecycle.ImportedKey(
        key_id=uuid.uuid4(),
        source_id="omi-document-1",
        owner=make_owner(),
        name="from Omi",
        key_prefix=generated.display_prefix,
        key_hash=generated.hashed,
        scopes=scopes("memories:read"),
        created_at=timezone.now(),
        revoke_reason="firebase_disabled",
    )

    lifecycle.import_keys([imported])

    assert KeyEvent.objects.filter(action="imported").count() == 1
    assert Event.objects.count() == 0


def test_an_import_revoking_a_working_key_sends_key_revoked(receiver, endpoint):
    generated = crypto.generate_key()
    owner = make_owner()
    record = {
        "key_id": uuid.uuid4(),
        "source_id": "omi-document-2",
        "owner": owner,
        "name": "from Omi",
        "key_prefix": generated.display_prefix,
        "key_hash": generated.hashed,
        "scopes": scopes("memories:read"),
        "created_at": timezone.now(),
    }
    lifecycle.import_keys([lifecycle.ImportedKey(**record)])
    assert Event.objects.count() == 0  # imported working: no event

    lifecycle.import_keys([lifecycle.ImportedKey(**record, revoke_reason="firebase_deleted")])

    event = Event.objects.get()
    assert event.type == "key.revoked"
    assert event.payload["data"]["key_id"] == str(record["key_id"])
    assert event.payload["data"]["owner_uid"] == owner.firebase_uid
    assert event.payload["data"]["status"] == "revoked"
    webhooks.deliver_due()
    assert [p["type"] for p in receiver.verified(endpoint[1])] == ["key.revoked"]


def test_a_rolled_back_change_sends_nothing(receiver, endpoint):
    owner = make_owner()

    class Abandon(Exception):
        pass

    with pytest.raises(Abandon), transaction.atomic():
        issue(owner, "never committed")
        assert Event.objects.count() == 1  # written in the change's own transaction
        raise Abandon

    assert Event.objects.count() == 0
    assert Delivery.objects.count() == 0
    assert webhooks.deliver_due() == 0
    assert receiver.received == []


def test_the_user_level_call_emits_user_events(receiver, endpoint):
    owner = make_owner("uid-leaving", "leaving@example.com")
    first, second = issue(owner, "a").api_key, issue(owner, "b").api_key
    with transaction.atomic():
        for api_key in (first, second):
            lifecycle.revoke_key(api_key, actor=Actor.command("test"))
        events.emit_user_event("user.keys_revoked", owner, actor=Actor.command("test"), key_ids=[first.pk, second.pk])
        events.emit_user_event("user.erased", owner)

    webhooks.deliver_due()

    payloads = {p["type"]: p["data"] for p in receiver.verified(endpoint[1])}
    assert payloads["user.keys_revoked"]["owner_uid"] == "uid-leaving"
    assert payloads["user.keys_revoked"]["key_ids"] == sorted([str(first.pk), str(second.pk)])
    assert payloads["user.keys_revoked"]["actor"]["kind"] == "command"
    assert payloads["user.keys_revoked"]["door"] == "command"
    assert payloads["user.erased"]["owner_uid"] == "uid-leaving"
    assert "leaving@example.com" not in json.dumps(payloads)
    with pytest.raises(ValueError, match="not a user event"):
        events.emit_user_event("key.created", owner)


def test_a_500_is_retried_until_the_receiver_answers(receiver, endpoint, now_retries):
    receiver.answers = [500, 503]
    issue(make_owner())

    for _ in range(3):
        webhooks.deliver_due()

    received = receiver.wait_for(3)
    assert len({r.webhook_id for r in received}) == 1  # the same webhook-id at every attempt
    assert len(receiver.verified(endpoint[1])) == 3
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_response_code) == ("delivered", 3, 200)


def test_a_failed_attempt_keeps_a_short_excerpt_only(receiver, endpoint, now_retries):
    receiver.answers = [500]
    issue(make_owner())

    webhooks.deliver_due()

    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and delivery.last_response_code == 500
    assert delivery.last_error.startswith("HTTP 500: xxx")
    assert len(delivery.last_error) <= webhooks.EXCERPT_BYTES + 20


def test_a_hanging_receiver_times_out_and_the_event_is_sent_again(receiver, endpoint, settings, now_retries):
    settings.OMIKEYS_WEBHOOK_TIMEOUT = 0.5
    receiver.answers = [HOLD]
    issue(make_owner())

    started = time.monotonic()
    webhooks.deliver_due()
    took = time.monotonic() - started

    assert took < 10  # a hang-versus-answer bound, not a timing measurement
    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and delivery.last_response_code is None
    assert "timed out" in delivery.last_error
    receiver.release()
    webhooks.deliver_due()
    assert Delivery.objects.get().status == "delivered"
    assert len({r.webhook_id for r in receiver.wait_for(2)}) == 1


def test_a_receiver_that_is_down_gets_the_event_once_it_is_up(settings, now_retries):
    port = free_port()
    _, secret = webhooks.register_endpoint(f"http://127.0.0.1:{port}/hooks", ["key.created"])
    issue(make_owner())

    webhooks.deliver_due()
    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and "could not connect" in delivery.last_error

    receiver = Receiver(port=port)
    try:
        webhooks.deliver_due()
        assert [p["type"] for p in receiver.verified(secret)] == ["key.created"]
    finally:
        receiver.stop()
    assert Delivery.objects.get().status == "delivered"


def test_retries_follow_the_backoff_schedule_then_fail(receiver, endpoint, settings, time_machine):
    settings.OMIKEYS_WEBHOOK_RETRY_SCHEDULE = [5, 300]
    receiver.default = 500
    time_machine.move_to(timezone.now(), tick=False)
    issue(make_owner())

    webhooks.deliver_due()
    delivery = Delivery.objects.get()
    assert delivery.next_attempt_at == timezone.now() + datetime.timedelta(seconds=5)
    assert webhooks.deliver_due() == 0  # not due yet

    time_machine.shift(5)
    webhooks.deliver_due()
    delivery.refresh_from_db()
    assert delivery.attempts == 2
    assert delivery.next_attempt_at == timezone.now() + datetime.timedelta(seconds=300)

    time_machine.shift(300)
    webhooks.deliver_due()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 3, None)
    time_machine.shift(86400)
    assert webhooks.deliver_due() == 0
    assert len(receiver.received) == 3


def test_the_default_schedule_retries_for_more_than_a_day(settings):
    waits = settings.OMIKEYS_WEBHOOK_RETRY_SCHEDULE
    assert sum(waits) > 24 * 3600
    assert waits == sorted(waits)


def test_redirects_are_not_followed(receiver, endpoint, now_retries):
    receiver.answers = [302]
    issue(make_owner())

    webhooks.deliver_due()

    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and delivery.last_response_code == 302
    assert len(receiver.received) == 1


def test_an_endpoint_failing_for_days_is_disabled(receiver, endpoint, settings, time_machine):
    settings.OMIKEYS_WEBHOOK_RETRY_SCHEDULE = [3600] * 200
    settings.OMIKEYS_WEBHOOK_DISABLE_AFTER_DAYS = 2
    receiver.default = 500
    row, _ = endpoint
    time_machine.move_to(timezone.now(), tick=False)
    issue(make_owner())

    webhooks.deliver_due()
    row.refresh_from_db()
    assert row.enabled and row.failing_since == timezone.now()
    for _ in range(47):
        time_machine.shift(3600)
        webhooks.deliver_due()
    row.refresh_from_db()
    assert row.enabled  # 47 hours of failures: not yet

    time_machine.shift(3600)
    webhooks.deliver_due()
    row.refresh_from_db()
    assert not row.enabled
    assert row.disabled_reason.startswith("Every delivery attempt failed for 2 days")
    sent = len(receiver.received)
    time_machine.shift(3600)
    issue(make_owner("another"))
    assert webhooks.deliver_due() == 0
    assert len(receiver.received) == sent
    assert Event.objects.count() == 1  # no new event for a disabled endpoint


def test_a_success_clears_the_failing_streak(receiver, endpoint, now_retries):
    receiver.answers = [500]
    row, _ = endpoint
    issue(make_owner())
    webhooks.deliver_due()
    row.refresh_from_db()
    assert row.failing_since is not None

    webhooks.deliver_due()

    row.refresh_from_db()
    assert row.failing_since is None


def test_redeliver_sends_a_delivered_event_again_with_the_same_id(receiver, endpoint):
    issue(make_owner())
    webhooks.deliver_due()
    delivery = Delivery.objects.get()

    assert webhooks.redeliver([delivery]) == 1
    assert Delivery.objects.get().status == "pending"
    webhooks.deliver_due()

    first, second = receiver.wait_for(2)
    assert first.webhook_id == second.webhook_id
    assert first.body == second.body
    assert Delivery.objects.get().status == "delivered"


def test_a_lease_held_by_a_dead_worker_expires_and_the_delivery_is_sent_again(receiver, endpoint, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    issue(make_owner())
    held = webhooks.claim()  # a worker that claimed it, then died before sending
    assert held is not None

    assert webhooks.deliver_due() == 0
    time_machine.shift(webhooks.settings.OMIKEYS_WEBHOOK_LEASE_SECONDS + 1)
    assert webhooks.deliver_due() == 1

    assert Delivery.objects.get().status == "delivered"
    webhooks.record(held, webhooks.Attempt(500, "late"))  # the dead worker's lease is gone: ignored
    assert Delivery.objects.get().status == "delivered"


def test_a_changed_secret_signs_the_next_attempt(receiver, endpoint, now_retries):
    row, old = endpoint
    receiver.answers = [500]
    issue(make_owner())
    webhooks.deliver_due()

    new = webhooks.rotate_secret(row)
    webhooks.deliver_due()

    first, second = receiver.wait_for(2)
    Webhook(old).verify(first.body, first.headers)
    Webhook(new).verify(second.body, second.headers)
    assert new != old


def test_after_a_rotation_both_secrets_sign_until_the_grace_period_ends(receiver, endpoint, settings, time_machine):
    from standardwebhooks.webhooks import WebhookVerificationError

    settings.OMIKEYS_WEBHOOK_SECRET_GRACE_HOURS = 24
    row, old = endpoint
    new = webhooks.rotate_secret(row)
    issue(make_owner())
    webhooks.deliver_due()

    [during] = receiver.wait_for(1)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(during.body, during.headers)  # a receiver not yet switched still verifies
    Webhook(new).verify(during.body, during.headers)

    time_machine.move_to(timezone.now() + datetime.timedelta(hours=24, seconds=1))
    issue(make_owner("later"))
    webhooks.deliver_due()
    after = receiver.wait_for(2)[1]
    Webhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)
    # The replaced secret is stored encrypted like the current one.
    row.refresh_from_db()
    assert old not in row.previous_secret_encrypted and webhooks.decrypt_secret(row.previous_secret_encrypted) == old


def test_a_rotation_without_grace_stops_the_old_secret_at_once(receiver, endpoint):
    from standardwebhooks.webhooks import WebhookVerificationError

    row, old = endpoint
    new = webhooks.rotate_secret(row, grace_hours=0)
    issue(make_owner())
    webhooks.deliver_due()

    [request] = receiver.wait_for(1)
    Webhook(new).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(request.body, request.headers)
    with pytest.raises(ValueError, match="between 0 and 168 hours"):
        webhooks.rotate_secret(row, grace_hours=-1)


def test_the_secret_is_stored_encrypted_and_readable_after_a_secret_key_rotation(endpoint, settings):
    row, secret = endpoint
    assert secret.startswith("whsec_")
    assert secret not in row.secret_encrypted
    assert webhooks.decrypt_secret(row.secret_encrypted) == secret

    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-for-the-test-Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9Lz2Xc4Vb6"
    assert webhooks.decrypt_secret(row.secret_encrypted) == secret
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(webhooks.SecretUnreadable):
        webhooks.decrypt_secret(row.secret_encrypted)


def test_the_secret_is_nowhere_in_the_database_in_plaintext(receiver, endpoint):
    _, secret = endpoint
    issue(make_owner())
    webhooks.deliver_due()

    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                text = " ".join(str(value) for value in row)
                assert secret not in text, table
                assert secret.removeprefix("whsec_") not in text, table


def test_the_secret_never_reaches_the_log(receiver, project_log, now_retries):
    row, secret = webhooks.register_endpoint(receiver.url, ALL)
    receiver.answers = [500]
    issue(make_owner())
    webhooks.deliver_due()
    webhooks.deliver_due()
    new = webhooks.rotate_secret(row)

    assert "webhook delivery delivered" in project_log.text
    for value in (secret, new, secret.removeprefix("whsec_"), new.removeprefix("whsec_")):
        assert value not in project_log.text


@pytest.mark.django_db(transaction=True)
def test_key_expired_is_emitted_once_even_with_two_passes_at_once(receiver):
    import threading

    webhooks.register_endpoint(receiver.url, ["key.expired"])
    owner = make_owner()
    api_key = issue(owner, expires_at=in_days(1)).api_key
    later = timezone.now() + datetime.timedelta(days=1, minutes=1)
    results, errors = [], []

    def run_pass():
        try:
            results.append(events.emit_expired(later))
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run_pass) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert sum(results) == 1
    assert events.emit_expired(later) == 0
    [event] = Event.objects.filter(type="key.expired")
    assert event.payload["data"]["key_id"] == str(api_key.pk)
    assert event.payload["data"]["status"] == "expired"
    assert Delivery.objects.filter(event=event).count() == 1


def test_a_new_expiry_is_reported_again(receiver):
    webhooks.register_endpoint(receiver.url, ["key.expired"])
    api_key = issue(make_owner(), expires_at=in_days(1)).api_key
    assert events.emit_expired(timezone.now() + datetime.timedelta(days=2)) == 1
    lifecycle.set_expiry(api_key, in_days(3))

    assert events.emit_expired(timezone.now() + datetime.timedelta(days=4)) == 1
    assert Event.objects.filter(type="key.expired").count() == 2


def test_unknown_event_types_are_refused():
    with pytest.raises(ValueError, match="unknown event type"):
        events.emit("key.exploded", {})


def test_event_types_are_stored_in_the_documented_order(receiver):
    row, _ = webhooks.register_endpoint(receiver.url, ["user.erased", "key.created", "key.created"])
    assert WebhookEndpoint.objects.get(pk=row.pk).event_types == ["key.created", "user.erased"]


def test_attempts_are_counted_by_outcome(receiver, endpoint, settings):
    from prometheus_client import REGISTRY

    def count(outcome):
        return REGISTRY.get_sample_value("omikeys_webhook_delivery_attempts_total", {"outcome": outcome})

    settings.OMIKEYS_WEBHOOK_RETRY_SCHEDULE = [0]
    before = {outcome: count(outcome) for outcome in ("delivered", "retry", "failed")}
    receiver.answers = [500, 500]
    issue(make_owner())  # retried once, then failed
    webhooks.deliver_due()
    webhooks.deliver_due()
    issue(make_owner("second"))  # delivered at once
    webhooks.deliver_due()

    assert {outcome: count(outcome) - before[outcome] for outcome in before} == {
        "delivered": 1,
        "retry": 1,
        "failed": 1,
    }


@pytest.mark.django_db(transaction=True)
def test_two_passes_at_once_send_each_delivery_once(receiver):
    import threading

    _, secret = webhooks.register_endpoint(receiver.url, ["key.created"])
    owner = make_owner()
    for number in range(10):
        issue(owner, f"key {number}")
    sent, errors = [], []

    def run_pass():
        try:
            while webhooks.deliver_due():
                sent.append(1)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run_pass) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    payloads = receiver.verified(secret)
    assert len(payloads) == 10
    assert len({payload["id"] for payload in payloads}) == 10
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_the_worker_schedules_its_passes():
    from django_q.models import Schedule

    schedules = {s.func: s for s in Schedule.objects.filter(name__startswith="omikeys:")}
    assert {func: (s.schedule_type, s.minutes, s.repeats) for func, s in schedules.items()} == {
        "apikeys.tasks.deliver_due": (Schedule.MINUTES, 1, -1),
        "apikeys.tasks.emit_expired": (Schedule.MINUTES, 1, -1),
        "apikeys.tasks.prune_events": (Schedule.MINUTES, 60, -1),
        "apikeys.tasks.prune_usage": (Schedule.MINUTES, 60, -1),
        "apikeys.tasks.send_due_notices": (Schedule.MINUTES, 1, -1),
        "apikeys.tasks.write_expiry_notices": (Schedule.MINUTES, 5, -1),
    }


def test_old_events_whose_deliveries_are_done_are_pruned(receiver, settings, time_machine):
    settings.OMIKEYS_WEBHOOK_RETENTION_DAYS = 30
    settings.OMIKEYS_WEBHOOK_RETRY_SCHEDULE = [0]
    delivered_to = webhooks.register_endpoint(receiver.url, ["key.created", "key.revoked"])[0]
    key = issue(make_owner()).api_key  # key.created: delivered
    webhooks.deliver_due()
    receiver.default = 500
    lifecycle.revoke_key(key)  # key.revoked: failed after its one retry
    webhooks.deliver_due()
    webhooks.deliver_due()
    assert sorted(Delivery.objects.values_list("status", flat=True)) == ["delivered", "failed"]
    # A disabled endpoint's delivery waits, pending, however old.
    waiting = webhooks.register_endpoint("http://127.0.0.1:9/hooks", ["key.rotated"])[0]
    webhooks.disable_endpoint(waiting, "test")
    pending_event = events.emit("key.rotated", {"key_id": str(key.pk)}, endpoints=[waiting.pk])

    time_machine.move_to(timezone.now() + datetime.timedelta(days=29))
    assert webhooks.prune_events() == 0
    recent = issue(make_owner("recent")).api_key  # a new event, within the retention
    time_machine.move_to(timezone.now() + datetime.timedelta(days=2))

    assert webhooks.prune_events() == 2
    assert set(Event.objects.values_list("pk", flat=True)) == {
        pending_event.pk,
        Event.objects.get(payload__data__key_id=str(recent.pk)).pk,
    }
    # Only the recent key.created is left of the delivered-to endpoint's deliveries.
    assert list(Delivery.objects.filter(endpoint=delivered_to).values_list("event_id", flat=True)) == [
        Event.objects.get(payload__data__key_id=str(recent.pk)).pk
    ]
    assert webhooks.prune_events() == 0


def test_key_changes_read_the_subscriptions_from_the_cache(receiver, endpoint):
    from django.test.utils import CaptureQueriesContext

    owner = make_owner()
    issue(owner, "first")  # reads them once

    with CaptureQueriesContext(connection) as queries:
        issue(owner, "second")

    assert not [q for q in queries.captured_queries if "apikeys_webhookendpoint" in q["sql"]]
    assert Event.objects.count() == 2


def test_the_service_api_s_user_actions_send_user_events_once(receiver, endpoint):
    owner = make_owner("uid-banned", "banned@example.com")
    first, second = issue(owner, "a").api_key, issue(owner, "b").api_key
    client = service("act_on_users")

    client.post(f"/v1/service/users/{owner.firebase_uid}/keys/revoke", data={"reason": "banned"}, format="json")
    client.post(f"/v1/service/users/{owner.firebase_uid}/keys/revoke", data={"reason": "banned"}, format="json")
    client.post(f"/v1/service/users/{owner.firebase_uid}/erase")
    client.post(f"/v1/service/users/{owner.firebase_uid}/erase")
    webhooks.deliver_due()

    received = [(p["type"], p["data"]) for p in receiver.verified(endpoint[1])]
    by_type = {}
    for event_type, data in received:
        by_type.setdefault(event_type, []).append(data)
    assert len(by_type["user.keys_revoked"]) == 1 and len(by_type["user.erased"]) == 1
    assert by_type["user.keys_revoked"][0]["key_ids"] == sorted([str(first.pk), str(second.pk)])
    assert by_type["user.keys_revoked"][0]["actor"]["kind"] == "service"
    assert by_type["user.erased"][0] == {**by_type["user.erased"][0], "owner_uid": "uid-banned", "key_ids": []}
    assert len(by_type["key.revoked"]) == 2
    assert "banned@example.com" not in json.dumps(received)


class DripReceiver:
    """A raw TCP receiver that reads the request, then answers one byte every ``interval`` seconds:
    each read is quick, but the answer never ends (a slow or hostile receiver)."""

    def __init__(self, interval: float = 0.2, seconds: float = 20, answer: bytes | None = None):
        import socket
        import threading

        # By default the start of an HTTP answer that never ends.
        self.answer = answer or (b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"x" * 10_000)

        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        self.interval, self.seconds = interval, seconds
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.listener.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                deadline = time.monotonic() + self.seconds
                try:
                    for byte in self.answer:
                        if self.stopped.is_set() or time.monotonic() > deadline:
                            break
                        conn.sendall(bytes([byte]))
                        time.sleep(self.interval)
                except OSError:
                    pass

    def stop(self):
        self.stopped.set()
        self.thread.join(5)
        self.listener.close()


# Bytes of a TLS record header, then more, each well within the per-read timeout: the
# handshake never completes. (Python bounds a TLS handshake by the socket's timeout as a
# whole, so the connect timeout ends it; the "https" case guards that.)
TLS_HANDSHAKE_RECORD = b"\x16\x03\x03\x40\x00" + b"\x02\x00\x3f\xfc\x03\x03" + b"\x00" * 10_000


@pytest.mark.parametrize(
    ("scheme", "answer"),
    [("https", TLS_HANDSHAKE_RECORD), ("http", None)],
    ids=["its TLS handshake", "its answer"],
)
def test_a_receiver_dripping_bytes_is_cut_off_at_the_attempt_s_deadline(settings, now_retries, scheme, answer):
    settings.OMIKEYS_WEBHOOK_TIMEOUT = 1
    drip = DripReceiver(interval=0.2, seconds=20, answer=answer)
    try:
        webhooks.register_endpoint(f"{scheme}://127.0.0.1:{drip.port}/hooks", ["key.created"])
        issue(make_owner())

        started = time.monotonic()
        webhooks.deliver_due()
        took = time.monotonic() - started
    finally:
        drip.stop()

    # Each read answers within the timeout, so only a deadline for the whole attempt ends it:
    # at most connect + read (twice the timeout), well inside the delivery's lease.
    assert took < 2 * settings.OMIKEYS_WEBHOOK_TIMEOUT + 3
    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and delivery.last_response_code is None
    assert "timed out" in delivery.last_error


def test_a_hanging_endpoint_costs_a_pass_one_attempt_and_holds_back_no_other(receiver, endpoint, settings):
    settings.OMIKEYS_WEBHOOK_TIMEOUT = 0.5
    settings.OMIKEYS_WEBHOOK_RETRY_SCHEDULE = [0, 0, 0]
    hanging = Receiver(default=HOLD)
    try:
        webhooks.register_endpoint(hanging.url, ["key.created"])
        for number in range(4):
            issue(make_owner(f"owner{number}"))

        webhooks.deliver_due()

        assert len(hanging.received) == 1  # then its other deliveries waited for the next pass
        assert len(receiver.verified(endpoint[1])) == 4  # the healthy endpoint got every event
        hanging_endpoint = WebhookEndpoint.objects.get(url=hanging.url)
        assert hanging_endpoint.failing_since is not None

        # A new change's immediate attempt skips the failing endpoint (the pass tries it).
        issue(make_owner("later"))
        later = Event.objects.order_by("-created_at").first()
        assert webhooks.deliver_event(later.pk) == 1
        assert len(hanging.received) == 1 and len(receiver.received) == 5

        hanging.default = 200
        hanging.release()
        webhooks.deliver_due()  # it answers again: its whole backlog goes in one pass
        assert len(hanging.received) == 1 + 5
        assert not Delivery.objects.exclude(status="delivered").exists()
    finally:
        hanging.stop()


def test_a_receiver_s_answer_cannot_forge_log_lines_or_terminal_escapes(settings, now_retries, project_log):
    import socket
    import threading

    body = b"bad\r\n2026-01-01 00:00:00 INFO apikeys.webhooks forged line\x1b[2J\x07\x00end"
    answer = b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        webhooks.register_endpoint(f"http://127.0.0.1:{listener.getsockname()[1]}/hooks", ["key.created"])
        issue(make_owner())
        webhooks.deliver_due()
    finally:
        thread.join(5)
        listener.close()

    error = Delivery.objects.get().last_error
    assert error.startswith("HTTP 500: bad") and error.endswith("end")
    assert "forged line" in error
    assert not any(ord(character) < 32 or character == "\x7f" for character in error)
    assert not any(ord(character) < 32 and character not in "\n" for character in project_log.text)
