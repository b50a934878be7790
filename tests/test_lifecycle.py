"""The core every door calls: each public function of lifecycle and each exception it raises, directly."""

import datetime
import threading
import uuid

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from apikeys import crypto, lifecycle
from apikeys.audit import Actor
from apikeys.firebase import FirebaseUser
from apikeys.models import ApiKey, KeyEvent, Scope, User

from .helpers import NOW, expire, scopes

pytestmark = [pytest.mark.django_db, pytest.mark.owner("uid-1", "one@example.com")]


def fields_of(error: ValidationError) -> dict:
    """A keyed ValidationError as {field: [codes]}."""
    return {field: [item.code for item in errors] for field, errors in error.value.error_dict.items()}


def events(api_key, action):
    return list(KeyEvent.objects.filter(api_key=api_key, action=action))


# issue_key


def test_issue_key_stores_only_the_hash(owner):
    issued = lifecycle.issue_key(owner=owner, name=" Reporting ")
    stored = ApiKey.objects.get(pk=issued.api_key.pk)
    assert stored.name == "Reporting"
    assert stored.key_hash == crypto.hash_key(issued.plaintext)
    assert stored.key_prefix == crypto.display_prefix(issued.plaintext)
    assert issued.plaintext not in repr(issued)
    assert sorted(stored.scopes.values_list("code", flat=True)) == sorted(
        Scope.objects.filter(is_default=True).values_list("code", flat=True)
    )


def test_issue_key_applies_the_name_rules_for_every_door(owner):
    for bad in ["", "   ", "x" * 101, "omi_dev_" + "a" * 32]:
        with pytest.raises(ValidationError):
            lifecycle.issue_key(owner=owner, name=bad)
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize(
    ("name", "code"),
    [("   ", "string_too_short"), ("x" * 101, "string_too_long"), ("omi_dev_" + "a" * 32, "secret_in_name")],
)
def test_a_refused_name_is_an_error_of_the_name_field(owner, name, code):
    with pytest.raises(ValidationError) as refused:
        lifecycle.issue_key(owner=owner, name=name)
    assert fields_of(refused) == {"name": [code]}


@pytest.mark.parametrize(
    ("expires_at", "code"),
    [
        (datetime.datetime(2027, 7, 1, 12, 0), "timezone_aware"),  # naive, the point of this case
        (NOW - datetime.timedelta(seconds=1), "datetime_future"),
        (NOW, "datetime_future"),
        (NOW + datetime.timedelta(days=366), "datetime_too_late"),
    ],
    ids=["naive", "past", "now", "too-far"],
)
def test_a_refused_expiry_is_an_error_of_the_expires_at_field(owner, clock, expires_at, code):
    with pytest.raises(ValidationError) as refused:
        lifecycle.issue_key(owner=owner, name="n", expires_at=expires_at)
    assert fields_of(refused) == {"expires_at": [code]}
    assert not ApiKey.objects.exists()


def test_issue_key_records_the_scopes_expiry_and_actor(owner, clock):
    moment = NOW + datetime.timedelta(days=30)
    issued = lifecycle.issue_key(
        owner=owner,
        name="n",
        scopes=scopes("memories:write", "goals:read"),
        expires_at=moment,
        actor=Actor.command("createapikey"),
    )
    (event,) = events(issued.api_key, "created")
    assert event.details == {"scopes": ["goals:read", "memories:write"], "expires_at": moment.isoformat()}
    assert (event.actor_kind, event.via) == ("command", "command")
    assert issued.api_key.expires_at == moment


def test_a_key_is_created_at_the_moment_its_created_event_records(owner):
    """The clock runs here: the key's created_at and its audit event's time are one reading, not two."""
    issued = lifecycle.issue_key(owner=owner, name="n")
    (event,) = events(issued.api_key, "created")
    assert ApiKey.objects.get(pk=issued.api_key.pk).created_at == event.at == issued.api_key.created_at


def test_issue_key_collapses_duplicate_scopes(owner):
    read = Scope.objects.get(code="memories:read")
    issued = lifecycle.issue_key(owner=owner, name="n", scopes=[read, read])
    assert list(issued.api_key.scopes.all()) == [read]


def test_an_owner_at_the_limit_gets_too_many_keys(owner, settings):
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 2
    lifecycle.issue_key(owner=owner, name="one")
    expired = lifecycle.issue_key(owner=owner, name="expired").api_key
    expire(expired)  # an expired key leaves room
    lifecycle.issue_key(owner=owner, name="two")

    with pytest.raises(lifecycle.TooManyKeys) as refused:
        lifecycle.issue_key(owner=owner, name="three")

    assert isinstance(refused.value, lifecycle.LifecycleError)
    assert refused.value.limit == 2
    assert str(refused.value).startswith("You already have 2 active API keys, the most allowed.")
    assert ApiKey.objects.filter(owner=owner).count() == 3


def test_a_request_token_issues_one_key_however_often_it_is_sent(owner):
    first = lifecycle.issue_key(owner=owner, name="n", request_token="token-1")
    with pytest.raises(lifecycle.AlreadyIssued) as already:
        lifecycle.issue_key(owner=owner, name="other name", request_token="token-1")
    assert already.value.api_key == first.api_key
    assert isinstance(already.value, lifecycle.LifecycleError)
    assert ApiKey.objects.count() == 1
    # Another owner's token space is separate, and no token means no deduplication.
    lifecycle.issue_key(owner=User.objects.for_firebase("uid-2", None), name="n", request_token="token-1")
    lifecycle.issue_key(owner=owner, name="n")
    lifecycle.issue_key(owner=owner, name="n")
    assert ApiKey.objects.count() == 4


def test_a_form_sent_again_at_the_limit_gets_its_first_key_not_too_many_keys(owner, settings):
    """The form's token is checked before the active-key limit: the key it made is what fills the limit."""
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 1
    first = lifecycle.issue_key(owner=owner, name="n", request_token="form-token")
    with pytest.raises(lifecycle.AlreadyIssued) as already:
        lifecycle.issue_key(owner=owner, name="n", request_token="form-token")
    assert already.value.api_key == first.api_key
    assert str(already.value) == f"A key was already issued for this request: {first.api_key.pk}"
    with pytest.raises(lifecycle.TooManyKeys):
        lifecycle.issue_key(owner=owner, name="n", request_token="another-form")
    assert ApiKey.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_token_issue_exactly_one_key(contract_scopes):
    owner = User.objects.for_firebase("uid-race", None)
    barrier = threading.Barrier(6)
    outcomes = []

    def send():
        barrier.wait()
        try:
            issued = lifecycle.issue_key(owner=owner, name="double click", request_token="same-token")
            outcomes.append(("issued", issued.api_key.pk))
        except lifecycle.AlreadyIssued as already:
            outcomes.append(("already", already.api_key.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(kind for kind, _ in outcomes) == ["already"] * 5 + ["issued"]
    assert len({pk for _, pk in outcomes}) == 1
    assert ApiKey.objects.filter(owner=owner).count() == 1


# Who may hold keys: ensure_may_hold_keys, and issue_key applying it


def account(user, disabled=False):
    return FirebaseUser(uid=user.firebase_uid, email=user.email, disabled=disabled)


def test_an_active_firebase_user_may_hold_keys(owner):
    lifecycle.ensure_may_hold_keys(owner)
    lifecycle.ensure_may_hold_keys(owner, account(owner))
    assert owner in User.objects.key_holders()


def inactive_user():
    user = User.objects.for_firebase("uid-off", None)
    User.objects.filter(pk=user.pk).update(is_active=False)
    return User.objects.get(pk=user.pk)


def staff_only_user():
    return User.objects.create_user("staff-only", password="not-used")


def firebase_user():
    return User.objects.for_firebase("uid-disabled", None)


@pytest.mark.parametrize(
    ("make", "disabled_in_firebase", "reason"),
    [
        (inactive_user, False, "inactive"),
        (staff_only_user, False, "no_firebase_uid"),
        (firebase_user, True, "firebase_disabled"),
    ],
    ids=["inactive", "staff-only", "firebase-disabled"],
)
def test_an_owner_who_may_not_hold_keys_is_refused_and_nothing_is_written(make, disabled_in_firebase, reason):
    user = make()
    given = account(user, disabled=True) if disabled_in_firebase else None

    with pytest.raises(lifecycle.OwnerNotEligible) as refused:
        lifecycle.ensure_may_hold_keys(user, given)
    assert (refused.value.reason, refused.value.owner) == (reason, user)
    assert isinstance(refused.value, lifecycle.LifecycleError)
    with pytest.raises(lifecycle.OwnerNotEligible):
        lifecycle.issue_key(owner=user, name="n", firebase_account=given)

    assert not ApiKey.objects.exists()
    assert not KeyEvent.objects.exists()
    assert (user in User.objects.key_holders()) is (reason == "firebase_disabled")


def test_an_owner_deactivated_after_being_read_gets_no_key_and_the_refusal_names_them(owner):
    """A door read the owner while active; staff, syncfirebaseusers or an erasure deactivated them before the write."""
    User.objects.filter(pk=owner.pk).update(is_active=False)
    assert owner.is_active  # the door's copy, loaded before the deactivation

    with pytest.raises(lifecycle.OwnerNotEligible) as refused:
        lifecycle.issue_key(owner=owner, name="n")

    assert (refused.value.reason, refused.value.owner) == ("inactive", owner)
    assert str(refused.value) == "This account has been deactivated; it cannot hold API keys."
    assert not ApiKey.objects.exists()
    assert not KeyEvent.objects.exists()


# update_key


def test_update_key_renames_and_rescopes_and_audits_each_change(owner):
    api_key = lifecycle.issue_key(owner=owner, name="Before", scopes=scopes("memories:read")).api_key

    recorded = lifecycle.update_key(
        api_key, name=" After ", scopes=scopes("goals:read", "memories:read"), actor=Actor.command("updateapikey")
    )

    assert recorded == ["renamed", "scopes_changed"]
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert (stored.name, api_key.name) == ("After", "After")
    assert sorted(stored.scopes.values_list("code", flat=True)) == ["goals:read", "memories:read"]
    assert events(api_key, "renamed")[0].details == {"name": "After", "previous_name": "Before"}
    assert events(api_key, "scopes_changed")[0].details == {
        "scopes": ["goals:read", "memories:read"],
        "previous_scopes": ["memories:read"],
    }
    assert {(event.action, event.actor_kind, event.via) for event in KeyEvent.objects.filter(api_key=api_key)} == {
        ("created", "system", "code"),
        ("renamed", "command", "command"),
        ("scopes_changed", "command", "command"),
    }
    assert lifecycle.update_key(api_key, name="After", scopes=scopes("memories:read", "goals:read")) == []
    assert lifecycle.update_key(api_key) == []


def test_update_key_refuses_a_bad_name_as_a_name_error(owner):
    api_key = lifecycle.issue_key(owner=owner, name="Before").api_key
    with pytest.raises(ValidationError) as refused:
        lifecycle.update_key(api_key, name="bell\x07")
    assert fields_of(refused) == {"name": ["string_control_characters"]}
    assert ApiKey.objects.get(pk=api_key.pk).name == "Before"


def test_a_key_needs_at_least_one_scope(owner):
    with pytest.raises(ValidationError) as refused:
        lifecycle.issue_key(owner=owner, name="No scopes", scopes=[])
    assert fields_of(refused) == {"scopes": ["scopes_empty"]}
    assert refused.value.error_dict["scopes"][0].messages == ["A key needs at least one scope."]
    assert not ApiKey.objects.exists()


def test_without_a_default_scope_a_key_issued_without_scopes_is_refused(owner):
    Scope.objects.update(is_default=False)
    with pytest.raises(ValidationError) as refused:
        lifecycle.issue_key(owner=owner, name="Defaults")
    assert fields_of(refused) == {"scopes": ["scopes_empty"]}
    assert refused.value.error_dict["scopes"][0].messages == [
        "There is no read-only default at present: choose at least one scope."
    ]
    assert not ApiKey.objects.exists()


def test_update_key_never_takes_every_scope_away(owner):
    api_key = lifecycle.issue_key(owner=owner, name="Before", scopes=scopes("memories:read")).api_key
    with pytest.raises(ValidationError) as refused:
        lifecycle.update_key(api_key, name="After", scopes=[])
    assert fields_of(refused) == {"scopes": ["scopes_empty"]}
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert (stored.name, list(stored.scopes.values_list("code", flat=True))) == ("Before", ["memories:read"])
    assert list(KeyEvent.objects.values_list("action", flat=True)) == ["created"]


def test_a_revoked_key_never_changes_again(owner):
    api_key = lifecycle.issue_key(owner=owner, name="Gone").api_key
    lifecycle.revoke_key(api_key)

    for change in (
        lambda: lifecycle.update_key(api_key, name="Back"),
        lambda: lifecycle.rotate_key(api_key),
        lambda: lifecycle.set_expiry(api_key, timezone.now() + datetime.timedelta(days=1)),
    ):
        with pytest.raises(lifecycle.KeyRevoked) as refused:
            change()
        assert isinstance(refused.value, lifecycle.NotChangeable)
        assert isinstance(refused.value, lifecycle.LifecycleError)
    assert ApiKey.objects.get(pk=api_key.pk).name == "Gone"
    assert [event.action for event in KeyEvent.objects.filter(api_key=api_key)] == ["revoked", "created"]


# rotate_key


def test_rotate_key_gives_a_new_secret_and_the_old_one_stops_at_once(owner):
    issued = lifecycle.issue_key(owner=owner, name="n")

    rotated = lifecycle.rotate_key(issued.api_key)

    assert rotated.api_key.pk == issued.api_key.pk
    assert (
        rotated.api_key.key_prefix
        == crypto.display_prefix(rotated.plaintext)
        != crypto.display_prefix(issued.plaintext)
    )
    assert lifecycle.verify_key(rotated.plaintext).api_key == issued.api_key
    # Without a grace period the replaced secret is forgotten: it is as unknown as a secret never issued.
    assert lifecycle.verify_key(issued.plaintext) == lifecycle.Verification(
        None, lifecycle.Rejection.INVALID, "not_found"
    )
    assert events(issued.api_key, "rotated")[0].details == {
        "grace_seconds": 0,
        "previous_key_expires_at": None,
        "previous_key_prefix": crypto.display_prefix(issued.plaintext),
    }


def test_during_a_grace_period_both_secrets_verify(owner, clock):
    issued = lifecycle.issue_key(owner=owner, name="n")

    rotated = lifecycle.rotate_key(issued.api_key, grace_seconds=3600)

    assert issued.api_key.previous_key_expires_at == NOW + datetime.timedelta(hours=1)
    assert lifecycle.verify_key(issued.plaintext).api_key == issued.api_key
    clock.shift(datetime.timedelta(hours=1))
    assert lifecycle.verify_key(issued.plaintext).api_key is None
    assert lifecycle.verify_key(rotated.plaintext).api_key == issued.api_key


@pytest.mark.parametrize("grace", [-1, lifecycle.MAX_GRACE_SECONDS + 1])
def test_a_grace_period_out_of_range_is_a_grace_seconds_error(owner, grace):
    issued = lifecycle.issue_key(owner=owner, name="n")
    with pytest.raises(ValidationError) as refused:
        lifecycle.rotate_key(issued.api_key, grace_seconds=grace)
    assert fields_of(refused) == {"grace_seconds": ["grace_range"]}
    assert lifecycle.verify_key(issued.plaintext).api_key == issued.api_key


def test_an_expired_key_cannot_be_rotated(owner):
    issued = lifecycle.issue_key(owner=owner, name="n")
    expire(issued.api_key)
    with pytest.raises(lifecycle.NotRotatable) as refused:
        lifecycle.rotate_key(issued.api_key)
    assert isinstance(refused.value, lifecycle.NotChangeable)
    assert not events(issued.api_key, "rotated")


def test_a_rotation_sent_twice_rotates_once(owner):
    api_key = lifecycle.issue_key(owner=owner, name="n").api_key
    seen = api_key.key_prefix
    lifecycle.rotate_key(api_key, expected_prefix=seen)

    with pytest.raises(lifecycle.AlreadyRotated) as already:
        lifecycle.rotate_key(api_key, expected_prefix=seen)

    assert already.value.api_key.pk == api_key.pk
    assert isinstance(already.value, lifecycle.LifecycleError)
    assert len(events(api_key, "rotated")) == 1


# set_expiry and validate_expiry


def test_set_expiry_changes_the_expiry_and_audits_it(owner, clock):
    api_key = lifecycle.issue_key(owner=owner, name="n").api_key
    moment = NOW + datetime.timedelta(days=10)

    assert lifecycle.set_expiry(api_key, moment) is True
    assert lifecycle.set_expiry(api_key, moment) is False  # nothing changed
    assert lifecycle.set_expiry(api_key, None, actor=Actor.command("setapikeyexpiry")) is True

    assert ApiKey.objects.get(pk=api_key.pk).expires_at is None
    assert [(event.details, event.actor_kind, event.via) for event in reversed(events(api_key, "expiry_changed"))] == [
        ({"expires_at": moment.isoformat(), "previous_expires_at": None}, "system", "code"),
        ({"expires_at": None, "previous_expires_at": moment.isoformat()}, "command", "command"),
    ]


def test_set_expiry_refuses_a_bad_expiry_as_an_expires_at_error(owner, clock):
    api_key = lifecycle.issue_key(owner=owner, name="n").api_key
    with pytest.raises(ValidationError) as refused:
        lifecycle.set_expiry(api_key, NOW - datetime.timedelta(days=1))
    assert fields_of(refused) == {"expires_at": ["datetime_future"]}
    assert ApiKey.objects.get(pk=api_key.pk).expires_at is None


def test_reviving_an_expired_key_needs_room_under_the_limit(owner, settings):
    settings.OMIKEYS_MAX_ACTIVE_KEYS = 1
    lapsed = lifecycle.issue_key(owner=owner, name="lapsed").api_key
    expire(lapsed)
    lifecycle.issue_key(owner=owner, name="current")

    with pytest.raises(lifecycle.TooManyKeys):
        lifecycle.set_expiry(lapsed, timezone.now() + datetime.timedelta(days=1))
    assert ApiKey.objects.get(pk=lapsed.pk).is_expired()


def test_validate_expiry_accepts_never_and_a_moment_within_the_limit(clock, settings):
    lifecycle.validate_expiry(None)
    lifecycle.validate_expiry(NOW + datetime.timedelta(days=365))
    settings.OMIKEYS_MAX_KEY_LIFETIME_DAYS = 7
    with pytest.raises(ValidationError) as refused:
        lifecycle.validate_expiry(NOW + datetime.timedelta(days=8))
    # A field validator: the error has no field of its own, the lifecycle's functions key it.
    assert not hasattr(refused.value, "error_dict")
    assert refused.value.code == "datetime_too_late"
    assert refused.value.messages == ["The expiry must be at most 7 days from now."]


# revoke_key


def test_revoking_through_the_owners_keys_is_owner_only_and_idempotent(owner):
    issued = lifecycle.issue_key(owner=owner, name="n")
    stranger = User.objects.for_firebase("uid-2", None)
    with pytest.raises(ApiKey.DoesNotExist):
        ApiKey.objects.for_owner(stranger).get(pk=issued.api_key.pk)
    with pytest.raises(ApiKey.DoesNotExist):
        ApiKey.objects.for_owner(owner).get(pk=uuid.uuid4())
    assert lifecycle.revoke_key(ApiKey.objects.for_owner(owner).get(pk=issued.api_key.pk)) is True
    first = ApiKey.objects.get(pk=issued.api_key.pk).revoked_at
    assert first is not None
    again = ApiKey.objects.for_owner(owner).get(pk=issued.api_key.pk)
    assert lifecycle.revoke_key(again) is False
    assert again.revoked_at == first


def test_revoke_key_revokes_any_owners_key_once(owner):
    issued = lifecycle.issue_key(owner=owner, name="n")
    api_key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert lifecycle.revoke_key(api_key) is True
    first = api_key.revoked_at
    assert first is not None
    assert lifecycle.verify_key(issued.plaintext).api_key is None
    stale = ApiKey.objects.get(pk=api_key.pk)
    stale.revoked_at = None  # a copy loaded before the revocation
    assert lifecycle.revoke_key(stale) is False
    assert stale.revoked_at == first
    assert len(events(api_key, "revoked")) == 1


def test_a_revocations_reason_is_kept_in_its_audit_event(owner):
    erased = lifecycle.issue_key(owner=owner, name="erased").api_key
    plain = lifecycle.issue_key(owner=owner, name="plain").api_key

    assert lifecycle.revoke_key(erased, reason="account deleted", actor=Actor.command("eraseuser")) is True
    assert lifecycle.revoke_key(plain) is True

    assert [(event.details, event.actor_kind) for event in events(erased, "revoked")] == [
        ({"reason": "account deleted"}, "command")
    ]
    assert [event.details for event in events(plain, "revoked")] == [{}]


# verify_key and mark_used


def test_a_key_verifies_until_it_is_revoked(owner):
    issued = lifecycle.issue_key(owner=owner, name="n")
    verdict = lifecycle.verify_key(issued.plaintext)
    assert isinstance(verdict, lifecycle.Verification)
    assert (verdict.api_key, verdict.rejection, verdict.outcome, verdict.secret) == (
        issued.api_key,
        None,
        "valid",
        "current",
    )
    assert verdict.api_key.scope_codes == frozenset(issued.api_key.scopes.values_list("code", flat=True))
    lifecycle.revoke_key(ApiKey.objects.for_owner(owner).get(pk=issued.api_key.pk))
    assert lifecycle.verify_key(issued.plaintext) == lifecycle.Verification(
        None, lifecycle.Rejection.INVALID, "revoked", "current"
    )


@pytest.mark.parametrize(
    ("candidate", "outcome"),
    [
        ("", "malformed"),
        ("omi_dev_", "malformed"),
        ("omi_dev_" + "0" * 32, "not_found"),
        ("not a key", "malformed"),
        ("omi_dev_" + "G" * 32, "malformed"),
    ],
)
def test_unknown_or_malformed_keys_do_not_verify(owner, candidate, outcome):
    lifecycle.issue_key(owner=owner, name="n")
    assert lifecycle.verify_key(candidate) == lifecycle.Verification(None, lifecycle.Rejection.INVALID, outcome)


def test_an_expired_key_or_an_inactive_owner_does_not_verify(owner):
    expiring = lifecycle.issue_key(owner=owner, name="n")
    expire(expiring.api_key)
    assert lifecycle.verify_key(expiring.plaintext) == lifecycle.Verification(
        None, lifecycle.Rejection.EXPIRED, "expired", "current"
    )

    other = User.objects.for_firebase("uid-2", None)
    theirs = lifecycle.issue_key(owner=other, name="n")
    User.objects.filter(pk=other.pk).update(is_active=False)
    assert lifecycle.verify_key(theirs.plaintext) == lifecycle.Verification(
        None, lifecycle.Rejection.INVALID, "owner_inactive", "current"
    )


def test_a_key_stored_under_its_legacy_whole_key_hash_verifies_by_either_secret(owner):
    """Keys issued before omikeys adopted Omi's hash are stored as the tagged hash of the whole key (migration 0007)."""
    issued = lifecycle.issue_key(owner=owner, name="legacy")
    ApiKey.objects.filter(pk=issued.api_key.pk).update(key_hash=crypto.legacy_hash_key(issued.plaintext))

    verdict = lifecycle.verify_key(issued.plaintext)
    assert (verdict.api_key.pk, verdict.outcome, verdict.secret) == (issued.api_key.pk, "valid", "current")
    rotated = lifecycle.rotate_key(ApiKey.objects.get(pk=issued.api_key.pk), grace_seconds=3600)
    replaced = lifecycle.verify_key(issued.plaintext)  # now the key's previous_key_hash, still the legacy form
    assert (replaced.api_key.pk, replaced.outcome, replaced.secret) == (issued.api_key.pk, "valid", "replaced")
    assert lifecycle.verify_key(rotated.plaintext).secret == "current"


# judge_key: the verdict every door gives


def test_nothing_usable_presented_is_judged_as_a_malformed_key(settings):
    """``presented=None`` (a header that cannot hold a key) gets a malformed key's verdict and counts as a failure."""
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (2, 60)
    verdict = lifecycle.judge_key(None, client_address="203.0.113.30")

    assert (verdict.code, verdict.api_key, verdict.retry_after) == (lifecycle.Code.MALFORMED, None, None)
    assert verdict.verification == lifecycle.verify_key("not a key")
    assert verdict.verification.rejection == lifecycle.Rejection.INVALID
    lifecycle.judge_key(None, client_address="203.0.113.30")  # the second failure fills the limit
    assert lifecycle.judge_key(None, client_address="203.0.113.30").code == lifecycle.Code.RATE_LIMITED


def test_a_failure_over_a_lowered_rate_is_rate_limited_with_what_was_found(owner, clock, settings):
    """An address already past a rate an operator lowers is refused at its next failed attempt, not let
    through: the attempt was looked up (its verification is kept) and the wait is when its failures leave
    the period (one-second slots for a minute: the slot of ``NOW`` leaves at ``NOW`` + 61 s)."""
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (5, 60)
    address = "203.0.113.31"
    unknown = "omi_dev_" + "7" * 32
    codes = [lifecycle.judge_key(unknown, client_address=address).code for _ in range(3)]
    settings.OMIKEYS_FAILED_VERIFICATION_RATE = (2, 60)

    over = lifecycle.judge_key(unknown, client_address=address)

    assert codes == [lifecycle.Code.NOT_FOUND] * 3
    assert (over.code, over.retry_after, over.api_key) == (lifecycle.Code.RATE_LIMITED, 61, None)
    assert over.verification == lifecycle.Verification(None, lifecycle.Rejection.INVALID, "not_found")
    valid = lifecycle.issue_key(owner=owner, name="valid").plaintext
    after = lifecycle.judge_key(valid, client_address=address)  # blocked now: nothing is looked up
    assert (after.code, after.retry_after, after.verification) == (lifecycle.Code.RATE_LIMITED, 61, None)


def test_mark_used_writes_at_most_once_per_interval(owner, clock, settings, django_assert_num_queries):
    settings.OMIKEYS_LAST_USED_INTERVAL = 60
    api_key = lifecycle.issue_key(owner=owner, name="n").api_key

    assert lifecycle.mark_used(api_key) is True
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == NOW
    clock.shift(datetime.timedelta(seconds=59))
    with django_assert_num_queries(0):
        assert lifecycle.mark_used(api_key) is False
    clock.shift(datetime.timedelta(seconds=1))
    assert lifecycle.mark_used(api_key) is True
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == NOW + datetime.timedelta(seconds=60)
    stale = ApiKey.objects.get(pk=api_key.pk)
    stale.last_used_at = None  # another process's copy, loaded before this write
    assert lifecycle.mark_used(stale) is False


def test_mark_used_stamps_only_the_key_it_is_given(owner, clock, settings):
    settings.OMIKEYS_LAST_USED_INTERVAL = 60
    used = lifecycle.issue_key(owner=owner, name="used").api_key
    lifecycle.issue_key(owner=owner, name="never used")
    long_ago = lifecycle.issue_key(owner=owner, name="used long ago").api_key
    earlier = NOW - datetime.timedelta(days=3)
    ApiKey.objects.filter(pk=long_ago.pk).update(last_used_at=earlier)

    assert lifecycle.mark_used(used) is True
    assert used.last_used_at == NOW
    stamps = dict(ApiKey.objects.values_list("name", "last_used_at"))
    assert stamps == {"used": NOW, "never used": None, "used long ago": earlier}


def test_mark_used_stamps_a_key_last_used_exactly_one_interval_ago(owner, clock, settings):
    settings.OMIKEYS_LAST_USED_INTERVAL = 60
    api_key = lifecycle.issue_key(owner=owner, name="n").api_key
    then = NOW - datetime.timedelta(seconds=60)
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=then)
    api_key.last_used_at = then
    assert lifecycle.mark_used(api_key) is True
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == NOW


# The rules doors read: default scopes and grace periods; the exceptions' family


def test_default_scopes_are_the_read_only_ones_sorted_by_code():
    defaults = lifecycle.default_scopes()
    assert [scope.code for scope in defaults] == sorted(
        Scope.objects.filter(is_default=True).values_list("code", flat=True)
    )
    assert defaults and all(scope.code.endswith(":read") for scope in defaults)


def test_the_grace_periods_end_at_the_longest_allowed():
    assert list(lifecycle.GRACE_PERIODS) == [0, 3600, 86400, 604800]
    assert lifecycle.MAX_GRACE_SECONDS == 7 * 24 * 60 * 60


@pytest.mark.parametrize(
    "exception",
    [
        lifecycle.OwnerNotEligible,
        lifecycle.AlreadyIssued,
        lifecycle.TooManyKeys,
        lifecycle.NotChangeable,
        lifecycle.KeyRevoked,
        lifecycle.NotRotatable,
        lifecycle.AlreadyRotated,
    ],
)
def test_every_lifecycle_refusal_shares_one_base_class(exception):
    assert issubclass(exception, lifecycle.LifecycleError)
    assert not issubclass(exception, ValidationError)


# Scope.objects.resolve: the one resolver of scope codes


def test_resolve_returns_the_scopes_in_the_order_given_each_once():
    resolved = Scope.objects.resolve(["memories:write", "goals:read", "memories:write"])
    assert [scope.code for scope in resolved] == ["memories:write", "goals:read"]
    assert Scope.objects.resolve([]) == []


def test_resolve_names_every_unknown_code_as_a_scopes_error():
    with pytest.raises(ValidationError) as refused:
        Scope.objects.resolve(["memories:read", "widgets:read", "%(boom)s", "widgets:read"])
    (problem,) = refused.value.error_dict["scopes"]
    assert problem.code == "unknown_scope"
    assert problem.params["unknown"] == ["widgets:read", "%(boom)s"]
    valid = ", ".join(sorted(Scope.objects.values_list("code", flat=True)))
    assert refused.value.messages == [f"Unknown scopes 'widgets:read', '%(boom)s'. Valid scopes: {valid}."]


def test_resolve_finds_any_string_unknown_without_asking_the_database_about_it(django_assert_num_queries):
    with django_assert_num_queries(1), pytest.raises(ValidationError) as refused:
        Scope.objects.resolve(["memories:read\x00"])  # PostgreSQL refuses NUL bytes in a query
    assert refused.value.error_dict["scopes"][0].params["unknown"] == ["memories:read\x00"]


def test_an_email_longer_than_the_column_is_not_stored():
    user = User.objects.for_firebase("uid-long", "a" * 250 + "@example.com")
    assert User.objects.get(pk=user.pk).email == ""


def test_for_firebase_creates_once_and_syncs_email():
    first = User.objects.for_firebase("uid-3", "a@example.com")
    again = User.objects.for_firebase("uid-3", "b@example.com")
    assert first.pk == again.pk
    assert User.objects.get(pk=first.pk).email == "b@example.com"
    assert first.username == "firebase:uid-3"


# What operators see: one log line per change, naming the key and its owner, never a secret


def lifecycle_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name.startswith("apikeys.lifecycle")]


def test_each_change_logs_one_line_naming_the_key_and_its_owner(
    owner, clock, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level("INFO", logger="apikeys.lifecycle")
    issued = lifecycle.issue_key(owner=owner, name="logged", scopes=scopes("memories:read"))
    api_key, prefix = issued.api_key, issued.api_key.key_prefix
    # Changes are logged once committed: each call here commits (the test's own transaction aside).
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.update_key(api_key, name="renamed", scopes=scopes("goals:read"))
        lifecycle.update_key(api_key, name="renamed")  # no change: no line
    rotated = lifecycle.rotate_key(api_key, grace_seconds=60)
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.set_expiry(api_key, NOW + datetime.timedelta(days=1))
    lifecycle.revoke_key(api_key)
    lifecycle.revoke_key(api_key)  # already revoked: no line
    assert lifecycle_lines(caplog) == [
        f"api key issued id={api_key.pk} owner={owner.pk} prefix={prefix}",
        f"api key updated id={api_key.pk} owner={owner.pk} changes=renamed,scopes_changed",
        f"api key rotated id={api_key.pk} owner={owner.pk} grace=60s",
        f"api key expiry changed id={api_key.pk} owner={owner.pk}",
        f"api key revoked id={api_key.pk} owner={owner.pk}",
    ]
    for secret in (issued.plaintext, rotated.plaintext, crypto.hash_key(issued.plaintext)):
        assert secret not in caplog.text


def test_a_stamp_waits_briefly_for_sqlites_write_lock_then_the_usual_wait_again(owner):
    """On SQLite the stamp's write waits at most STAMP_LOCK_WAIT_MS for the lock; other writes keep theirs."""
    api_key = lifecycle.issue_key(owner=owner, name="n").api_key
    connection.ensure_connection()
    usual_ms = int(connection.settings_dict["OPTIONS"].get("timeout", 5) * 1000) if connection.vendor == "sqlite" else 0

    def busy_timeout():
        return connection.connection.execute("PRAGMA busy_timeout").fetchone()[0]

    waits = []

    def watch(execute, sql, params, many, context):
        if sql.startswith("UPDATE"):
            waits.append(busy_timeout() if connection.vendor == "sqlite" else None)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        assert lifecycle.mark_used(api_key) is True
    if connection.vendor == "sqlite":
        assert waits == [50] and usual_ms > 50
        assert busy_timeout() == usual_ms
    else:
        assert waits == [None]


@pytest.mark.django_db(transaction=True)  # as on the verification path: no transaction around the stamp
def test_a_stamp_the_database_refuses_is_skipped_and_logged(owner, caplog, contract_scopes):
    """Any database error on the stamp (a lock held elsewhere, say) skips it: the verification stands."""
    from django.db import OperationalError

    api_key = lifecycle.issue_key(owner=owner, name="n").api_key

    def locked(execute, sql, params, many, context):
        if sql.startswith("UPDATE"):
            raise OperationalError("database is locked")
        return execute(sql, params, many, context)

    caplog.set_level("INFO", logger="apikeys.lifecycle")
    with connection.execute_wrapper(locked):
        assert lifecycle.mark_used(api_key) is False
    assert api_key.last_used_at is None
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at is None
    assert lifecycle_lines(caplog)[-1] == f"last_used_at of key {api_key.pk} not stamped this time: OperationalError"
    assert lifecycle.mark_used(api_key) is True  # the next use tries again


# What each refusal says: the doors show these sentences to people as they are


def test_every_refusal_of_a_change_says_why_in_words(owner, clock):
    revoked = lifecycle.issue_key(owner=owner, name="gone").api_key
    lifecycle.revoke_key(revoked)
    expired = lifecycle.issue_key(owner=owner, name="old").api_key
    expire(expired)
    rotated = lifecycle.issue_key(owner=owner, name="rotated").api_key
    seen = rotated.key_prefix
    lifecycle.rotate_key(rotated)
    cases = {
        "rename revoked": (
            lambda: lifecycle.update_key(revoked, name="x"),
            "This key has been revoked; it cannot change.",
        ),
        "rotate revoked": (
            lambda: lifecycle.rotate_key(revoked),
            "This key has been revoked; a revoked key cannot be rotated.",
        ),
        "expiry of revoked": (
            lambda: lifecycle.set_expiry(revoked, NOW + datetime.timedelta(days=1)),
            "This key has been revoked; its expiry cannot change.",
        ),
        "rotate expired": (
            lambda: lifecycle.rotate_key(expired),
            "This key has expired; an expired key cannot be rotated.",
        ),
        "rotated meanwhile": (
            lambda: lifecycle.rotate_key(rotated, expected_prefix=seen),
            f"The key {rotated.pk} was rotated already.",
        ),
    }
    said = {}
    for name, (change, _) in cases.items():
        with pytest.raises(lifecycle.LifecycleError) as refused:
            change()
        said[name] = str(refused.value)
    assert said == {name: words for name, (_, words) in cases.items()}


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("inactive", "This account has been deactivated; it cannot hold API keys."),
        ("no_firebase_uid", "Only users who sign in with Firebase can hold API keys."),
        ("firebase_disabled", "This Firebase account has been disabled; it cannot hold API keys."),
    ],
)
def test_an_owner_refused_is_told_why(owner, reason, words):
    assert str(lifecycle.OwnerNotEligible(owner, reason)) == words


def test_each_rule_of_a_field_says_what_is_allowed(owner, clock, settings):
    settings.OMIKEYS_MAX_KEY_LIFETIME_DAYS = 30
    cases = {
        "naive": (datetime.datetime(2027, 7, 1), "Give the expiry with a time zone, for example 2027-01-31T00:00:00Z."),
        "now": (NOW, "The expiry must be in the future."),
        "too late": (NOW + datetime.timedelta(days=30, seconds=1), "The expiry must be at most 30 days from now."),
    }
    for name, (expires_at, words) in cases.items():
        with pytest.raises(ValidationError) as refused:
            lifecycle.issue_key(owner=owner, name="n", expires_at=expires_at)
        assert refused.value.message_dict == {"expires_at": [words]}, name
    lifecycle.validate_expiry(NOW + datetime.timedelta(days=30))  # the last moment allowed
    lifecycle.validate_expiry(NOW + datetime.timedelta(seconds=1))
    issued = lifecycle.issue_key(owner=owner, name="n")
    with pytest.raises(ValidationError) as refused:
        lifecycle.rotate_key(issued.api_key, grace_seconds=lifecycle.MAX_GRACE_SECONDS + 1)
    assert refused.value.message_dict == {
        "grace_seconds": ["The grace period must be between 0 and 604800 seconds (7 days)."]
    }
    lifecycle.rotate_key(issued.api_key, grace_seconds=lifecycle.MAX_GRACE_SECONDS)  # the longest allowed
    assert lifecycle.GRACE_PERIODS == {0: "immediately", 3600: "1 hour", 86400: "24 hours", 604800: "7 days"}


def verdict_of(plaintext: str) -> tuple:
    verdict = lifecycle.verify_key(plaintext)
    return (verdict.api_key is not None, verdict.rejection, verdict.outcome, verdict.secret)


def test_every_verdict_of_a_replaced_secret(owner, clock):
    """A replaced secret verifies during its grace, then says "grace_ended"; if the key's expiry cut the
    grace short, it says the key expired, as the current secret does."""
    hour = datetime.timedelta(hours=1)
    plain = lifecycle.issue_key(owner=owner, name="plain")
    plain_new = lifecycle.rotate_key(plain.api_key, grace_seconds=3600)
    short = lifecycle.issue_key(owner=owner, name="short", expires_at=NOW + 2 * hour)
    short_new = lifecycle.rotate_key(short.api_key, grace_seconds=3 * 3600)  # the grace ends with the key
    assert verdict_of(plain.plaintext) == (True, None, "valid", "replaced")
    assert verdict_of(plain_new.plaintext) == (True, None, "valid", "current")
    during = lifecycle.verify_key(short.plaintext).api_key
    assert during.replaced_secret_sunset == NOW + 2 * hour
    assert lifecycle.verify_key(short_new.plaintext).api_key.replaced_secret_sunset is None

    clock.shift(90 * 60)  # the plain key's grace is over; the short key has half an hour left
    assert verdict_of(plain.plaintext) == (False, lifecycle.Rejection.INVALID, "grace_ended", "replaced")
    assert verdict_of(short.plaintext) == (True, None, "valid", "replaced")

    clock.shift(datetime.timedelta(hours=1))  # the short key has expired, and its grace with it
    expired = (False, lifecycle.Rejection.EXPIRED, "expired")
    assert verdict_of(short.plaintext) == (*expired, "replaced")
    assert verdict_of(short_new.plaintext) == (*expired, "current")
    assert lifecycle.Rejection.EXPIRED == "Invalid API Key: this key has expired."
    assert lifecycle.Rejection.INVALID == "Invalid API Key"


def test_a_replaced_secret_of_an_expiring_key_ends_with_its_grace_not_its_expiry(owner, clock):
    key = lifecycle.issue_key(owner=owner, name="k", expires_at=NOW + datetime.timedelta(days=2))
    lifecycle.rotate_key(key.api_key, grace_seconds=3600)
    clock.shift(datetime.timedelta(hours=2))
    assert verdict_of(key.plaintext) == (False, lifecycle.Rejection.INVALID, "grace_ended", "replaced")
    clock.shift(datetime.timedelta(days=3))  # the key has expired since: its replaced secret ended before that
    assert verdict_of(key.plaintext) == (False, lifecycle.Rejection.INVALID, "grace_ended", "replaced")
