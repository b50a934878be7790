"""Routes of the service API, under /v1/service/."""

from django.urls import path

from . import views

app_name = "service"

urlpatterns = [
    path("v1/service/keys/verify", views.VerifyKeyView.as_view(), name="verify-key"),
    path("v1/service/users/<str:uid>/keys", views.UserKeysView.as_view(), name="user-keys"),
    path("v1/service/users/<str:uid>/keys/revoke", views.RevokeUserKeysView.as_view(), name="revoke-user-keys"),
    path("v1/service/users/<str:uid>/erase", views.EraseUserView.as_view(), name="erase-user"),
]
