"""URLs of the end-user pages (namespace ``web``)."""

from django.urls import path
from django.views.generic import RedirectView

from . import accounts, views

app_name = "web"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="web:key-list"), name="home"),
    path("signin/", accounts.sign_in, name="signin"),
    path("signup/", accounts.sign_in, {"mode": "signup"}, name="signup"),
    path("signout/", accounts.sign_out, name="signout"),
    path("keys/", views.key_list, name="key-list"),
    path("keys/new/", views.key_create, name="key-create"),
    path("keys/<uuid:key_id>/", views.key_detail, name="key-detail"),
    path("keys/<uuid:key_id>/rotate/", views.key_rotate, name="key-rotate"),
    path("keys/<uuid:key_id>/revoke/", views.key_revoke, name="key-revoke"),
]
