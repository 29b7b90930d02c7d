"""/health and /metrics: public, and honest about the database."""

from __future__ import annotations

from fastapi.testclient import TestClient

from voiceseal.api.app import create_app
from voiceseal.runtime import Runtime
from voiceseal.settings import Settings


def test_health_ok(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] == "ok"


def test_metrics_counts_requests_by_route_template(client: TestClient, admin_key: str) -> None:
    client.get("/v1/tenants/ten_does_not_exist", headers={"Authorization": f"Bearer {admin_key}"})
    client.get("/health")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'voiceseal_http_requests_total{method="GET",route="/v1/tenants/{tenant_id}",status="404"} 1.0'
        in text
    )
    assert 'voiceseal_http_requests_total{method="GET",route="/health",status="200"} 1.0' in text
    assert "voiceseal_http_request_duration_seconds_bucket" in text
    assert 'voiceseal_build_info{version="' in text
    # Raw paths (ids) never become labels.
    assert "ten_does_not_exist" not in text


def test_metrics_are_per_app(settings: Settings, runtime: Runtime) -> None:
    with TestClient(create_app(settings, runtime=runtime)) as first:
        first.get("/health")
        first.get("/health")
    with TestClient(create_app(settings, runtime=runtime)) as second:
        text = second.get("/metrics").text
    assert 'voiceseal_http_requests_total{method="GET",route="/health"' not in text


def test_health_503_when_database_unreachable(
    unreachable_settings: Settings, runtime: Runtime
) -> None:
    with TestClient(create_app(unreachable_settings, runtime=runtime)) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"
