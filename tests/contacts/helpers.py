"""Shared helpers of the contacts contract tests: requests through the API, state through SQL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from audience.db.models import contact_lists, contacts
from tests.conftest import Tenant

#: Every ContactInput field of the spec except `email`, by kind.
TEXT_FIELDS = (
    "external_id",
    "timezone",
    "language",
    "first_name",
    "last_name",
    "full_name",
    "phone",
    "address_line_1",
    "address_line_2",
    "country",
    "postcode",
    "state",
    "job_title",
    *(f"custom_string_{i}" for i in range(1, 6)),
)
NUMBER_FIELDS = tuple(f"custom_number_{i}" for i in range(1, 6))
DATETIME_FIELDS = tuple(f"custom_datetime_{i}" for i in range(1, 6))
JSON_FIELDS = tuple(f"custom_json_{i}" for i in range(1, 6))
FIELDS = TEXT_FIELDS + NUMBER_FIELDS + DATETIME_FIELDS + JSON_FIELDS

STATUSES = ("active", "pending", "unsubscribed", "bounced", "complained")


def import_body(
    workspace_id: str, items: Sequence[Any], lists: Sequence[str] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"workspace_id": workspace_id, "contacts": list(items)}
    if lists is not None:
        body["subscribe_to_lists"] = list(lists)
    return body


def post_import(
    client: TestClient,
    tenant: Tenant,
    items: Sequence[Any],
    lists: Sequence[str] | None = None,
) -> httpx.Response:
    response: httpx.Response = client.post(
        "/api/contacts.import", headers=tenant.headers, json=import_body(tenant.id, items, lists)
    )
    return response


def post_raw_import(client: TestClient, tenant: Tenant, body: bytes) -> httpx.Response:
    headers = {**tenant.headers, "Content-Type": "application/json"}
    response: httpx.Response = client.post("/api/contacts.import", headers=headers, content=body)
    return response


def import_ok(
    client: TestClient,
    tenant: Tenant,
    items: Sequence[Any],
    lists: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Import, assert a 200 with one operation per input, and return the operations."""
    response = post_import(client, tenant, items, lists)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["error"] is None
    assert [op["index"] for op in payload["operations"]] == list(range(len(items)))
    return list(payload["operations"])


def actions(operations: Sequence[dict[str, Any]]) -> list[str]:
    return [op["action"] for op in operations]


def raw_contacts_body(workspace_id: str, items: Sequence[bytes]) -> bytes:
    """An import body whose contacts are given as raw JSON (e.g. `1e400`)."""
    head = json.dumps({"workspace_id": workspace_id}).encode()[:-1]
    return head + b', "contacts": [' + b", ".join(items) + b"]}"


def get_contact(client: TestClient, tenant: Tenant, email: str) -> dict[str, Any] | None:
    """The contact as contacts.getByEmail shows it, or None on 404."""
    response = client.get(
        "/api/contacts.getByEmail",
        params={"workspace_id": tenant.id, "email": email},
        headers=tenant.headers,
    )
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return dict(response.json()["contact"])


def create_list(
    client: TestClient, tenant: Tenant, list_id: str, *, double_optin: bool = False
) -> None:
    response = client.post(
        "/api/lists.create",
        headers=tenant.headers,
        json={
            "workspace_id": tenant.id,
            "id": list_id,
            "name": list_id.title(),
            "is_double_optin": double_optin,
        },
    )
    assert response.status_code == 201, response.text


def update_status(
    client: TestClient, tenant: Tenant, email: str, list_id: str, status: str
) -> httpx.Response:
    response: httpx.Response = client.post(
        "/api/contactLists.updateStatus",
        headers=tenant.headers,
        json={"workspace_id": tenant.id, "email": email, "list_id": list_id, "status": status},
    )
    return response


def set_status(client: TestClient, tenant: Tenant, email: str, list_id: str, status: str) -> None:
    response = update_status(client, tenant, email, list_id, status)
    assert response.status_code == 200, response.text


def memberships(client: TestClient, tenant: Tenant, email: str) -> dict[str, str]:
    """{list id: status} of a contact, as contacts.getByEmail shows it."""
    contact = get_contact(client, tenant, email)
    assert contact is not None, email
    return {m["list_id"]: m["status"] for m in contact["contact_lists"]}


def count_contacts(engine: Engine, workspace_id: str | None = None) -> int:
    query = select(func.count()).select_from(contacts)
    if workspace_id is not None:
        query = query.where(contacts.c.workspace_id == workspace_id)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def count_memberships(engine: Engine, workspace_id: str | None = None) -> int:
    query = select(func.count()).select_from(contact_lists)
    if workspace_id is not None:
        query = query.where(contact_lists.c.workspace_id == workspace_id)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored contact and membership, in a stable order, to prove nothing changed."""
    with engine.connect() as conn:
        return {
            "contacts": [
                tuple(row)
                for row in conn.execute(
                    select(contacts).order_by(contacts.c.workspace_id, contacts.c.email)
                )
            ],
            "contact_lists": [
                tuple(row)
                for row in conn.execute(
                    select(contact_lists).order_by(
                        contact_lists.c.workspace_id,
                        contact_lists.c.email,
                        contact_lists.c.list_id,
                    )
                )
            ],
        }


def stored_emails(engine: Engine, workspace_id: str) -> list[str]:
    query = (
        select(contacts.c.email)
        .where(contacts.c.workspace_id == workspace_id)
        .order_by(contacts.c.email)
    )
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())
