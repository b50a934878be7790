"""Limits: active keys per user, key creation per user, and the throttle counters behind them."""

import datetime
import threading

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from apikeys import lifecycle, limits
from apikeys.models import ApiKey

from . import firebase_emulator
from .helpers import make_owner

pytestmark = pytest.mark.django_db


def create(client, name="limited"):
    return client.post("/v1/dev/keys", {"name": name}, format="json")


def test_a_user_at_the_active_key_limit_gets_409_with_a_clear_message(user_client, settings):
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 2
    assert [create(user_client).status_code for _ in range(2)] == [200, 200]
    response = create(user_client)
    assert response.status_code == 409
    assert response.json() == {
        "detail": "You already have 2 active API keys, the most allowed. "
        "Revoke a key you no longer use, then create a new one."
    }
    assert ApiKey.objects.count() == 2


def test_revoked_and_expired_keys_free_their_place(user_client, settings):
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 2
    first, second = create(user_client).json(), create(user_client).json()
    user_client.delete(f"/v1/dev/keys/{first['id']}")
    assert create(user_client).status_code == 200
    ApiKey.objects.filter(pk=second["id"]).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    assert create(user_client).status_code == 200
    assert create(user_client).status_code == 409


def test_the_limit_is_per_user(user_client, client_for, settings):
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 1
    assert create(user_client).status_code == 200
    assert create(client_for(firebase_emulator.sign_up())).status_code == 200


def test_the_default_limit_is_fifty():
    from django.conf import settings

    assert settings.OMIKEYS_MAX_ACTIVE_KEYS == 50


@pytest.mark.django_db(transaction=True)
def test_concurrent_creations_never_exceed_the_limit(settings, contract_scopes):
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 3
    owner = make_owner("racer")
    outcomes, barrier = [], threading.Barrier(8)

    def worker(n):
        barrier.wait()
        try:
            lifecycle.issue_key(owner=owner, name=f"race {n}")
            outcomes.append("issued")
        except lifecycle.TooManyKeys:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["issued"] * 3 + ["refused"] * 5
    assert ApiKey.objects.filter(owner=owner).count() == 3


def test_key_creation_is_throttled_per_user_with_retry_after(user_client, client_for, settings, time_machine):
    time_machine.move_to(datetime.datetime(2027, 2, 1, 10, 30, tzinfo=datetime.UTC), tick=False)
    settings.OMIKEYS_KEY_CREATION_RATE = (2, 3600)
    assert [create(user_client).status_code for _ in range(2)] == [200, 200]
    response = create(user_client)
    assert response.status_code == 429
    assert response["Retry-After"] == "1800"
    assert response.json() == {"detail": "Too many keys created or rotated recently. Try again in 30 minutes."}
    assert ApiKey.objects.count() == 2
    # Someone else may still create.
    assert create(client_for(firebase_emulator.sign_up())).status_code == 200
    # The next hour starts afresh.
    time_machine.move_to(datetime.datetime(2027, 2, 1, 11, 0, tzinfo=datetime.UTC), tick=False)
    assert create(user_client).status_code == 200


def test_invalid_requests_do_not_use_up_the_creation_allowance(user_client, throttle_window, settings):
    settings.OMIKEYS_KEY_CREATION_RATE = (1, 3600)
    assert user_client.post("/v1/dev/keys", {"name": ""}, format="json").status_code == 422
    assert create(user_client).status_code == 200


def test_a_throttle_window_counts_and_resets():
    throttle = limits.Throttle("unit", limit=2, period=60)
    start = 1_800_000_000.0  # a window boundary (divisible by 60)
    assert throttle.retry_after("a", now=start) is None
    assert throttle.hit("a", now=start) is None
    assert throttle.hit("a", now=start + 10) is None
    assert throttle.retry_after("a", now=start + 10) == 50
    assert throttle.hit("a", now=start + 59.5) == 1
    assert throttle.retry_after("b", now=start + 10) is None
    assert throttle.retry_after("a", now=start + 60) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(1, "1 second"), (59, "59 seconds"), (119, "119 seconds"), (120, "2 minutes"), (3599, "60 minutes")],
)
def test_waits_are_worded_for_people(seconds, text):
    assert limits.wait_message(seconds) == text


def test_concurrent_hits_from_threads_are_all_counted():
    throttle = limits.Throttle("threads", limit=1000, period=3600)
    now = 1_800_000_000.0
    threads = [threading.Thread(target=lambda: [throttle.hit("x", now=now) for _ in range(50)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get(f"omikeys:throttle:threads:{int(now)}:x") == 400


def test_the_limit_message_speaks_of_one_key_when_the_limit_is_one(user_client, settings):
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 1
    create(user_client)
    assert create(user_client).json()["detail"].startswith("You already have 1 active API key, the most allowed.")


@pytest.mark.parametrize(
    ("address", "subject"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),  # the same /64: one allowance
        ("::ffff:203.0.113.7", "203.0.113.7"),
        (None, "unknown"),
    ],
)
def test_addresses_are_throttled_per_ipv4_address_or_ipv6_64(address, subject):
    assert limits.address_subject(address) == subject


def test_an_unreachable_cache_lets_requests_through_and_is_logged(settings, caplog):
    """A throttle must not take the service down with it: Redis gone means no throttling, not 500s."""
    from .helpers import issue, key_client

    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    issued = issue(make_owner("cacheless"))
    assert key_client(issued.plaintext).get("/v1/dev/key").status_code == 200
    assert key_client("omi_dev_" + "7" * 32).get("/v1/dev/key").status_code == 401
    assert "the cache is unavailable" in caplog.text
