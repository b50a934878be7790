"""POST /v1/leaks/report: anyone reports a key; the answer never tells whether it was one, the worker acts on it."""

import sys
import time

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_q.models import OrmQ
from rest_framework.test import APIClient

from apikeys import crypto, lifecycle, notices, tasks
from apikeys.models import ApiKey, KeyEvent, Notice

from .helpers import database_url, issue, key_client, make_owner
from .servers import ROOT, Server, _popen, server_env
from .test_webhook_worker import stop

pytestmark = pytest.mark.django_db

URL = "/v1/leaks/report"


def report(body, address: str = "203.0.113.7"):
    return APIClient(REMOTE_ADDR=address).post(URL, body, format="json")


def queued() -> list[dict]:
    """The tasks waiting in the worker's queue (django-q's ORM broker), decoded."""
    return [entry.task for entry in OrmQ.objects.all()]


def run_queued() -> None:
    """Run the queued leak reports as the worker would: the task named, with the arguments queued."""
    for entry in OrmQ.objects.all():
        task = entry.task
        assert task["func"] == "apikeys.tasks.handle_leak_report"
        tasks.handle_leak_report(*task["args"], **task["kwargs"])
        entry.delete()


def works(plaintext: str) -> bool:
    return key_client(plaintext).get("/v1/dev/key").status_code == 200


def test_every_report_gets_the_same_answer_whatever_the_key():
    owner = make_owner("uid-report-same")
    live = issue(owner).plaintext
    revoked = issue(owner, "revoked")
    lifecycle.revoke_key(revoked.api_key)
    candidates = [
        live,
        revoked.plaintext,
        crypto.generate_key().plaintext,  # well formed, never issued
        crypto.generate_key("hex").plaintext,
        live[:-1] + ("0" if live[-1] != "0" else "1"),  # a checksum that fails
        "not a key at all",
    ]
    answers = {(r.status_code, r.content, r.get("Content-Type")) for r in (report({"key": k}) for k in candidates)}
    assert len(answers) == 1
    [(status, content, _)] = answers
    assert status == 202
    assert b"same whatever the key" in content


def test_the_answer_reads_no_key_so_its_timing_cannot_tell():
    live = issue(make_owner("uid-report-timing")).plaintext
    table = ApiKey._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        assert report({"key": live}).status_code == 202
    assert not [q for q in queries.captured_queries if table in q["sql"]]
    assert works(live)  # nothing happens before the worker runs


def test_the_queue_holds_the_key_s_hashes_never_the_key():
    live = issue(make_owner("uid-report-queue")).plaintext
    report({"key": live, "url": "https://pastebin.example/abc", "note": "in a paste"})
    [task] = queued()
    assert live not in repr(task) and live[8:] not in repr(task)
    assert tuple(task["args"][:2]) == crypto.candidate_hashes(live)
    assert list(task["args"][3:]) == ["https://pastebin.example/abc", "in a paste"]


def test_a_key_in_the_url_or_note_never_reaches_the_queue():
    owner = make_owner("uid-report-queue-note")
    live = issue(owner).plaintext
    other = issue(owner, "other").plaintext
    hex_key = crypto.generate_key("hex").plaintext
    report({"key": live, "url": f"https://x.example/?k={other}", "note": f"also {hex_key}"})
    report({"key": live, "url": f"https://x.example/?k={other.replace('_', '%5F')}", "note": other[8:]})
    report({"key": live, "url": f"https://x.example/?k={other.replace('_', '%255F')}", "note": f"key:{other[8:]}!"})
    tasks_ = queued()
    assert len(tasks_) == 3
    for task in tasks_:
        text = repr(task)
        for secret in (other, other[8:], hex_key, hex_key[8:]):
            assert secret not in text
        assert list(task["args"][3:]) == [lifecycle.leaks.WITHHELD, lifecycle.leaks.WITHHELD]


def test_the_worker_revokes_a_reported_key_and_tells_its_owner():
    owner = make_owner("uid-report-revoke", "reported@example.com")
    live = issue(owner, "in a paste").plaintext
    report({"key": live, "url": "https://pastebin.example/abc", "note": "found while browsing"})
    run_queued()

    assert not works(live)
    key = ApiKey.objects.get(key_hash=crypto.hash_key(live))
    leaked = key.events.get(action=KeyEvent.Action.LEAKED)
    assert leaked.details["source"] == "report"
    assert leaked.details["url"] == "https://pastebin.example/abc"
    assert leaked.details["note"] == "found while browsing"
    assert leaked.ip_address is None  # the reporter's address is not kept
    assert Notice.objects.filter(api_key=key, kind=Notice.Kind.KEY_LEAKED).count() == 1
    said = notices.leak_lines(leaked.details)
    assert "https://pastebin.example/abc (the reporter's word, not checked)" in said[0]
    assert "The reporter, who is not verified, adds: found while browsing" in said


def test_a_notified_owner_gets_one_mail_a_day_however_many_places_are_reported(settings):
    settings.OMIKEYS_LEAK_ACTION = "notify"
    live = issue(make_owner("uid-report-spam")).plaintext
    for number in range(5):
        report({"key": live, "url": f"https://spam.example/{number}", "note": "click me"})
    run_queued()
    assert works(live)
    key = ApiKey.objects.get(key_hash=crypto.hash_key(live))
    assert Notice.objects.filter(api_key=key, kind=Notice.Kind.KEY_LEAKED).count() == 1


def test_reports_of_other_keys_change_nothing():
    live = issue(make_owner("uid-report-other")).plaintext
    for key in (crypto.generate_key().plaintext, "omi_dev_" + "0" * 36, "nonsense"):
        report({"key": key})
    run_queued()
    assert works(live)
    assert not KeyEvent.objects.filter(action=KeyEvent.Action.LEAKED).exists()


def test_a_note_or_url_holding_a_key_is_not_kept():
    owner = make_owner("uid-report-secret-note")
    live = issue(owner).plaintext
    other = issue(owner, "other").plaintext
    report({"key": live, "note": f"also {other}", "url": f"https://x.example/?k={other}"})
    run_queued()
    details = KeyEvent.objects.get(action=KeyEvent.Action.LEAKED).details
    assert details["note"] == details["url"] == lifecycle.leaks.WITHHELD


def test_reports_are_throttled_per_address(settings):
    settings.OMIKEYS_LEAK_REPORT_RATE = (3, 3600)
    key = crypto.generate_key().plaintext
    for _ in range(3):
        assert report({"key": key}).status_code == 202
    refused = report({"key": key})
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert set(refused.json()) == {"detail"}
    assert report({"key": key}, address="198.51.100.9").status_code == 202  # another address
    assert len(queued()) == 4


def test_a_report_of_something_that_is_not_a_key_is_answered_alike_and_not_queued():
    key = crypto.generate_key().plaintext
    candidates = ["not a key", key[:-1] + ("0" if key[-1] != "0" else "1"), "omi_dev_" + "g" * 32, key.upper()]
    for candidate in candidates:
        assert report({"key": candidate}).status_code == 202
    assert not queued()
    assert report({"key": key}).status_code == 202
    assert len(queued()) == 1


def test_queued_reports_are_capped_in_all_whatever_the_address(settings):
    settings.OMIKEYS_LEAK_REPORT_TOTAL_RATE = (3, 3600)
    addresses = [f"203.0.113.{n}" for n in range(10, 15)]
    answers = [report({"key": crypto.generate_key().plaintext}, address=a).status_code for a in addresses]
    assert answers == [202, 202, 202, 429, 429]
    assert len(queued()) == 3


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        ({}, "missing"),
        ({"key": 5}, "string_type"),
        ({"key": "x" * 201}, "string_too_long"),
        ({"key": "x", "extra": 1}, "extra_forbidden"),
        ({"key": "x", "note": "two\nlines"}, "string_pattern"),
        ({"key": "x", "url": "javascript:alert(1)"}, "url_scheme"),
        ([], "model_attributes_type"),
    ],
)
def test_malformed_reports_get_the_documented_error(body, error_type):
    response = report(body)
    assert response.status_code == 422, response.content
    assert response.json()["detail"][0]["type"] == error_type
    assert not queued()


def test_broken_json_is_a_422_not_a_500():
    response = APIClient().post(URL, b"{", content_type="application/json")
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.django_db(transaction=True)
def test_the_real_worker_revokes_a_reported_key(tmp_path):
    live = issue(make_owner("uid-report-worker")).plaintext
    assert report({"key": live}).status_code == 202
    env = server_env(database_url(), DJANGO_SECRET_KEY=django_settings.SECRET_KEY, OMIKEYS_WORKER_PROCESSES="1")
    log = tmp_path / "worker.log"
    worker = Server(
        "worker",
        _popen([sys.executable, "manage.py", "qcluster"], log, cwd=ROOT, env=env, start_new_session=True),
        log,
    )
    try:
        deadline = time.monotonic() + 120
        while works(live) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert not works(live), worker.log_text()[-4000:]
    finally:
        stop(worker)
    assert KeyEvent.objects.filter(action=KeyEvent.Action.LEAKED, details__source="report").count() == 1
