"""Top-level routes: the key API, the service API, the leak reports and their docs, the end-user pages, the
admin, health and readiness checks, metrics."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from apikeys import views as apikeys_views

urlpatterns = [
    path("", include("apikeys.api.urls")),
    path("", include("apikeys.service.urls")),
    path("", include("apikeys.leaks.urls")),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="api-docs"),
    path("healthz", apikeys_views.health, name="health"),
    path("metrics", apikeys_views.MetricsView.as_view(), name="metrics"),
    path("readyz", apikeys_views.readiness, name="readiness"),
    path("admin/", admin.site.urls),
    path("", include("apikeys.web.urls")),
]

handler400 = "apikeys.api.errors.bad_request"
handler404 = "apikeys.api.errors.not_found"
handler500 = "apikeys.api.errors.server_error"
