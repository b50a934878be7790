"""The admin site itself: how its index and breadcrumbs name the app, its icon."""

from django.urls import reverse

from .pages import KEY_CHANGELIST


def test_the_breadcrumb_names_the_app_and_the_model_apart(admin_client):
    page = admin_client.get(KEY_CHANGELIST).content.decode()
    breadcrumbs = page[page.index('<div class="breadcrumbs">') :]
    breadcrumbs = breadcrumbs[: breadcrumbs.index("</div>")]
    assert ">omikeys</a>" in breadcrumbs
    assert breadcrumbs.count("API keys") == 1


def test_the_index_groups_keys_scopes_events_service_clients_users_and_webhooks_under_omikeys(admin_client):
    response = admin_client.get(reverse("admin:index"))
    (app,) = [app for app in response.context["app_list"] if app["app_label"] == "apikeys"]
    assert app["name"] == "omikeys"
    assert [model["object_name"] for model in app["models"]] == [
        "ApiKey",
        "Notice",
        "KeyEvent",
        "Event",
        "Scope",
        "ServiceClient",
        "User",
        "Delivery",
        "WebhookEndpoint",
    ]


def test_admin_pages_name_the_site_icon_as_the_web_pages_do(client, admin_client):
    """Without a link, browsers ask for /favicon.ico on every admin page: a 404, logged each time."""
    icon = '<link rel="icon" href="/static/apikeys/favicon.svg" type="image/svg+xml">'
    assert icon in client.get(reverse("web:signin")).content.decode()
    assert icon in client.get(reverse("admin:login")).content.decode()
    assert icon in admin_client.get(KEY_CHANGELIST).content.decode()
