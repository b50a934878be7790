"""Routes of the leak reports, under /v1/leaks/."""

from django.urls import path

from . import views

app_name = "leaks"

urlpatterns = [
    path("v1/leaks/github", views.GitHubLeakView.as_view(), name="github"),
    path("v1/leaks/report", views.LeakReportView.as_view(), name="report"),
]
