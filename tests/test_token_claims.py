"""Firebase ID-token claims: wrong types are refused on the API and the web, and clock skew up to the setting is not."""

import base64
import time

import pytest
from django.urls import reverse

from . import firebase_emulator

pytestmark = pytest.mark.django_db

URL = "/v1/dev/keys"
SIGN_IN_ERROR = "Your sign-in could not be verified."


def bearer(api, token):
    return api.get(URL, HTTP_AUTHORIZATION=f"Bearer {token}")


def assert_refused_on_both_doors(api, client, token):
    response = bearer(api, token)
    assert response.status_code == 401, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]
    page = client.post(reverse("web:signin"), {"id_token": token})
    assert page.status_code == 403, page.content[:300]
    assert SIGN_IN_ERROR in page.content.decode()
    assert "_auth_user_id" not in client.session


class _Missing:
    """The claim left out of the token; a stable repr keeps the test ids the same in every run."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


def with_claim(claims: dict, name: str, value) -> dict:
    changed = dict(claims)
    if value is MISSING:
        changed.pop(name, None)
    else:
        changed[name] = value
    return changed


BAD_TIMES = [MISSING, None, "1700000000", "", True, [], {"t": 1}, float("inf"), float("nan"), 10**400, -1]


@pytest.mark.parametrize("name", ["iat", "exp", "auth_time"])
@pytest.mark.parametrize("value", BAD_TIMES, ids=repr)
def test_a_time_claim_of_the_wrong_type_is_refused(api, client, emulator_user, name, value):
    claims = firebase_emulator.decode_claims(emulator_user.id_token)
    assert_refused_on_both_doors(api, client, firebase_emulator.unsigned_token(with_claim(claims, name, value)))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("sub", MISSING),
        ("sub", None),
        ("sub", 12345),
        ("sub", ""),
        ("sub", "x" * 129),
        ("sub", ["uid"]),
        ("email", None),
        ("email", 12345),
        ("email", ["a@example.com"]),
        ("email", {"address": "a@example.com"}),
        ("email_verified", "true"),
        ("email_verified", 1),
        ("email_verified", None),
        ("firebase", "password"),
        ("firebase", None),
        ("user_id", 42),
    ],
    ids=repr,
)
def test_an_identity_claim_of_the_wrong_type_is_refused(api, client, emulator_user, name, value):
    claims = firebase_emulator.decode_claims(emulator_user.id_token)
    assert_refused_on_both_doors(api, client, firebase_emulator.unsigned_token(with_claim(claims, name, value)))


def test_the_refusal_names_the_claim_not_its_value(api, emulator_user):
    claims = firebase_emulator.decode_claims(emulator_user.id_token)
    response = bearer(api, firebase_emulator.unsigned_token({**claims, "email": ["someone-secret@example.com"]}))
    assert response.status_code == 401
    assert '"email"' in response.json()["detail"]
    assert "someone-secret" not in response.content.decode()


def test_a_payload_that_is_not_an_object_is_refused(api, client):
    token = firebase_emulator.unsigned_token_of_payload(b"[1, 2, 3]")
    assert_refused_on_both_doors(api, client, token)


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 3000 + b"]" * 3000,  # deeper than the JSON parser's recursion limit
        b'{"":' * 1000 + b"1" + b"}" * 1000,
        b"\xff\xfe",  # not UTF-8
        b'"just a string"',
        b"5",
        b"{not json",
    ],
    ids=["nested-list", "nested-object", "not-utf8", "string", "number", "broken"],
)
def test_a_payload_that_does_not_decode_is_refused_not_a_500(api, client, payload):
    assert_refused_on_both_doors(api, client, firebase_emulator.unsigned_token_of_payload(payload))


def test_a_header_nested_too_deep_is_refused(api, client):
    token = f"{_segment(b'[' * 3000 + b']' * 3000)}.{_segment(b'{}')}."
    assert_refused_on_both_doors(api, client, token)


def test_a_token_far_longer_than_any_firebase_token_is_refused(api, client, emulator_user):
    claims = firebase_emulator.decode_claims(emulator_user.id_token)
    token = firebase_emulator.unsigned_token({**claims, "pad": "x" * 20000})
    response = bearer(api, token)
    assert response.status_code == 401, response.content
    assert response.json()["detail"] == "The bearer token is not a valid Firebase ID token."
    page = client.post(reverse("web:signin"), {"id_token": token})
    assert page.status_code in (400, 403)  # the sign-in form's own length limit answers first
    assert "_auth_user_id" not in client.session


def test_an_object_claim_of_the_wrong_type_is_named_with_the_right_article(api, emulator_user):
    claims = firebase_emulator.decode_claims(emulator_user.id_token)
    response = bearer(api, firebase_emulator.unsigned_token({**claims, "firebase": "password"}))
    assert response.json()["detail"] == 'The Firebase ID token\'s "firebase" claim is not an object.'


def test_well_typed_claims_are_still_accepted(api, client, emulator_user):
    """Control: the emulator's own token (float-free, email_verified false) passes both doors."""
    assert bearer(api, emulator_user.id_token).status_code == 200
    assert client.post(reverse("web:signin"), {"id_token": emulator_user.id_token}).status_code == 302


# Signed tokens (the conftest seam): firebase-admin then checks iat and exp itself.
# A token that passes every check reaches the revocation lookup, which the made-up
# service account cannot make: 503 there means "the token itself was accepted".


@pytest.mark.parametrize("value", [None, "1700000000", True, [1]], ids=repr)
@pytest.mark.parametrize("name", ["iat", "exp"])
def test_a_signed_token_with_a_wrongly_typed_time_is_401_not_500(api, signed_tokens, name, value):
    token = signed_tokens.mint(extra={name: value})
    response = bearer(api, token)
    assert response.status_code == 401, response.content


@pytest.fixture
def stopped_clock(time_machine):
    """The clock stopped at a whole second: a token minted "2 s ahead" is 2 s ahead when it is verified.

    ``mint`` takes whole seconds (``iat`` is an integer) and google-auth compares them with the
    whole seconds of its own reading of the clock. With the clock running, "now + 2" minted at
    12:00:00.9 is 12:00:02, one second and a tenth ahead, and a verification 1.1 s later on a
    busy machine sees it as not ahead at all.
    """
    time_machine.move_to(int(time.time()), tick=False)
    return time_machine


def test_a_token_issued_two_seconds_ahead_is_accepted(api, signed_tokens, stopped_clock):
    response = bearer(api, signed_tokens.mint(issued=time.time() + 2))
    assert response.status_code == 503, response.content  # past verification, at the revocation check


def test_a_token_that_expired_two_seconds_ago_is_still_accepted(api, signed_tokens, stopped_clock):
    response = bearer(api, signed_tokens.mint(issued=time.time() - 3602, lifetime=3600))
    assert response.status_code == 503, response.content


def test_a_token_further_ahead_than_the_allowed_skew_is_401_and_says_why(api, signed_tokens, settings, stopped_clock):
    ahead = settings.FIREBASE_CLOCK_SKEW_SECONDS + 3
    response = bearer(api, signed_tokens.mint(issued=time.time() + ahead))
    assert response.status_code == 401
    assert "clock" in response.json()["detail"]


def test_a_token_expired_longer_ago_than_the_skew_is_401(api, signed_tokens, settings, stopped_clock):
    ago = settings.FIREBASE_CLOCK_SKEW_SECONDS + 3
    response = bearer(api, signed_tokens.mint(issued=time.time() - 3600 - ago, lifetime=3600))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_the_skew_follows_the_setting(api, signed_tokens, settings, stopped_clock):
    settings.FIREBASE_CLOCK_SKEW_SECONDS = 30
    assert bearer(api, signed_tokens.mint(issued=time.time() + 30)).status_code == 503
    assert bearer(api, signed_tokens.mint(issued=time.time() + 31)).status_code == 401
    settings.FIREBASE_CLOCK_SKEW_SECONDS = 0
    assert bearer(api, signed_tokens.mint(issued=time.time())).status_code == 503
    assert bearer(api, signed_tokens.mint(issued=time.time() + 1)).status_code == 401


def test_web_sign_in_tolerates_the_skew_and_names_the_clock_beyond_it(client, signed_tokens, settings, stopped_clock):
    page = client.post(reverse("web:signin"), {"id_token": signed_tokens.mint(issued=time.time() + 2)})
    assert page.status_code == 503  # verified; the revocation lookup is what fails here
    ahead = settings.FIREBASE_CLOCK_SKEW_SECONDS + 3
    page = client.post(reverse("web:signin"), {"id_token": signed_tokens.mint(issued=time.time() + ahead)})
    assert page.status_code == 403
    assert "clock seems to be ahead" in page.content.decode()
