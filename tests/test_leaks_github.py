"""POST /v1/leaks/github: GitHub's secret-scanning alerts, signed by keys a real local server publishes."""

import datetime
import hashlib
import json
import time

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from apikeys import crypto, lifecycle, notices, tasks, webhooks
from apikeys.models import ApiKey, KeyEvent, Notice

from .github_keys_server import GitHubKeysServer, GitHubSigner
from .helpers import issue, key_client, make_owner
from .smtp_server import SmtpServer
from .test_notices import send_to
from .webhook_receiver import Receiver

pytestmark = pytest.mark.django_db

URL = "/v1/leaks/github"
FOUND_AT = "https://github.com/octocat/Hello-World/blob/12345600b9cbe38a219f39a9941c9319b600c002/foo/bar.txt"


@pytest.fixture
def signer():
    return GitHubSigner()


@pytest.fixture
def github(settings, signer):
    server = GitHubKeysServer(signer)
    settings.OMIKEYS_GITHUB_KEYS_URL = server.url
    settings.OMIKEYS_GITHUB_KEYS_TIMEOUT = 1
    yield server
    server.stop()


def alert(*tokens: str, url: str = FOUND_AT) -> bytes:
    return json.dumps(
        [{"token": t, "type": "omi_developer_api_key", "url": url, "source": "content"} for t in tokens]
    ).encode()


def post(body: bytes, headers: dict | None = None):
    return Client().post(URL, data=body, content_type="application/json", **(headers or {}))


def lookalike() -> str:
    """``omi_dev_`` and 36 base62 characters whose checksum fails."""
    good = crypto.generate_key("checksum").plaintext
    last = good[-1]
    return good[:-1] + ("0" if last != "0" else "1")


def works(plaintext: str) -> bool:
    return key_client(plaintext).get("/v1/dev/key").status_code == 200


def feedback(token: str, label: str) -> dict:
    return {
        "token_hash": hashlib.sha256(token.encode()).hexdigest(),
        "token_type": "omi_developer_api_key",
        "label": label,
    }


def test_a_signed_alert_revokes_live_keys_and_answers_in_github_s_feedback_format(github, signer):
    owner = make_owner("uid-leak", "leak@example.com")
    new = issue(owner, "pushed to GitHub").plaintext
    other = issue(owner, "not in the alert").plaintext
    assert crypto.CHECKSUM_KEY_RE.fullmatch(new)
    bad = lookalike()
    unknown = crypto.generate_key().plaintext
    body = alert(new, bad, unknown)

    response = post(body, signer.headers(body))

    assert response.status_code == 200, response.content
    assert response.json() == [
        feedback(new, "true_positive"),
        feedback(bad, "false_positive"),
        feedback(unknown, "false_positive"),
    ]
    assert not works(new)
    key = ApiKey.objects.get(key_hash=crypto.hash_key(new))
    assert key.revoked_at is not None
    leaked = key.events.get(action=KeyEvent.Action.LEAKED)
    assert leaked.details["url"] == FOUND_AT
    assert leaked.details["source"] == "github"
    assert leaked.details["response"] == "revoked"
    assert leaked.actor_label == "GitHub secret scanning"
    revoked = key.events.get(action=KeyEvent.Action.REVOKED)
    assert revoked.details["reason"] == lifecycle.leaks.LEAK_REVOCATION_REASON
    # One mail for the leak, none more for the revocation it caused.
    assert [n.kind for n in Notice.objects.filter(api_key=key).exclude(kind=Notice.Kind.KEY_CREATED)] == [
        Notice.Kind.KEY_LEAKED
    ]
    assert works(other)


def test_old_format_keys_are_recognised_and_revoked_too(settings, github, signer):
    settings.OMIKEYS_KEY_FORMAT = "hex"
    plaintext = issue(make_owner("uid-hex-leak")).plaintext
    assert crypto.HEX_KEY_RE.fullmatch(plaintext)
    body = alert(plaintext)

    response = post(body, signer.headers(body))

    assert response.json() == [feedback(plaintext, "true_positive")]
    assert not works(plaintext)


def test_an_alert_sent_again_changes_nothing_more(github, signer):
    plaintext = issue(make_owner("uid-again")).plaintext
    body = alert(plaintext)

    first = post(body, signer.headers(body))
    second = post(body, signer.headers(body))

    assert first.json() == second.json() == [feedback(plaintext, "true_positive")]
    key = ApiKey.objects.get(key_hash=crypto.hash_key(plaintext))
    assert key.events.filter(action=KeyEvent.Action.LEAKED).count() == 1
    assert key.events.filter(action=KeyEvent.Action.REVOKED).count() == 1
    assert Notice.objects.filter(api_key=key, kind=Notice.Kind.KEY_LEAKED).count() == 1


def test_notify_only_leaves_the_key_working_and_tells_the_owner_once_a_day(settings, github, signer):
    settings.OMIKEYS_LEAK_ACTION = "notify"
    plaintext = issue(make_owner("uid-notify")).plaintext
    body = alert(plaintext)

    post(body, signer.headers(body))
    post(body, signer.headers(body))
    elsewhere = alert(plaintext, url="https://github.com/someone/else/blob/main/.env")
    post(elsewhere, signer.headers(elsewhere))

    assert works(plaintext)
    key = ApiKey.objects.get(key_hash=crypto.hash_key(plaintext))
    leaks = key.events.filter(action=KeyEvent.Action.LEAKED).order_by("at")
    # One mail a key, source and day, whatever URLs the reports name (anyone holding the key can report it).
    assert [e.details["response"] for e in leaks] == ["notified"]
    assert Notice.objects.filter(api_key=key, kind=Notice.Kind.KEY_LEAKED).count() == 1
    with time_machine.travel(timezone.now() + datetime.timedelta(days=1)):
        post(elsewhere, signer.headers(elsewhere))
    assert Notice.objects.filter(api_key=key, kind=Notice.Kind.KEY_LEAKED).count() == 2


def test_a_leaked_secret_replaced_by_a_rotation_stops_and_the_current_one_keeps_working(github, signer):
    owner = make_owner("uid-rotated")
    issued = issue(owner)
    current = lifecycle.rotate_key(issued.api_key, grace_seconds=3600).plaintext
    assert works(issued.plaintext) and works(current)
    body = alert(issued.plaintext)

    assert post(body, signer.headers(body)).json() == [feedback(issued.plaintext, "true_positive")]

    assert not works(issued.plaintext)
    assert works(current)
    key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert key.revoked_at is None
    assert not key.previous_secret_works()
    leaked = key.events.get(action=KeyEvent.Action.LEAKED)
    assert leaked.details["secret"] == "replaced"
    assert leaked.details["response"] == "grace_ended"
    assert not key.events.filter(action=KeyEvent.Action.REVOKED).exists()
    [notice] = Notice.objects.filter(api_key=key, kind=Notice.Kind.KEY_LEAKED)
    said = " ".join(notices.leak_lines(notice.key_event.details))
    assert "current secret did not leak and keeps working" in said
    # Sent again, it changes nothing more: the old secret is already stopped.
    assert post(body, signer.headers(body)).json() == [feedback(issued.plaintext, "true_positive")]
    assert key.events.filter(action=KeyEvent.Action.LEAKED).count() == 1
    assert works(current)


def test_a_revoked_key_is_a_true_positive_and_nothing_changes(github, signer):
    issued = issue(make_owner("uid-revoked"))
    lifecycle.revoke_key(issued.api_key)
    body = alert(issued.plaintext)

    assert post(body, signer.headers(body)).json() == [feedback(issued.plaintext, "true_positive")]
    assert not issued.api_key.events.filter(action=KeyEvent.Action.LEAKED).exists()
    assert issued.api_key.events.filter(action=KeyEvent.Action.REVOKED).count() == 1


def _refused(response, plaintext):
    assert response.status_code == 401, response.content
    assert set(response.json()) == {"detail"}
    assert works(plaintext)
    assert not KeyEvent.objects.filter(action=KeyEvent.Action.LEAKED).exists()
    assert not Notice.objects.filter(kind=Notice.Kind.KEY_LEAKED).exists()


def test_an_unsigned_alert_changes_nothing(github):
    plaintext = issue(make_owner("uid-unsigned")).plaintext
    _refused(post(alert(plaintext)), plaintext)


def test_an_alert_signed_by_another_key_changes_nothing(github, signer):
    plaintext = issue(make_owner("uid-forged")).plaintext
    body = alert(plaintext)
    forged = GitHubSigner()
    headers = {
        "HTTP_GITHUB_PUBLIC_KEY_IDENTIFIER": signer.identifier,
        "HTTP_GITHUB_PUBLIC_KEY_SIGNATURE": forged.sign(body),
    }
    _refused(post(body, headers), plaintext)


def test_an_alert_under_an_unknown_key_identifier_changes_nothing(github, signer):
    plaintext = issue(make_owner("uid-unknown-id")).plaintext
    body = alert(plaintext)
    stranger = GitHubSigner()  # signs properly, but GitHub does not publish its key
    _refused(post(body, stranger.headers(body)), plaintext)


def test_an_altered_body_changes_nothing(github, signer):
    plaintext = issue(make_owner("uid-altered")).plaintext
    signed = alert(crypto.generate_key().plaintext)
    altered = alert(plaintext)
    _refused(post(altered, signer.headers(signed)), plaintext)


@pytest.mark.parametrize("signature", ["not base64!", "", "QUJD", "A" * 600])
def test_a_garbled_signature_changes_nothing(github, signer, signature):
    plaintext = issue(make_owner("uid-garbled")).plaintext
    body = alert(plaintext)
    headers = {"HTTP_GITHUB_PUBLIC_KEY_IDENTIFIER": signer.identifier, "HTTP_GITHUB_PUBLIC_KEY_SIGNATURE": signature}
    _refused(post(body, headers), plaintext)


def test_the_public_keys_are_fetched_once_then_again_for_a_new_identifier(github, signer):
    body = alert(crypto.generate_key().plaintext)
    for _ in range(3):
        assert post(body, signer.headers(body)).status_code == 200
    assert github.fetches == 1

    rotated = GitHubSigner()  # GitHub publishes a new key and signs with it
    github.signers.append(rotated)
    assert post(body, rotated.headers(body)).status_code == 200
    assert github.fetches == 2


def test_made_up_identifiers_do_not_make_omikeys_fetch_on_every_request(github, signer):
    body = alert(crypto.generate_key().plaintext)
    assert post(body, signer.headers(body)).status_code == 200
    for _ in range(5):
        assert post(body, GitHubSigner().headers(body)).status_code == 401
    assert github.fetches == 2  # the first fetch, and one refetch for the first unknown identifier


def test_with_github_s_keys_down_the_answer_is_503_with_retry_after_and_nothing_changes(github, signer):
    plaintext = issue(make_owner("uid-down")).plaintext
    github.stop()
    body = alert(plaintext)

    started = time.monotonic()
    response = post(body, signer.headers(body))

    assert time.monotonic() - started < 10
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert set(response.json()) == {"detail"}
    assert works(plaintext)


def test_a_slow_key_server_is_given_up_on_after_the_timeout(settings, github, signer):
    settings.OMIKEYS_GITHUB_KEYS_TIMEOUT = 0.5
    github.hold.set()
    body = alert(crypto.generate_key().plaintext)

    started = time.monotonic()
    response = post(body, signer.headers(body))

    assert time.monotonic() - started < 10
    assert response.status_code == 503
    assert "Retry-After" in response


@pytest.mark.parametrize(
    ("body", "status", "error_type"),
    [
        (b"[{", 422, "json_invalid"),
        (b'{"token": "x"}', 422, "list_type"),
        (b"[NaN]", 422, "json_invalid"),
        (b"\xff\xfe", 422, "json_invalid"),
        (b"[" * 100000 + b"]" * 100000, 422, "json_invalid"),
    ],
)
def test_signed_malformed_bodies_get_the_documented_error(github, signer, body, status, error_type):
    response = post(body, signer.headers(body))
    assert response.status_code == status, response.content
    assert response.json()["detail"][0]["type"] == error_type


def test_one_odd_match_does_not_fail_the_alert(github, signer):
    plaintext = issue(make_owner("uid-odd-match")).plaintext
    long_url = "https://github.com/o/r/blob/main/" + "a" * 2500
    entries = [
        {"token": plaintext, "type": None, "url": None, "source": "content"},  # GitHub: url may be empty
        {"token": crypto.generate_key().plaintext, "type": "omi_developer_api_key", "url": long_url},
        {"token": crypto.generate_key().plaintext, "type": "t\tab", "url": "https://x.example/a\u2028b\tc"},
        {"type": "omi_developer_api_key"},  # no token
        {"token": 5, "type": "omi_developer_api_key"},
        {"token": "x" * 300, "type": "omi_developer_api_key"},
        "not an object",
        None,
    ]
    body = json.dumps(entries).encode()

    response = post(body, signer.headers(body))

    assert response.status_code == 200, response.content
    answer = response.json()
    assert [entry["label"] for entry in answer] == ["true_positive"] + ["false_positive"] * 7
    assert answer[0] == {**feedback(plaintext, "true_positive"), "token_type": ""}
    assert answer[2]["token_type"] == "tab"
    assert answer[5]["token_hash"] == hashlib.sha256(b"x" * 300).hexdigest()
    assert answer[6] == {"token_hash": hashlib.sha256(b"").hexdigest(), "token_type": "", "label": "false_positive"}
    assert not works(plaintext)
    leaked = ApiKey.objects.get(key_hash=crypto.hash_key(plaintext)).events.get(action=KeyEvent.Action.LEAKED)
    assert leaked.details["url"] == ""


def test_a_long_or_unprintable_url_is_kept_cut_and_cleaned(github, signer):
    first = issue(make_owner("uid-long-url")).plaintext
    second = issue(make_owner("uid-odd-url")).plaintext
    long_url = "https://github.com/o/r/blob/main/" + "a" * 2500
    body = json.dumps(
        [{"token": first, "type": "k", "url": long_url}, {"token": second, "type": "k", "url": "https://x/a\u2028b\tc"}]
    ).encode()
    assert post(body, signer.headers(body)).status_code == 200
    urls = [
        ApiKey.objects.get(key_hash=crypto.hash_key(t)).events.get(action=KeyEvent.Action.LEAKED).details["url"]
        for t in (first, second)
    ]
    assert urls == [long_url[: lifecycle.leaks.URL_MAX_LENGTH], "https://x/abc"]


def test_a_body_over_the_cap_is_413_before_anything_is_checked(settings, github, signer):
    settings.OMIKEYS_LEAK_BODY_MAX_BYTES = 16 * 1024
    body = alert(*(crypto.generate_key().plaintext for _ in range(400)))
    assert len(body) > 16 * 1024
    response = post(body, signer.headers(body))
    assert response.status_code == 413
    assert github.fetches == 0


def test_an_alert_larger_than_the_key_api_s_body_limit_is_taken(github, signer):
    tokens = [crypto.generate_key().plaintext for _ in range(300)]
    body = alert(*tokens)
    assert len(body) > 16 * 1024  # DATA_UPLOAD_MAX_MEMORY_SIZE
    response = post(body, signer.headers(body))
    assert response.status_code == 200
    assert len(response.json()) == 300


def test_only_post_is_offered(github):
    assert Client().get(URL).status_code == 405


@pytest.mark.django_db(transaction=True)
def test_the_owner_is_mailed_and_the_webhook_sent(settings, github, signer):
    smtp = SmtpServer().start()
    receiver = Receiver()
    try:
        send_to(settings, smtp.port)
        _, secret = webhooks.register_endpoint(receiver.url, ["key.leaked", "key.revoked"], "leaks")
        plaintext = issue(make_owner("uid-mailed", "mailed@example.com"), "CI deploy").plaintext
        key_id = str(ApiKey.objects.get(key_hash=crypto.hash_key(plaintext)).pk)
        body = alert(plaintext)

        assert post(body, signer.headers(body)).status_code == 200
        tasks.send_due_notices()
        webhooks.deliver_due()

        mails = [m for m in smtp.wait_for(2) if "found in public" in m.subject]
        [mail] = mails
        assert mail.rcpt_tos == ["mailed@example.com"]
        assert mail.subject == "Your Omi API key “CI deploy” was found in public"
        assert FOUND_AT in mail.text and "GitHub's secret scanning" in mail.text
        assert "revoked at once" in mail.text
        assert plaintext not in mail.text and plaintext not in mail.html
        assert plaintext[8:] not in mail.text
        payloads = {p["type"]: p for p in receiver.verified(secret)}
        assert set(payloads) == {"key.leaked", "key.revoked"}
        assert payloads["key.leaked"]["data"]["key_id"] == key_id
        assert payloads["key.leaked"]["data"]["leak"] == {"source": "github", "url": FOUND_AT, "action": "revoked"}
    finally:
        smtp.stop()
        receiver.stop()


def test_the_notice_cannot_be_turned_off(github, signer):
    owner = make_owner("uid-settings")
    from apikeys.models import NotificationSettings

    NotificationSettings.objects.create(user=owner, changes_by_others=False, expiry_reminders=False, expired=False)
    plaintext = issue(owner).plaintext
    body = alert(plaintext)
    post(body, signer.headers(body))
    notice = Notice.objects.get(kind=Notice.Kind.KEY_LEAKED)
    assert notices.still_due(notice, timezone.now() + datetime.timedelta(seconds=1))


def test_the_key_s_history_shows_where_it_was_found(github, signer):
    from apikeys.web.history import event_rows

    issued = issue(make_owner("uid-history"))
    body = alert(issued.plaintext)
    post(body, signer.headers(body))
    rows = event_rows(list(issued.api_key.events.all()), issued.api_key.owner)
    leaked = next(row for row in rows if row.action == KeyEvent.Action.LEAKED)
    assert leaked.what == f"Reported found in public at {FOUND_AT}"
    assert leaked.who == "Omi (GitHub secret scanning)"
    assert leaked.via == "leak reports"


def junk() -> bytes:
    """A signed alert's body whose one token asks nothing of the database."""
    return alert("not a key")


def test_a_failing_key_source_is_asked_once_not_on_every_request(github, signer):
    github.failing = True
    body = junk()
    for headers in [signer.headers(body)] * 3 + [GitHubSigner().headers(body)] * 3:
        response = post(body, headers)
        assert response.status_code == 503, response.content
        assert int(response["Retry-After"]) > 0
    assert github.fetches == 1


def test_the_keys_are_fetched_one_request_at_a_time(github, signer):
    import threading

    github.hold.set()
    body = junk()
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(post(body, signer.headers(body)))) for _ in range(5)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(answers) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    github.released.set()
    for thread in threads:
        thread.join(10)
    assert github.fetches == 1
    assert sorted(a.status_code for a in answers) == [200, 503, 503, 503, 503]


def test_the_last_good_keys_check_alerts_while_github_fails(github, signer):
    from apikeys.leaks import github as keys

    body = junk()
    assert post(body, signer.headers(body)).status_code == 200
    cache_delete(keys._names()["fresh"])  # the cached copy's lifetime ends
    github.failing = True
    for _ in range(3):
        assert post(body, signer.headers(body)).status_code == 200
    assert github.fetches == 2  # one failed fetch, then none while it is held back


def test_an_unchanged_key_list_is_asked_for_with_its_etag_and_a_token_when_set(settings, github, signer):
    from apikeys.leaks import github as keys

    body = junk()
    assert post(body, signer.headers(body)).status_code == 200
    assert "Authorization" not in github.requests[0]
    settings.OMIKEYS_GITHUB_TOKEN = "github_pat_for_tests"
    cache_delete(keys._names()["fresh"])
    assert post(body, signer.headers(body)).status_code == 200
    assert github.fetches == 2
    assert github.requests[1]["Authorization"] == "Bearer github_pat_for_tests"
    assert github.requests[1]["If-None-Match"]  # answered 304: the keys kept
    assert post(body, signer.headers(body)).status_code == 200
    assert github.fetches == 2


def test_with_the_cache_down_each_process_keeps_the_keys_itself(settings, github, signer):
    import socket

    with socket.socket() as probe:  # a port nothing listens on: Redis refusing
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CACHES = {
        "default": {"BACKEND": "apikeys.cache.ResilientRedisCache", "LOCATION": f"redis://127.0.0.1:{port}/0"}
    }
    body = junk()
    for _ in range(4):
        assert post(body, signer.headers(body)).status_code == 200
    assert github.fetches == 1
    for _ in range(3):
        assert post(body, GitHubSigner().headers(body)).status_code == 401
    assert github.fetches == 2


def test_a_trickling_key_server_is_given_up_on_at_the_deadline(settings, github, signer):
    settings.OMIKEYS_GITHUB_KEYS_TIMEOUT = 0.5
    github.trickle_seconds = 0.05  # the whole answer would take 20 s or more
    body = junk()
    started = time.monotonic()
    response = post(body, signer.headers(body))
    assert time.monotonic() - started < 5
    assert response.status_code == 503


def test_a_new_identifier_while_the_refetch_fails_is_503_and_the_retry_is_checked(monkeypatch, github, signer):
    from apikeys.leaks import github as keys

    monkeypatch.setattr(keys, "FAILURE_HOLD_SECONDS", 1)
    body = junk()
    assert post(body, signer.headers(body)).status_code == 200
    rotated = GitHubSigner()
    github.signers.append(rotated)
    github.failing = True
    refused = post(body, rotated.headers(body))
    assert refused.status_code == 503  # not 401: GitHub retries a 503
    assert int(refused["Retry-After"]) > 0
    github.failing = False
    time.sleep(1.2)
    assert post(body, rotated.headers(body)).status_code == 200


@pytest.mark.parametrize("pem", ["not a PEM", "RSA"])
def test_a_key_that_cannot_be_read_is_a_503_not_a_refusal(github, signer, pem):
    if pem == "RSA":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
        pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    github.keys_override = [{"key_identifier": signer.identifier, "key": pem, "is_current": True}]
    body = junk()
    assert post(body, signer.headers(body)).status_code == 503


def cache_delete(name: str) -> None:
    from django.core.cache import cache

    cache.delete(name)


@pytest.mark.django_db(transaction=True)
def test_acting_on_a_leak_locks_the_key_s_row_not_its_owner_s(github, signer):
    """On PostgreSQL, ``select_for_update`` with ``select_related`` locks every joined row: another transaction
    updating the owner's row (an account change) must not hold up, or deadlock with, a leak being acted on."""
    import threading

    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's row locks (SQLite locks the whole file): runs in the PostgreSQL run of the suite")

    owner = make_owner("uid-lock-owner")
    plaintext = issue(owner).plaintext
    locked, release = threading.Event(), threading.Event()

    def hold_owner():
        try:
            with transaction.atomic():
                # What an ordinary UPDATE of the owner's row takes (FOR NO KEY UPDATE): it conflicts with the
                # FOR UPDATE the key's lock would also take on the owner, not with the FOR KEY SHARE of
                # inserting rows that refer to the owner.
                type(owner).objects.select_for_update(no_key=True).get(pk=owner.pk)
                locked.set()
                release.wait(20)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_owner)
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        finding = lifecycle.handle_leaked_token(plaintext, source="github", url=FOUND_AT)
        assert time.monotonic() - started < 5
        assert finding.revoked
    finally:
        release.set()
        holder.join(30)
