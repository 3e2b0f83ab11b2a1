"""Every bound of the import and the routes around it answers its documented error just past
the bound, accepts the bound itself, and a maximum-size import leaves the server responsive.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from audience.contacts.validation import JSON_MAX_BYTES, JSON_MAX_DEPTH
from audience.db.models import EMAIL_MAX_LENGTH
from tests.conftest import Tenant
from tests.reliability.conftest import ServerProcess, assert_error_body

MAX_BODY = 32 * 1024 * 1024
MAX_CONTACTS = 10_000
TOO_LARGE = {"error": "request body too large"}


def post_import(client: TestClient, tenant: Tenant, body: Any) -> httpx.Response:
    headers = {**tenant.headers, "Content-Type": "application/json"}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/api/contacts.import", headers=headers, content=content)


def one(client: TestClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    """The operation of a one-contact import."""
    body = {"workspace_id": tenant.id, "contacts": [{"email": "l@example.com", **fields}]}
    response = post_import(client, tenant, body)
    assert response.status_code == 200, response.text
    return dict(response.json()["operations"][0])


def count(client: TestClient, tenant: Tenant) -> int:
    params = {"workspace_id": tenant.id}
    response = client.get("/api/contacts.count", headers=tenant.headers, params=params)
    return int(response.json()["total_contacts"])


def padded_body(size: int) -> bytes:
    """A valid one-contact import body of exactly `size` bytes (whitespace before the `}`)."""
    head = b'{"workspace_id":"acme","contacts":[{"email":"big@example.com"}]'
    return head + b" " * (size - len(head) - 1) + b"}"


def test_body_size_bound_from_content_length(client: TestClient, tenant: Tenant) -> None:
    response = post_import(client, tenant, padded_body(MAX_BODY + 1))
    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    assert count(client, tenant) == 0
    response = post_import(client, tenant, padded_body(MAX_BODY))
    assert response.status_code == 200, response.text[:200]
    assert count(client, tenant) == 1


def test_body_size_bound_while_streaming(client: TestClient, tenant: Tenant) -> None:
    """Without Content-Length the body is cut off as soon as it passes the limit."""

    def chunks() -> Iterator[bytes]:
        yield b'{"workspace_id":"acme","contacts":[{"email":"s@example.com","first_name":"'
        for _ in range(MAX_BODY // (1 << 20) + 1):
            yield b"x" * (1 << 20)
        yield b'"}]}'

    headers = {**tenant.headers, "Content-Type": "application/json"}
    response = client.post("/api/contacts.import", headers=headers, content=chunks())
    assert response.status_code == 413, response.text[:200]
    assert response.json() == TOO_LARGE
    assert count(client, tenant) == 0


def test_contacts_per_request_bound(client: TestClient, tenant: Tenant) -> None:
    contacts = [{"email": f"c{i}@example.com"} for i in range(MAX_CONTACTS + 1)]
    response = post_import(client, tenant, {"workspace_id": tenant.id, "contacts": contacts})
    assert response.status_code == 400
    assert response.json() == {"error": f"contacts array exceeds the maximum of {MAX_CONTACTS}"}
    assert count(client, tenant) == 0


def test_text_length_bound(client: TestClient, tenant: Tenant) -> None:
    assert one(client, tenant, first_name="x" * 255)["action"] == "create"
    assert one(client, tenant, first_name="  " + "y" * 255 + "\u00a0")["action"] == "update"
    op = one(client, tenant, first_name="x" * 256)
    assert op["error"] == "first_name: must be at most 255 characters"
    op = one(client, tenant, custom_string_5="z" * 256)
    assert op["error"] == "custom_string_5: must be at most 255 characters"


def email_of_length(length: int) -> str:
    """A syntactically valid address of exactly `length` characters (local part 64)."""
    local = "a" * 64
    last = length - len(local) - 1 - (63 + 1 + 63 + 1) - len(".com")
    return f"{local}@{'b' * 63}.{'c' * 63}.{'d' * last}.com"


def test_email_length_bound(client: TestClient, tenant: Tenant) -> None:
    body = {"workspace_id": tenant.id, "contacts": [{"email": email_of_length(EMAIL_MAX_LENGTH)}]}
    [op] = post_import(client, tenant, body).json()["operations"]
    assert op["action"] == "create", op
    body["contacts"] = [{"email": email_of_length(EMAIL_MAX_LENGTH + 1)}]
    [op] = post_import(client, tenant, body).json()["operations"]
    assert op["error"] == "invalid email format", op


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_json_depth_bound(client: TestClient, tenant: Tenant) -> None:
    assert one(client, tenant, custom_json_1=nested(JSON_MAX_DEPTH))["action"] == "create"
    op = one(client, tenant, custom_json_2=nested(JSON_MAX_DEPTH + 1))
    assert op["error"] == f"custom_json_2: nested deeper than {JSON_MAX_DEPTH} levels"
    # Deeper than the decoder goes: the whole body is refused, not the contact.
    body = b'{"workspace_id":"acme","contacts":[{"email":"l@example.com","custom_json_1":'
    body += b"[" * 5000 + b"]" * 5000 + b"}]}"
    response = post_import(client, tenant, body)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid JSON body: nesting too deep"}


def test_json_size_bound(client: TestClient, tenant: Tenant) -> None:
    overhead = len('{"k":""}')
    op = one(client, tenant, custom_json_1={"k": "x" * (JSON_MAX_BYTES - overhead)})
    assert op["action"] == "create", op
    op = one(client, tenant, custom_json_1={"k": "x" * (JSON_MAX_BYTES - overhead + 1)})
    assert op["error"] == f"custom_json_1: larger than {JSON_MAX_BYTES} bytes"


@pytest.mark.parametrize(
    ("field", "at_bound", "past_bound"),
    [("id", "i" * 32, "i" * 33), ("name", "n" * 255, "n" * 256)],
)
def test_list_field_bounds(
    field: str, at_bound: str, past_bound: str, client: TestClient, tenant: Tenant
) -> None:
    body = {"workspace_id": tenant.id, "id": "bounded", "name": "Bounded", field: at_bound}
    response = client.post("/api/lists.create", headers=tenant.headers, json=body)
    assert response.status_code == 201, response.text
    body = {**body, "id": "bounded2", field: past_bound}
    response = client.post("/api/lists.create", headers=tenant.headers, json=body)
    assert response.status_code == 400, response.text
    assert assert_error_body(response).startswith(field)


def test_list_description_bound(client: TestClient, tenant: Tenant) -> None:
    body = {"workspace_id": tenant.id, "id": "d", "name": "D", "description": "d" * 10_000}
    assert client.post("/api/lists.create", headers=tenant.headers, json=body).status_code == 201
    body = {**body, "id": "d2", "description": "d" * 10_001}
    response = client.post("/api/lists.create", headers=tenant.headers, json=body)
    assert response.status_code == 400, response.text
    assert assert_error_body(response).startswith("description")


@pytest.mark.parametrize(("limit", "status"), [(1, 200), (100, 200), (0, 400), (101, 400)])
def test_page_size_bound(limit: int, status: int, client: TestClient, tenant: Tenant) -> None:
    params = {"workspace_id": tenant.id, "limit": str(limit)}
    response = client.get("/api/contacts.list", headers=tenant.headers, params=params)
    assert response.status_code == status, response.text


# --- a maximum-size import against the real server -------------------------------------------


def maximum_batch(tag: str) -> list[dict[str, Any]]:
    """MAX_CONTACTS contacts with a dozen fields each, the shape of a real CRM export."""
    return [
        {
            "email": f"{tag}{i}@example.com",
            "external_id": f"{tag}-{i}",
            "first_name": "First",
            "last_name": f"Last {i}",
            "phone": "+15551234567",
            "country": "US",
            "timezone": "America/New_York",
            "custom_string_1": "premium",
            "custom_number_1": i,
            "custom_datetime_1": "2024-05-01T09:00:00+02:00",
            "custom_json_1": {"tags": ["a", "b"], "score": i},
        }
        for i in range(MAX_CONTACTS)
    ]


@pytest.mark.slow
def test_health_answers_while_a_maximum_import_runs(
    start_server: Callable[..., ServerProcess], tenant: Tenant, client: TestClient
) -> None:
    for list_id, optin in (("news", False), ("vip", True)):
        body = {"workspace_id": tenant.id, "id": list_id, "name": list_id, "is_double_optin": optin}
        assert client.post("/api/lists.create", headers=tenant.headers, json=body).is_success
    server = start_server(workers=1)
    body = {
        "workspace_id": tenant.id,
        "contacts": maximum_batch("max"),
        "subscribe_to_lists": ["news", "vip"],
    }
    result: dict[str, httpx.Response] = {}

    def run_import() -> None:
        result["import"] = httpx.post(
            f"{server.base_url}/api/contacts.import", headers=tenant.headers, json=body, timeout=300
        )

    importer = threading.Thread(target=run_import)
    importer.start()
    answered_during = 0
    statuses = []
    with httpx.Client(base_url=server.base_url, timeout=30) as probe:
        while importer.is_alive():
            health = probe.get("/healthz")
            reads = probe.get(
                "/api/contacts.count", headers=tenant.headers, params={"workspace_id": tenant.id}
            )
            statuses += [health.status_code, reads.status_code]
            if importer.is_alive():
                answered_during += 1
            time.sleep(0.05)
    importer.join(timeout=300)
    response = result["import"]
    assert response.status_code == 200, response.text[:300]
    operations = response.json()["operations"]
    assert len(operations) == MAX_CONTACTS
    assert {op["action"] for op in operations} == {"create"}
    assert set(statuses) == {200}, statuses
    assert answered_during >= 1, "no health check answered while the import ran"
    assert count(client, tenant) == MAX_CONTACTS
    print(f"[reliability] health during max import: {answered_during} answered, all 200")
