"""Request ids (X-Request-ID) on every response and log line, the one-line request log, and redaction."""

import json
import logging
import re

import pytest
from rest_framework.test import APIClient

from apikeys import log_format
from apikeys.request_logging import REQUEST_ID_RE

from .helpers import issue, key_client

URL = "/v1/dev/key"
HEX32 = re.compile(r"[0-9a-f]{32}")

pytestmark = [pytest.mark.django_db, pytest.mark.owner("logged-owner")]


@pytest.fixture
def json_request_log(settings, project_log):
    settings.OMIKEYS_REQUEST_LOG = True
    project_log.use("json")
    return project_log


def request_lines(log) -> list[dict]:
    return [entry for entry in map(json.loads, log.lines()) if entry["logger"] == "omikeys.requests"]


def test_every_response_has_a_new_request_id():
    first, second = APIClient().get("/healthz"), APIClient().get(URL)
    assert HEX32.fullmatch(first["X-Request-ID"]) and HEX32.fullmatch(second["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_an_incoming_request_id_is_ignored_unless_the_proxy_is_trusted(settings):
    assert APIClient().get("/healthz", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] != "abc-123"
    settings.OMIKEYS_TRUST_REQUEST_ID = True
    assert APIClient().get("/healthz", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"


@pytest.mark.parametrize(
    "incoming",
    ["", "x" * 129, "has space", "new\nline", "omi_dev_" + "a" * 32, "-leading-hyphen", 'quote"', "ünïcode"],
)
def test_a_trusted_but_insane_request_id_is_replaced(settings, incoming):
    settings.OMIKEYS_TRUST_REQUEST_ID = True
    response = APIClient().get("/healthz", HTTP_X_REQUEST_ID=incoming)
    assert HEX32.fullmatch(response["X-Request-ID"])


def test_sane_ids_such_as_nginx_request_ids_and_uuids_are_accepted():
    for incoming in ("0123456789abcdef0123456789abcdef", "6f1f0c3e-5d0a-4b7e-9a53-2a8e0d7c4b91", "a" * 128):
        assert REQUEST_ID_RE.fullmatch(incoming)


def test_one_json_line_per_request_with_its_fields_and_no_query_string(json_request_log, owner):
    issued = issue(owner, "logged")
    response = key_client(issued.plaintext, HTTP_USER_AGENT="curl/8.5").get(f"{URL}?secret=hunter2&x=1")
    assert response.status_code == 200
    [line] = request_lines(json_request_log)
    assert line["method"] == "GET"
    assert line["path"] == URL
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float) and 0 <= line["duration_ms"] < 60_000
    assert line["request_id"] == response["X-Request-ID"]
    assert line["remote_addr"] == "127.0.0.1"
    assert line["user_agent"] == "curl/8.5"
    assert line["key_id"] == str(issued.api_key.pk)
    assert line["uid"] == "logged-owner"
    assert line["level"] == "INFO" and line["timestamp"]
    assert "hunter2" not in json_request_log.text


def test_a_firebase_caller_is_logged_by_uid(json_request_log, user_client):
    assert user_client.get("/v1/dev/keys").status_code == 200
    [line] = request_lines(json_request_log)
    assert line["uid"] == user_client.emulator_user.uid
    assert "key_id" not in line


def test_a_refused_request_is_logged_without_who(json_request_log):
    APIClient().get(URL, HTTP_AUTHORIZATION="Bearer omi_dev_" + "9" * 32)
    [line] = request_lines(json_request_log)
    assert line["status"] == 401
    assert "key_id" not in line and "uid" not in line and "user_id" not in line


def test_the_request_log_is_off_by_default(project_log):
    APIClient().get("/healthz")
    assert "omikeys.requests" not in project_log.text


def test_other_log_lines_of_a_request_carry_its_id(json_request_log, user_client):
    response = user_client.post("/v1/dev/keys", data=json.dumps({"name": "n"}), content_type="application/json")
    entries = [json.loads(line) for line in json_request_log.lines()]
    issued = [entry for entry in entries if entry["message"].startswith("api key issued")]
    assert issued and issued[0]["request_id"] == response["X-Request-ID"]
    logging.getLogger("apikeys.test").info("outside any request")
    assert json.loads(json_request_log.lines()[-1])["request_id"] == "-"


def test_every_line_of_a_refused_request_carries_its_id(json_request_log):
    """Django's own "Unauthorized: ..." line (django.request, logged after the middleware
    returned) carries the request's id like the others, and lines after the request "-"."""
    response = APIClient().get(URL, HTTP_AUTHORIZATION="Bearer omi_dev_" + "9" * 32)
    assert response.status_code == 401
    entries = [json.loads(line) for line in json_request_log.lines()]
    assert {entry["logger"] for entry in entries} >= {"django.request", "omikeys.requests"}
    assert {entry["request_id"] for entry in entries} == {response["X-Request-ID"]}
    logging.getLogger("apikeys.test").info("after the request")
    assert json.loads(json_request_log.lines()[-1])["request_id"] == "-"


def test_plain_lines_carry_the_request_id_too(settings, project_log):
    settings.OMIKEYS_REQUEST_LOG = True
    project_log.use("plain")
    response = APIClient().get("/healthz")
    line = project_log.lines()[-1]
    assert f" omikeys.requests [{response['X-Request-ID']}] GET /healthz 200 " in line


def test_a_path_with_control_characters_stays_on_one_line(json_request_log, settings):
    settings.OMIKEYS_REQUEST_LOG = True
    APIClient().get("/v1/dev/keys/x%0Afake%20line")
    [line] = request_lines(json_request_log)
    assert line["path"] == "/v1/dev/keys/x\\x0afake line"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key omi_dev_" + "0123456789abcdef" * 2, "key omi_dev_[redacted]"),
        ("shown as omi_dev_e1f8...7aab", "shown as omi_dev_e1f8...7aab"),
        ("token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln!", "token [redacted]!"),
        ("hash " + "ab" * 32 + ".", "hash [redacted]."),
        ("request 0123456789abcdef0123456789abcdef", "request 0123456789abcdef0123456789abcdef"),
        ("Authorization: Bearer abc.defghij", "Authorization: Bearer [redacted]"),
        ("the bearer token has expired", "the bearer token has expired"),
        ("Cookie: sessionid=abc123; csrftoken=xyz", "Cookie: sessionid=[redacted]; csrftoken=[redacted]"),
    ],
)
def test_redaction(text, expected):
    assert log_format.redact(text) == expected


def test_a_bad_log_format_is_a_configuration_error():
    from .test_settings import REQUIRED, run_settings

    result = run_settings({**REQUIRED, "OMIKEYS_LOG_FORMAT": "xml"})
    assert result.returncode != 0 and "OMIKEYS_LOG_FORMAT must be plain or json" in result.stderr
