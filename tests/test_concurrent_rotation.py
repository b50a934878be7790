"""Rotations of one key at the same moment, through a real server: every 200 hands out a secret that works;
If-Match makes a rotation safe to retry."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from apikeys import lifecycle
from apikeys.models import ApiKey

from .helpers import key_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(live_server, emulator_user):
    """The live server's base URL, the owner's headers and one key of theirs (its create response)."""
    headers = {"Authorization": f"Bearer {emulator_user.id_token}"}
    created = requests.post(f"{live_server.url}/v1/dev/keys", json={"name": "raced"}, headers=headers, timeout=10)
    assert created.status_code == 200, created.text
    return live_server.url, headers, created.json()


@pytest.fixture
def together(monkeypatch):
    """Make the next two rotations reach the core only once both have read the key: the two requests
    then overlap for certain (the core's row lock decides who goes first)."""
    barrier = threading.Barrier(2, timeout=20)
    real_rotate = lifecycle.rotate_key

    def rotate_key(*args, **kwargs):
        barrier.wait()
        return real_rotate(*args, **kwargs)

    monkeypatch.setattr(lifecycle, "rotate_key", rotate_key)
    return barrier


@pytest.fixture
def second_reads_after_first_rotated(monkeypatch):
    """Two rotation requests that both arrived before either rotated, the second reading the key only
    after the first has rotated it: it sees the new secret, and must still not replace it."""
    from apikeys.api import views

    arrived, rotated = threading.Event(), threading.Event()
    order, lock = [], threading.Lock()
    real_own_key, real_rotate = views.own_key, lifecycle.rotate_key

    def own_key(request, key_id, **kwargs):
        with lock:
            order.append(threading.get_ident())
            first = len(order) == 1
        if not first:
            arrived.set()
            assert rotated.wait(20)
        return real_own_key(request, key_id, **kwargs)

    def rotate_key(*args, **kwargs):
        if order and order[0] == threading.get_ident():
            assert arrived.wait(20)
            try:
                return real_rotate(*args, **kwargs)
            finally:
                rotated.set()
        return real_rotate(*args, **kwargs)

    monkeypatch.setattr(views, "own_key", own_key)
    monkeypatch.setattr(lifecycle, "rotate_key", rotate_key)


def works(plaintext: str) -> bool:
    return key_client(plaintext).get("/v1/dev/key").status_code == 200


def rotate(base, headers, key_id, body, **extra_headers):
    return requests.post(
        f"{base}/v1/dev/keys/{key_id}/rotate", json=body, headers={**headers, **extra_headers}, timeout=30
    )


@pytest.mark.parametrize("graces", [(0, 0), (3600, 0), (0, 3600), (3600, 3600)])
def test_two_rotations_at_once_one_succeeds_and_its_secret_works(server, together, graces):
    base, headers, key = server
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(rotate, base, headers, key["id"], {"grace_seconds": grace}) for grace in graces]
        responses = [future.result() for future in futures]

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200, 409], [response.text for response in responses]
    (winner, grace), (loser, _) = sorted(zip(responses, graces, strict=True), key=lambda pair: pair[0].status_code)
    new = winner.json()
    assert works(new["key"])
    assert works(key["key"]) is bool(grace)  # the old secret keeps exactly the grace the 200 promised
    assert (new["previous_key_expires_at"] is not None) is bool(grace)
    detail = loser.json()["detail"]
    assert "another rotation happened" in detail and new["key_prefix"] in detail
    stored = ApiKey.objects.get(pk=key["id"])
    assert stored.key_prefix == new["key_prefix"]
    assert stored.events.filter(action="rotated").count() == 1


def test_a_rotation_that_reads_the_key_after_a_concurrent_one_rotated_it_is_409(
    server, second_reads_after_first_rotated
):
    base, headers, key = server
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(rotate, base, headers, key["id"], {"grace_seconds": 0}) for _ in range(2)]
        responses = [future.result() for future in futures]

    assert sorted(response.status_code for response in responses) == [200, 409]
    winner = next(response for response in responses if response.status_code == 200)
    assert works(winner.json()["key"])
    assert ApiKey.objects.get(pk=key["id"]).events.filter(action="rotated").count() == 1


def test_rotations_one_after_the_other_both_succeed(server):
    base, headers, key = server
    first = rotate(base, headers, key["id"], {"grace_seconds": 0})
    second = rotate(base, headers, key["id"], {"grace_seconds": 0})
    assert (first.status_code, second.status_code) == (200, 200)
    assert not works(first.json()["key"]) and works(second.json()["key"])


@pytest.mark.parametrize(
    "if_match",
    ['"{prefix}"', "{prefix}", '"omi_dev_0000...0000", "{prefix}"', "*", '"{prefix}" , W/"x"'],
)
def test_if_match_with_the_current_secret_rotates(server, if_match):
    base, headers, key = server
    response = rotate(base, headers, key["id"], {}, **{"If-Match": if_match.format(prefix=key["key_prefix"])})
    assert response.status_code == 200
    assert works(response.json()["key"])


@pytest.mark.parametrize("if_match", ['"omi_dev_0000...0000"', 'W/"{prefix}"', "", '""'])
def test_if_match_with_another_secret_is_412_and_changes_nothing(server, if_match):
    base, headers, key = server
    response = rotate(base, headers, key["id"], {}, **{"If-Match": if_match.format(prefix=key["key_prefix"])})

    assert response.status_code == 412
    assert response.json()["detail"].startswith("Not rotated: If-Match names another secret.")
    assert response.headers["Cache-Control"] == "no-store"
    assert ApiKey.objects.get(pk=key["id"]).key_prefix == key["key_prefix"]
    assert works(key["key"])


def test_a_retried_rotation_with_if_match_does_not_replace_the_secret_it_returned(server):
    base, headers, key = server
    condition = {"If-Match": f'"{key["key_prefix"]}"'}
    first = rotate(base, headers, key["id"], {"grace_seconds": 60}, **condition)
    retry = rotate(base, headers, key["id"], {"grace_seconds": 60}, **condition)  # the answer was lost, say

    assert (first.status_code, retry.status_code) == (200, 412)
    assert first.json()["key_prefix"] in retry.json()["detail"]
    assert works(first.json()["key"]) and works(key["key"])


def test_two_rotations_at_once_with_if_match_one_is_412(server, together):
    base, headers, key = server
    condition = {"If-Match": f'"{key["key_prefix"]}"'}
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(rotate, base, headers, key["id"], {"grace_seconds": 0}, **condition) for _ in range(2)]
        responses = [future.result() for future in futures]

    assert sorted(response.status_code for response in responses) == [200, 412]
    winner = next(response for response in responses if response.status_code == 200)
    assert works(winner.json()["key"])


def test_the_served_schema_documents_if_match_and_412(api):
    operation = api.get("/openapi.json").json()["paths"]["/v1/dev/keys/{key_id}/rotate"]["post"]
    assert any(p["name"] == "If-Match" and p["in"] == "header" for p in operation["parameters"])
    assert {"409", "412"} <= set(operation["responses"])
