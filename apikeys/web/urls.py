"""URLs of the end-user pages (namespace ``web``)."""

import uuid

from django.urls import path, register_converter
from django.views.generic import RedirectView

from . import accounts, views


class KeyIdConverter:
    """A key id as the API takes it: any form ``uuid.UUID`` reads (either case, with or without hyphens).

    Django's ``uuid`` converter matches lowercase only, so the same key would be a 404 here
    and found by the API. URLs are built lowercase; views redirect a GET to that form.
    """

    regex = r"[0-9A-Fa-f-]{32,36}"

    def to_python(self, value: str) -> uuid.UUID:
        return uuid.UUID(value)  # a ValueError makes the URL not match: 404

    def to_url(self, value) -> str:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


register_converter(KeyIdConverter, "key_id")

app_name = "web"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="web:key-list"), name="home"),
    path("signin/", accounts.sign_in, name="signin"),
    path("signup/", accounts.sign_in, {"mode": "signup"}, name="signup"),
    path("signout/", accounts.sign_out, name="signout"),
    path("keys/", views.key_list, name="key-list"),
    path("keys/new/", views.key_create, name="key-create"),
    path("keys/<key_id:key_id>/", views.key_detail, name="key-detail"),
    path("keys/<key_id:key_id>/rotate/", views.key_rotate, name="key-rotate"),
    path("keys/<key_id:key_id>/edit/", views.key_edit, name="key-edit"),
    path("keys/<key_id:key_id>/disable/", views.key_disable, name="key-disable"),
    path("keys/<key_id:key_id>/enable/", views.key_enable, name="key-enable"),
    path("keys/<key_id:key_id>/revoke/", views.key_revoke, name="key-revoke"),
    path("settings/notifications/", views.notification_settings, name="notification-settings"),
]
