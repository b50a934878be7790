"""The key list page: the signed-in person's unrevoked keys, or the empty state."""

import pytest
from django.urls import reverse

from apikeys import lifecycle
from apikeys.models import Scope

from ..helpers import expire, in_days
from .pages import firebase_user

pytestmark = pytest.mark.django_db


def test_a_first_time_user_sees_the_empty_state(person):
    page = person.get(reverse("web:key-list")).content.decode()
    assert "No keys yet" in page
    assert "Create your first key" in page


def test_the_list_shows_only_my_unrevoked_keys(person):
    mine = lifecycle.issue_key(owner=person.user, name="Mine", scopes=Scope.objects.filter(code="goals:write"))
    gone = lifecycle.issue_key(owner=person.user, name="Gone")
    lifecycle.revoke_key(gone.api_key)
    lifecycle.issue_key(owner=firebase_user(), name="Theirs")
    page = person.get(reverse("web:key-list")).content.decode()
    assert "Mine" in page and mine.api_key.key_prefix in page and "goals:write" in page
    assert "never" in page
    assert "Gone" not in page and "Theirs" not in page
    assert "No keys yet" not in page


def test_the_list_costs_the_same_queries_for_many_keys(person, django_assert_max_num_queries):
    for i in range(12):
        issued = lifecycle.issue_key(owner=person.user, name=f"k{i}", expires_at=in_days(1))
        if i % 3 == 0:
            expire(issued.api_key)
    person.get(reverse("web:key-list"))  # the periodic account check writes the session once
    with django_assert_max_num_queries(4):
        person.get(reverse("web:key-list"))
