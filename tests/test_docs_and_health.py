"""The served OpenAPI document, the offline docs page and the health check."""

import re

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db


def test_the_openapi_document_is_served_as_json(api):
    response = api.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/v1/dev/keys",
        "/v1/dev/keys/{key_id}",
        "/v1/dev/keys/{key_id}/rotate",
        "/v1/dev/keys/{key_id}/disable",
        "/v1/dev/keys/{key_id}/enable",
        "/v1/dev/keys/{key_id}/usage",
        "/v1/dev/key",
        "/v1/service/keys/verify",
        "/v1/service/users/{uid}/keys",
        "/v1/service/users/{uid}/keys/revoke",
        "/v1/service/users/{uid}/erase",
        "/v1/leaks/github",
        "/v1/leaks/report",
    }
    assert document["components"]["securitySchemes"]["firebaseBearer"]["scheme"] == "bearer"
    assert document["components"]["securitySchemes"]["apiKeyBearer"]["scheme"] == "bearer"
    assert document["components"]["securitySchemes"]["serviceBearer"]["scheme"] == "bearer"
    service_operations = [
        operation
        for path, item in document["paths"].items()
        if path.startswith("/v1/service/")
        for operation in item.values()
    ]
    assert len(service_operations) == 4
    for operation in service_operations:
        assert operation["security"] == [{"serviceBearer": []}]
        assert {"401", "403", "422", "429", "503"} <= set(operation["responses"])
        if "requestBody" in operation:  # a body over 16 KB is 413
            assert "413" in operation["responses"]


def test_the_docs_page_loads_nothing_from_other_hosts(api):
    response = api.get("/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/openapi.json" in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets
    assert not [url for url in assets if url.startswith(("http:", "https:", "//"))]
    for url in assets:
        path = url.split("?")[0].removeprefix("/static/")
        assert finders.find(path), f"{url} is not one of our static files"


def test_health_answers_ok_without_touching_the_database(api, django_assert_num_queries):
    """Liveness never queries the database: an outage is readiness's business (/readyz)."""
    with django_assert_num_queries(0):
        response = api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
