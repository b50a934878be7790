"""Routes of the key API, under /v1/dev/."""

from django.urls import path

from . import views

app_name = "api"

urlpatterns = [
    path("v1/dev/keys", views.KeyListCreateView.as_view(), name="key-list"),
    path("v1/dev/keys/<str:key_id>", views.KeyDetailView.as_view(), name="key-detail"),
    path("v1/dev/keys/<str:key_id>/usage", views.KeyUsageView.as_view(), name="key-usage"),
    path("v1/dev/keys/<str:key_id>/rotate", views.KeyRotateView.as_view(), name="key-rotate"),
    path("v1/dev/keys/<str:key_id>/disable", views.KeyDisableView.as_view(), name="key-disable"),
    path("v1/dev/keys/<str:key_id>/enable", views.KeyEnableView.as_view(), name="key-enable"),
    path("v1/dev/key", views.CallingKeyView.as_view(), name="calling-key"),
]
