"""Staff see what was sent to whom: the admin's read-only list of email notices; and the notices' metric."""

import pytest
from prometheus_client import REGISTRY

from apikeys import lifecycle, notices
from apikeys.models import Notice

from .helpers import issue, make_owner

pytestmark = pytest.mark.django_db
URL = "/admin/apikeys/notice/"


def test_the_list_shows_kind_recipient_key_status_and_the_last_error(admin_client):
    alice = make_owner("uid-alice", "alice@example.com")
    bob = make_owner("uid-bob", "bob@example.com")
    first = issue(alice, "alice's").api_key
    second = issue(bob, "bob's").api_key
    Notice.objects.filter(api_key=second).update(status="failed", attempts=6, last_error="550 5.1.1 No such user")

    page = admin_client.get(URL).content.decode()
    for text in ("alice@example.com", "bob@example.com", first.key_prefix, second.key_prefix, "550 5.1.1 No such user"):
        assert text in page
    assert "a key was created" in page

    found = admin_client.get(URL, {"q": "bob@example.com"}).content.decode()
    assert second.key_prefix in found and first.key_prefix not in found
    by_prefix = admin_client.get(URL, {"q": first.key_prefix}).content.decode()
    assert first.key_prefix in by_prefix and second.key_prefix not in by_prefix
    failed = admin_client.get(URL, {"status__exact": "failed"}).content.decode()
    assert second.key_prefix in failed and first.key_prefix not in failed
    created = admin_client.get(URL, {"kind__exact": "changed_by_other"}).content.decode()
    assert first.key_prefix not in created


def test_notices_cannot_be_added_changed_or_deleted_in_the_admin(admin_client):
    issue(make_owner(), "record")
    notice = Notice.objects.get()
    status = notice.status
    page = admin_client.get(f"{URL}{notice.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert admin_client.get(f"{URL}add/").status_code == 403
    assert admin_client.post(f"{URL}{notice.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.post(f"{URL}{notice.pk}/change/", {"status": "sent"}).status_code == 403
    assert Notice.objects.get().status == status


def test_the_list_costs_the_same_queries_however_many_notices(admin_client, django_assert_max_num_queries):
    owner = make_owner()
    for n in range(3):
        issue(owner, f"k{n}")
    with django_assert_max_num_queries(8) as few:
        admin_client.get(URL)
    for n in range(3, 20):
        issue(owner, f"k{n}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        admin_client.get(URL)


def sample(kind: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("omikeys_notices_total", {"kind": kind, "outcome": outcome}) or 0


def test_notices_are_counted_by_kind_and_outcome_when_their_change_commits(
    settings, django_capture_on_commit_callbacks
):
    settings.OMIKEYS_SEND_EMAIL = False
    before = sample("key_created", "skipped")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        lifecycle.issue_key(owner=make_owner(), name="counted")
    assert sample("key_created", "skipped") == before  # not before the commit
    for callback in callbacks:
        callback()
    assert sample("key_created", "skipped") == before + 1
    with pytest.raises(ValueError):
        notices.metrics.record_notice("key_created", "lost")
