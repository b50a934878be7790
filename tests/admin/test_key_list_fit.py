"""The admin's key list and add form: no stray filter choice, no owner made without Firebase, fits 1280 px."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from apikeys import lifecycle
from apikeys.models import ApiKey, Scope, User

from .pages import KEY_ADD, KEY_CHANGELIST


def filter_named(response, title):
    return next(spec for spec in response.context["cl"].filter_specs if spec.title == title)


@pytest.mark.django_db
def test_the_scope_filter_offers_each_scope_and_no_empty_choice(admin_client):
    response = admin_client.get(KEY_CHANGELIST)

    scope_filter = filter_named(response, "scopes")
    choices = [choice["display"] for choice in scope_filter.choices(response.context["cl"])]
    assert choices == ["All", *Scope.objects.order_by("code").values_list("code", flat=True)]
    assert "scopes__isnull" not in response.content.decode()


@pytest.mark.django_db
def test_the_add_form_offers_no_way_to_create_an_owner(admin_client):
    html = admin_client.get(KEY_ADD).content.decode()

    assert 'id="id_owner"' in html
    assert "add-related" not in html
    assert 'id="add_id_owner"' not in html
    assert reverse("admin:apikeys_user_add") not in html


@pytest.mark.django_db
def test_the_owner_field_searches_users_as_the_user_list_does(admin_client, alice, bob):
    response = admin_client.get(
        reverse("admin:autocomplete"),
        {"app_label": "apikeys", "model_name": "apikey", "field_name": "owner", "term": "alice"},
    )

    assert response.status_code == 200
    assert [result["id"] for result in response.json()["results"]] == [str(alice.pk)]


@pytest.mark.django_db
def test_the_owner_field_offers_only_users_who_may_hold_keys(admin_client, alice, admin_user):
    inactive = User.objects.for_firebase("uid-inactive", "alice.inactive@example.com")
    User.objects.filter(pk=inactive.pk).update(is_active=False)
    admin_user.email = "alice.staff@example.com"
    admin_user.save()
    search = {"app_label": "apikeys", "model_name": "apikey", "field_name": "owner", "term": "alice"}

    response = admin_client.get(reverse("admin:autocomplete"), search)

    assert [result["id"] for result in response.json()["results"]] == [str(alice.pk)]
    form = admin_client.get(KEY_ADD).context["adminform"].form
    assert list(form.fields["owner"].queryset) == [alice]
    # The user list itself still finds everyone.
    everyone = admin_client.get(reverse("admin:apikeys_user_changelist"), {"q": "alice"}).context["cl"].result_list
    assert {user.pk for user in everyone} == {alice.pk, inactive.pk, admin_user.pk}


@pytest.mark.django_db
def test_the_add_form_takes_its_first_values_from_the_query_string(admin_client, alice):
    response = admin_client.get(KEY_ADD, {"owner": alice.pk, "name": "Nightly export"})

    form = response.context["adminform"].form
    assert (form.initial["owner"], form.initial["name"]) == (str(alice.pk), "Nightly export")
    assert 'value="Nightly export"' in response.content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("contract_scopes")
@pytest.mark.parametrize("width", [1280, 1366, 1440])
def test_the_key_list_shows_status_and_expiry_within_a_laptop_screen(browser, live_server, django_user_model, width):
    django_user_model.objects.create_superuser("staff", "staff@example.com", "staff-password-1")
    owner = User.objects.for_firebase("Xq3rT9kLmN2pVw8sYz4aBc6dEf01", "maria.gonzalez-fernandez@example.com")
    everything = list(Scope.objects.all())
    soon = timezone.now() + datetime.timedelta(days=90)
    lifecycle.issue_key(owner=owner, name="Nightly memories export", scopes=everything, expires_at=soon)
    expired = lifecycle.issue_key(owner=owner, name="CI smoke tests", expires_at=soon).api_key
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - datetime.timedelta(days=2))
    lifecycle.revoke_key(lifecycle.issue_key(owner=owner, name="x" * 100, scopes=everything).api_key)
    context = browser.new_context(base_url=live_server.url, viewport={"width": width, "height": 800})
    try:
        page = context.new_page()
        page.goto(reverse("admin:login"))
        page.get_by_label("Username").fill("staff")
        page.get_by_label("Password").fill("staff-password-1")
        page.get_by_role("button", name="Log in").click()
        page.goto(KEY_CHANGELIST)

        results = page.locator("#changelist .results").bounding_box()
        visible_right = min(width, results["x"] + results["width"])
        for column in ("status", "expires"):
            cells = page.locator(f"#result_list td.field-{column}")
            assert cells.count() == 3
            for box in (cell.bounding_box() for cell in cells.all()):
                assert box["x"] >= 0 and box["x"] + box["width"] <= visible_right, (column, box, visible_right)
        assert page.evaluate("document.querySelector('#changelist .results').scrollWidth") <= results["width"]
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        statuses = page.locator("#result_list td.field-status").all_inner_texts()
        assert sorted(statuses) == ["Active", "Expired", "Revoked"]
    finally:
        context.close()
