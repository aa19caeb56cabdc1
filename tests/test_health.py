from __future__ import annotations

import httpx


async def test_healthz_reports_version_and_backends(app_client: httpx.AsyncClient) -> None:
    r = await app_client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["version"]
    assert body["database"] in {"sqlite", "postgresql"}
    assert body["pubsub"] == "memory"
    assert body["media"]["backend"] == "embedded"
    assert body["media"]["publishers"] == 0


async def test_openapi_document_is_served(app_client: httpx.AsyncClient) -> None:
    r = await app_client.get("/openapi.json")
    assert r.status_code == 200
    assert r.json()["info"]["title"] == "Junto"
