"""Limits: active keys per user, key creation per user, and the throttle counters behind them."""

import datetime
import random
import threading

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from apikeys import lifecycle, limits
from apikeys.models import ApiKey

from . import firebase_emulator
from .helpers import issue, key_client, make_owner

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
    # The two keys leave the hour at 11:30; counted in one-minute slots, the wait ends at 11:31.
    assert response["Retry-After"] == "3660"
    assert response.json() == {"detail": "Too many keys created or rotated recently. Try again in 61 minutes."}
    assert ApiKey.objects.count() == 2
    # Someone else may still create.
    assert create(client_for(firebase_emulator.sign_up())).status_code == 200
    # A new clock hour is no fresh allowance: the limit holds in any hour.
    time_machine.move_to(datetime.datetime(2027, 2, 1, 11, 0, tzinfo=datetime.UTC), tick=False)
    assert create(user_client).status_code == 429
    time_machine.move_to(datetime.datetime(2027, 2, 1, 11, 30, 59, tzinfo=datetime.UTC), tick=False)
    assert create(user_client).status_code == 429
    time_machine.move_to(datetime.datetime(2027, 2, 1, 11, 31, tzinfo=datetime.UTC), tick=False)
    assert create(user_client).status_code == 200


def test_an_hour_limit_holds_across_the_clock_hour(user_client, settings, time_machine):
    """20 an hour: 20 at 10:59:59, then none at 11:00:01, where a fixed window started afresh."""
    settings.OMIKEYS_KEY_CREATION_RATE = (20, 3600)
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 100
    time_machine.move_to(datetime.datetime(2027, 2, 1, 10, 59, 59, tzinfo=datetime.UTC), tick=False)
    assert {create(user_client).status_code for _ in range(20)} == {200}
    time_machine.move_to(datetime.datetime(2027, 2, 1, 11, 0, 1, tzinfo=datetime.UTC), tick=False)
    response = create(user_client)
    assert response.status_code == 429
    assert response["Retry-After"] == "3599"  # 10:59:59's one-minute slot leaves the hour at 12:00:00


def test_invalid_requests_do_not_use_up_the_creation_allowance(user_client, settings):
    settings.OMIKEYS_KEY_CREATION_RATE = (1, 3600)
    assert user_client.post("/v1/dev/keys", {"name": ""}, format="json").status_code == 422
    assert create(user_client).status_code == 200


def test_a_throttle_counts_events_in_the_last_period_and_says_when_to_retry():
    throttle = limits.Throttle("unit", limit=2, period=60)
    start = 1_800_000_000.0  # on a slot boundary (slots are 1 s for a minute)
    assert throttle.retry_after("a", now=start) is None
    assert throttle.hit("a", now=start) is None
    assert throttle.hit("a", now=start + 10) is None
    assert throttle.retry_after("a", now=start + 10) == 51  # the first event's slot leaves at start + 61
    assert throttle.hit("a", now=start + 59.5) == 2
    assert throttle.retry_after("b", now=start + 10) is None
    assert throttle.retry_after("a", now=start + 60.5) == 1
    assert throttle.hit("a", now=start + 61) is None  # the first event is out; the one at +10 is not
    assert throttle.retry_after("a", now=start + 61) == 10
    assert throttle.hit("a", now=start + 65) == 6


def test_refused_events_are_not_counted():
    """A client that keeps trying while refused is let in as soon as the period allows."""
    throttle = limits.Throttle("refused", limit=1, period=60)
    start = 1_800_000_000.0
    assert throttle.hit("a", now=start) is None
    for second in range(1, 61):
        assert throttle.hit("a", now=start + second) == 61 - second
    assert throttle.hit("a", now=start + 61) is None


def test_the_limit_holds_in_every_window_of_the_period():
    """Random bursts over ten periods: no stretch of ``period`` seconds ever holds more than ``limit`` events,
    and an event is refused only when the last period (plus at most one slot) already holds ``limit``."""
    rng = random.Random(20270201)
    throttle = limits.Throttle("sliding", limit=5, period=60)
    width = 60 / limits.SLOTS
    moments = sorted(1_800_000_000 + rng.uniform(0, 600) for _ in range(300))
    allowed = []
    for moment in moments:
        if throttle.hit("a", now=moment) is None:
            allowed.append(moment)
        else:
            assert sum(1 for t in allowed if t > moment - 60 - width) >= 5, moment
    for i, moment in enumerate(allowed):
        assert sum(1 for t in allowed[i:] if t < moment + 60) <= 5, moment
    assert len(allowed) >= 40  # 5 a minute for 10 minutes, less the one-slot margin


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(1, "1 second"), (59, "59 seconds"), (119, "119 seconds"), (120, "2 minutes"), (3599, "60 minutes")],
)
def test_waits_are_worded_for_people(seconds, text):
    assert limits.wait_message(seconds) == text


def test_concurrent_hits_from_threads_are_all_counted():
    throttle = limits.Throttle("threads", limit=400, period=3600)
    now = 1_800_000_000.0
    results = []
    threads = [
        threading.Thread(target=lambda: results.extend(throttle.hit("x", now=now) for _ in range(50))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [None] * 400
    assert throttle.hit("x", now=now) is not None  # the 401st


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
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    issued = issue(make_owner("cacheless"))
    assert key_client(issued.plaintext).get("/v1/dev/key").status_code == 200
    assert key_client("omi_dev_" + "7" * 32).get("/v1/dev/key").status_code == 401
    assert "the cache is unavailable" in caplog.text
    logged = {(r.name, r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records}
    assert (
        "apikeys.limits",
        "ERROR",
        "throttle 'verify-fail': the cache is unavailable; not throttling",
        True,
    ) in logged


# --- failed verifications: the example of a fixed window's edge ---------------------------


def test_sixty_failures_across_a_minute_edge_do_not_pass_a_limit_of_thirty(settings, time_machine):
    """From hh:mm:59, 60 failed verifications in 1.2 s: a fixed window let all 60 through as 401s."""
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (30, 60)
    start = datetime.datetime(2027, 3, 1, 12, 0, 59, tzinfo=datetime.UTC)
    bad = key_client("omi_dev_" + "4" * 32, REMOTE_ADDR="203.0.113.9")
    statuses, waits = [], []
    for n in range(60):
        time_machine.move_to(start + datetime.timedelta(seconds=n * 0.02), tick=False)
        response = bad.get("/v1/dev/key")
        statuses.append(response.status_code)
        if response.status_code == 429:
            waits.append(int(response["Retry-After"]))
    assert statuses == [401] * 30 + [429] * 30
    # The failures of 12:00:59 leave the minute at 12:02:00 (one-second slots): from 12:01:00.18, 60 s.
    assert waits[0] == 61 and waits[-1] == 60
    time_machine.move_to(datetime.datetime(2027, 3, 1, 12, 1, 59, tzinfo=datetime.UTC), tick=False)
    assert bad.get("/v1/dev/key").status_code == 429
    time_machine.move_to(datetime.datetime(2027, 3, 1, 12, 2, 0, tzinfo=datetime.UTC), tick=False)
    assert bad.get("/v1/dev/key").status_code == 401  # checked and refused again, not throttled


@pytest.fixture
def issued_key():
    return issue(make_owner("throttled-owner"))


def test_retry_after_is_when_the_client_is_let_in(settings, time_machine, issued_key):
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (3, 60)
    start = datetime.datetime(2027, 3, 1, 12, 0, 10, 500000, tzinfo=datetime.UTC)
    time_machine.move_to(start, tick=False)
    address = {"REMOTE_ADDR": "203.0.113.10"}
    bad = key_client("omi_dev_" + "5" * 32, **address)
    assert [bad.get("/v1/dev/key").status_code for _ in range(3)] == [401, 401, 401]
    response = key_client(issued_key.plaintext, **address).get("/v1/dev/key")
    assert response.status_code == 429
    wait = int(response["Retry-After"])
    assert wait == 61  # the 12:00:10 slot leaves the minute at 12:01:11
    time_machine.move_to(start + datetime.timedelta(seconds=wait - 1), tick=False)
    assert key_client(issued_key.plaintext, **address).get("/v1/dev/key").status_code == 429
    time_machine.move_to(start + datetime.timedelta(seconds=wait), tick=False)
    assert key_client(issued_key.plaintext, **address).get("/v1/dev/key").status_code == 200


# --- what the throttle keeps in the cache, and for how long ------------------------------


def throttle_entries(throttle: limits.Throttle, subject: str, slots: range) -> dict:
    """The throttle's cache entries for ``subject`` that are still there: its slot counters and its block."""
    prefix = f"omikeys:throttle:{throttle.name}:{subject}"
    names = [f"{prefix}:{slot}" for slot in slots] + [f"{prefix}:blocked"]
    return {name.removeprefix(prefix + ":"): value for name, value in cache.get_many(names).items()}


def test_a_throttles_entries_expire_once_they_no_longer_count(time_machine):
    """Nothing is kept for ever: a counter lives while its slot is in the period, and a second more."""
    start = 1_800_000_000.0  # slot 1_800_000_000 of one second
    time_machine.move_to(start, tick=False)
    throttle = limits.Throttle("expiring", limit=2, period=60)
    slots = range(int(start) - 1, int(start) + 120)
    assert throttle.hit("a") is None
    assert throttle.hit("a") is None  # fills the limit: blocked until the slot leaves the period
    assert throttle_entries(throttle, "a", slots) == {str(int(start)): 2, "blocked": start + 61}
    time_machine.move_to(start + 60.99, tick=False)
    assert throttle_entries(throttle, "a", slots) == {str(int(start)): 2, "blocked": start + 61}
    assert throttle.retry_after("a") == 1
    time_machine.move_to(start + 62.5, tick=False)
    assert throttle_entries(throttle, "a", slots) == {}
    assert throttle.retry_after("a") is None


def test_a_refusal_in_the_last_second_of_a_wait_still_blocks_for_that_second(time_machine):
    start = 1_800_000_000.0
    time_machine.move_to(start, tick=False)
    throttle = limits.Throttle("last-second", limit=1, period=60)
    assert throttle.hit("a") is None
    time_machine.move_to(start + 60.5, tick=False)  # the event leaves the period at start + 61
    assert throttle.hit("a") == 1
    assert throttle.retry_after("a") == 1
    time_machine.move_to(start + 61, tick=False)
    assert throttle.retry_after("a") is None
    assert throttle.hit("a") is None


def test_a_limit_of_one_lets_each_new_subject_act_once(time_machine):
    time_machine.move_to(1_800_000_000.5, tick=False)
    throttle = limits.Throttle("once", limit=1, period=3600)
    for subject in ("a", "b"):
        assert throttle.retry_after(subject) is None
        assert throttle.hit(subject) is None
        # One-minute slots: the event's slot ends at +59.5 s and leaves the hour an hour later.
        assert throttle.retry_after(subject) == 3660
        assert throttle.hit(subject) == 3660


def test_a_limit_of_one_failed_verification_refuses_the_second_not_the_first(settings):
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (1, 60)
    for address in ("203.0.113.20", "203.0.113.21"):
        bad = key_client("omi_dev_" + "6" * 32, REMOTE_ADDR=address)
        assert bad.get("/v1/dev/key").status_code == 401
        assert bad.get("/v1/dev/key").status_code == 429


def test_a_failure_over_a_lowered_rate_is_429_with_its_wait(settings, time_machine):
    """Failures counted under a higher rate still count when an operator lowers it: the next one is 429."""
    time_machine.move_to(datetime.datetime(2027, 3, 1, 12, 0, 10, tzinfo=datetime.UTC), tick=False)
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (5, 60)
    bad = key_client("omi_dev_" + "8" * 32, REMOTE_ADDR="203.0.113.22")
    statuses = [bad.get("/v1/dev/key").status_code for _ in range(3)]
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (2, 60)

    response = bad.get("/v1/dev/key")

    assert statuses == [401] * 3
    assert response.status_code == 429
    assert response["Retry-After"] == "61"  # the 12:00:10 slot leaves the minute at 12:01:11
    assert response.json() == {"detail": "Too many failed API key attempts from this address. Try again in 61 seconds."}


def test_the_rates_are_read_from_the_settings(settings):
    settings.OMIKEYS_KEY_CREATION_RATE = (7, 120)
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (9, 30)
    assert limits.key_creation() == limits.Throttle("create", 7, 120)
    assert limits.failed_verification() == limits.Throttle("verify-fail", 9, 30)


@pytest.mark.parametrize("address", ["", "not an address", "999.1.1.1"])
def test_an_address_that_is_not_one_is_counted_as_unknown(address):
    assert limits.address_subject(address) == "unknown"


def test_a_refused_event_records_the_block_again_if_the_cache_dropped_it(time_machine):
    """A cache may drop entries before they expire (locmem culls, Redis evicts): the next refusal puts it back."""
    start = 1_800_000_000.0
    time_machine.move_to(start, tick=False)
    throttle = limits.Throttle("culled", limit=1, period=60)
    assert throttle.hit("a") is None
    cache.delete("omikeys:throttle:culled:a:blocked")
    assert throttle.retry_after("a") is None  # the block is gone; the counter is not
    time_machine.move_to(start + 10, tick=False)
    assert throttle.hit("a") == 51
    assert throttle.retry_after("a") == 51
