"""The scope admin: active-key counts, and codes that cannot change while keys use them."""

import pytest

from apikeys import lifecycle
from apikeys.admin.forms import ScopeAdminForm
from apikeys.models import ApiKey, Scope

from ..helpers import issue
from .pages import SCOPE_CHANGELIST, row_of, scope_url, scopes, user_url

pytestmark = pytest.mark.django_db


def test_scope_list_counts_only_active_keys_and_sorts_by_that_count(admin_client, alice):
    issue(alice, "One", ["memories:write", "memories:read"])
    issue(alice, "Two", ["memories:write"])
    lifecycle.revoke_key(issue(alice, "Three", ["memories:write", "goals:read"]).api_key)

    response = admin_client.get(SCOPE_CHANGELIST)

    cl = response.context["cl"]
    counts = {scope.code: scope.active_key_count for scope in cl.result_list}
    assert counts["memories:write"] == 2
    assert counts["memories:read"] == 1
    assert counts["goals:read"] == 0
    assert counts["goals:write"] == 0
    assert '<td class="field-active_key_count">2</td>' in row_of(response.content.decode(), "memories:write")
    column = cl.list_display.index("active_key_count")
    by_count = admin_client.get(SCOPE_CHANGELIST, {"o": f"-{column}"}).context["cl"].result_list
    assert [scope.code for scope in by_count][:2] == ["memories:write", "memories:read"]


def test_a_scope_used_only_by_a_revoked_key_keeps_its_code_and_cannot_be_deleted(admin_client, alice):
    lifecycle.revoke_key(issue(alice, "Old", ["goals:write"]).api_key)
    (scope,) = scopes("goals:write")

    page = admin_client.get(scope_url(scope))
    assert set(page.context["adminform"].form.fields) == {"description", "is_default"}
    assert 'name="code"' not in page.content.decode()
    response = admin_client.post(
        scope_url(scope), {"code": "goals:rewrite", "description": "New words", "is_default": ""}
    )

    assert response.status_code == 302
    scope.refresh_from_db()
    assert (scope.code, scope.description) == ("goals:write", "New words")
    assert admin_client.get(scope_url(scope, "delete")).status_code == 403
    assert admin_client.post(scope_url(scope, "delete"), {"post": "yes"}).status_code == 403
    assert admin_client.get(SCOPE_CHANGELIST).context["action_form"] is None  # no bulk delete
    assert Scope.objects.filter(code="goals:write").count() == 1
    assert ApiKey.objects.get().scopes.get() == scope


def test_an_unused_scope_can_be_renamed_and_deleted(admin_client):
    scope = Scope.objects.create(code="widgets:read", description="Read widgets")

    response = admin_client.post(scope_url(scope), {"code": "gadgets:read", "description": "Read gadgets"})
    assert response.status_code == 302
    scope.refresh_from_db()
    assert scope.code == "gadgets:read"

    assert admin_client.post(scope_url(scope, "delete"), {"post": "yes"}).status_code == 302
    assert not Scope.objects.filter(pk=scope.pk).exists()


def test_scope_form_refuses_a_new_code_for_a_scope_in_use(alice):
    issue(alice, "Uses it", ["goals:read"])
    (used,) = scopes("goals:read")
    unused = Scope.objects.create(code="widgets:read", description="Read widgets")

    used_form = ScopeAdminForm(data={"code": "goals:peek", "description": "d"}, instance=used)
    assert not used_form.is_valid()
    assert used_form.errors.as_data()["code"][0].code == "scope_in_use"
    assert ScopeAdminForm(data={"code": "goals:read", "description": "d"}, instance=used).is_valid()
    assert ScopeAdminForm(data={"code": "widgets:peek", "description": "d"}, instance=unused).is_valid()


def test_scope_changelist_and_user_page_queries_stay_bounded(admin_client, alice, django_assert_max_num_queries):
    for n in range(12):
        issue(alice, f"Key {n}", ["memories:read", "goals:write"])

    with django_assert_max_num_queries(6):
        assert admin_client.get(SCOPE_CHANGELIST).status_code == 200
    with django_assert_max_num_queries(12):
        assert admin_client.get(user_url(alice)).status_code == 200
