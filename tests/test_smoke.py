from fastapi.testclient import TestClient

from tests.conftest import Tenant


def test_health_and_list_roundtrip(client: TestClient, tenant: Tenant) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.post(
        "/api/lists.create",
        headers=tenant.headers,
        json={"workspace_id": tenant.id, "id": "news", "name": "News"},
    )
    assert r.status_code == 201, r.text
    r = client.get("/api/lists.list", params={"workspace_id": tenant.id}, headers=tenant.headers)
    assert [item["id"] for item in r.json()["lists"]] == ["news"]
