"""The project's URLs plus the two bench-only endpoints.

The bench routes come first, so the project's own routes are matched exactly as
in production, only after two extra (failed) pattern checks: if anything, this
costs GET /v1/dev/key a few microseconds, never the other way round.
"""

from django.urls import path

from omikeys_project import urls as project_urls

from . import views

urlpatterns = [
    path("bench/open", views.OpenView.as_view(), name="bench-open"),
    path("bench/drf-api-key", views.LibraryKeyView.as_view(), name="bench-drf-api-key"),
    *project_urls.urlpatterns,
]

handler400 = project_urls.handler400
handler404 = project_urls.handler404
handler500 = project_urls.handler500
