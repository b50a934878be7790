"""A key reported found in public, on its owner's page: where and when it was found, and what was done
(revoked, or only reported: then what to do now); a key never reported shows no such note."""

import pytest
from django.urls import reverse

from apikeys import lifecycle

from .pages import text

pytestmark = pytest.mark.django_db

FOUND_AT = "https://github.com/someone/dotfiles/blob/main/.env"


def test_a_key_revoked_after_a_github_report_says_where_it_was_found_and_that_it_was_revoked(person):
    issued = lifecycle.issue_key(owner=person.user, name="Nightly export")
    lifecycle.handle_leaked_token(issued.plaintext, source="github", url=FOUND_AT)

    words = text(person.get(reverse("web:key-detail", args=[issued.api_key.pk])))

    assert "This key was found in public (reported by GitHub secret scanning," in words
    assert FOUND_AT in words
    assert "Omi revoked it, so nobody can use it." in words
    assert "It still works" not in words


def test_a_key_only_reported_says_it_still_works_and_what_to_do(person, settings):
    settings.OMIKEYS_LEAK_ACTION = "notify"
    issued = lifecycle.issue_key(owner=person.user, name="Nightly export")
    lifecycle.handle_leaked_token(issued.plaintext, source="report", url="")

    response = person.get(reverse("web:key-detail", args=[issued.api_key.pk]))

    words = text(response)
    assert "This key was found in public (reported to Omi," in words
    assert "It still works, so anyone who found it can use it. Rotate it now" in words
    assert "Omi revoked it" not in words
    assert reverse("web:key-rotate", args=[issued.api_key.pk]) in response.content.decode()


def test_a_key_never_reported_has_no_leak_note(person):
    api_key = lifecycle.issue_key(owner=person.user, name="Nightly export").api_key

    page = person.get(reverse("web:key-detail", args=[api_key.pk])).content.decode()

    assert 'id="leak-note"' not in page
    assert "found in public" not in page


def test_a_leaked_secret_replaced_by_a_rotation_says_only_that_secret_stopped(person):
    issued = lifecycle.issue_key(owner=person.user, name="Nightly export")
    lifecycle.rotate_key(issued.api_key, grace_seconds=3600)
    lifecycle.handle_leaked_token(issued.plaintext, source="github", url=FOUND_AT)

    words = text(person.get(reverse("web:key-detail", args=[issued.api_key.pk])))

    assert "The secret found was one this key had before a rotation; it no longer works." in words
    assert "The current secret still works." in words
    assert "Omi revoked it" not in words
