"""Tenant scoping and permissions on every contacts route (STYLE habit 3, DESIGN §1 rule 1).

A key of another workspace, a missing key and a key lacking the route's permission get nothing
(only {"error": ...}) and change nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from audience.api_keys.schemas import ALL_PERMISSIONS, Permission
from tests.conftest import Tenant
from tests.contacts.conftest import KeyFor
from tests.contacts.helpers import (
    create_list,
    get_contact,
    import_ok,
    memberships,
    set_status,
    snapshot,
)

JANE = "jane@example.com"


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str
    needs: Permission
    payload: Callable[[str], dict[str, Any]]

    def call(self, client: TestClient, workspace_id: str, headers: dict[str, str]) -> Any:
        data = self.payload(workspace_id)
        if self.method == "GET":
            return client.get(self.path, params=data, headers=headers)
        return client.post(self.path, json=data, headers=headers)


ROUTES = [
    Route(
        "import",
        "POST",
        "/api/contacts.import",
        Permission.CONTACTS_WRITE,
        lambda ws: {"workspace_id": ws, "contacts": [{"email": JANE, "first_name": "Mallory"}]},
    ),
    Route(
        "upsert",
        "POST",
        "/api/contacts.upsert",
        Permission.CONTACTS_WRITE,
        lambda ws: {"workspace_id": ws, "contact": {"email": JANE, "first_name": "Mallory"}},
    ),
    Route(
        "getByEmail",
        "GET",
        "/api/contacts.getByEmail",
        Permission.CONTACTS_READ,
        lambda ws: {"workspace_id": ws, "email": JANE},
    ),
    Route(
        "getByExternalID",
        "GET",
        "/api/contacts.getByExternalID",
        Permission.CONTACTS_READ,
        lambda ws: {"workspace_id": ws, "external_id": "ext-jane"},
    ),
    Route(
        "list",
        "GET",
        "/api/contacts.list",
        Permission.CONTACTS_READ,
        lambda ws: {"workspace_id": ws, "with_contact_lists": "true"},
    ),
    Route(
        "count",
        "GET",
        "/api/contacts.count",
        Permission.CONTACTS_READ,
        lambda ws: {"workspace_id": ws},
    ),
    Route(
        "delete",
        "POST",
        "/api/contacts.delete",
        Permission.CONTACTS_WRITE,
        lambda ws: {"workspace_id": ws, "email": JANE},
    ),
    Route(
        "updateStatus",
        "POST",
        "/api/contactLists.updateStatus",
        Permission.LISTS_WRITE,
        lambda ws: {
            "workspace_id": ws,
            "email": JANE,
            "list_id": "news",
            "status": "unsubscribed",
        },
    ),
]
BY_NAME = {route.name: route for route in ROUTES}
ROUTE_PARAMS = [pytest.param(route, id=route.name) for route in ROUTES]


@pytest.fixture
def acme(client: TestClient, tenant: Tenant) -> Tenant:
    """Workspace acme with jane@example.com (external id ext-jane) active in `news`."""
    create_list(client, tenant, "news")
    import_ok(
        client,
        tenant,
        [{"email": JANE, "external_id": "ext-jane", "first_name": "Jane"}],
        ["news"],
    )
    return tenant


def assert_nothing_but(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text[:300]
    assert response.json() == {"error": message}


@pytest.mark.parametrize("route", ROUTE_PARAMS)
def test_another_workspaces_key_gets_nothing_and_changes_nothing(
    client: TestClient, engine: Engine, acme: Tenant, other_tenant: Tenant, route: Route
) -> None:
    before = snapshot(engine)
    response = route.call(client, acme.id, other_tenant.headers)
    assert_nothing_but(response, 401, "API key is not valid for this workspace")
    assert snapshot(engine) == before


@pytest.mark.parametrize("route", ROUTE_PARAMS)
def test_a_key_cannot_name_another_existing_or_unknown_workspace(
    client: TestClient, engine: Engine, acme: Tenant, other_tenant: Tenant, route: Route
) -> None:
    before = snapshot(engine)
    existing = route.call(client, other_tenant.id, acme.headers)
    unknown = route.call(client, "no_such_workspace", acme.headers)
    assert_nothing_but(existing, 401, "API key is not valid for this workspace")
    assert (unknown.status_code, unknown.json()) == (existing.status_code, existing.json())
    assert snapshot(engine) == before


BAD_KEYS = [
    ({}, "missing API key: send Authorization: Bearer <key>"),
    ({"Authorization": "Token abc"}, "malformed Authorization header: expected Bearer <key>"),
    ({"Authorization": "Bearer aud_acme_0000000000"}, "invalid API key"),
]


@pytest.mark.parametrize("route", ROUTE_PARAMS)
def test_a_missing_or_invalid_key_gets_401(
    client: TestClient, engine: Engine, acme: Tenant, route: Route
) -> None:
    before = snapshot(engine)
    for headers, message in BAD_KEYS:
        assert_nothing_but(route.call(client, acme.id, headers), 401, message)
    assert snapshot(engine) == before


def _lacking_message(route: Route) -> tuple[int, str]:
    resource, _, access = route.needs.value.partition(":")
    message = f"{access} access to {resource} required"
    return (400 if route.name == "import" else 403), message


@pytest.mark.parametrize("route", ROUTE_PARAMS)
def test_a_key_lacking_the_routes_permission_gets_nothing(
    client: TestClient, engine: Engine, acme: Tenant, key_for: KeyFor, route: Route
) -> None:
    status, message = _lacking_message(route)
    before = snapshot(engine)
    all_but = key_for(*(p for p in ALL_PERMISSIONS if p != route.needs))
    assert_nothing_but(route.call(client, acme.id, all_but.headers), status, message)
    assert snapshot(engine) == before


@pytest.mark.parametrize("route", ROUTE_PARAMS)
def test_a_key_with_no_permission_gets_nothing(
    client: TestClient, engine: Engine, acme: Tenant, key_for: KeyFor, route: Route
) -> None:
    status, message = _lacking_message(route)
    before = snapshot(engine)
    assert_nothing_but(route.call(client, acme.id, key_for().headers), status, message)
    assert snapshot(engine) == before


@pytest.mark.parametrize("route", ROUTE_PARAMS)
def test_the_routes_permission_suffices(
    client: TestClient, acme: Tenant, key_for: KeyFor, route: Route
) -> None:
    only = key_for(route.needs)
    response = route.call(client, acme.id, only.headers)
    assert response.status_code == 200, response.text[:300]


def test_read_and_write_permissions_are_distinct(
    client: TestClient, acme: Tenant, key_for: KeyFor
) -> None:
    writer = key_for(Permission.CONTACTS_WRITE)
    reader = key_for(Permission.CONTACTS_READ)
    assert BY_NAME["getByEmail"].call(client, acme.id, writer.headers).status_code == 403
    assert BY_NAME["upsert"].call(client, acme.id, reader.headers).status_code == 403
    assert BY_NAME["delete"].call(client, acme.id, reader.headers).status_code == 403


def test_another_workspace_sees_none_of_acmes_contacts_in_its_own_scope(
    client: TestClient, engine: Engine, acme: Tenant, other_tenant: Tenant
) -> None:
    """Within its own workspace, globex finds nothing of acme's, and changes nothing of it."""
    acme_before = get_contact(client, acme, JANE)
    globex = other_tenant
    for name in ("getByEmail", "getByExternalID"):
        response = BY_NAME[name].call(client, globex.id, globex.headers)
        assert response.status_code == 404, response.text
        assert set(response.json()) == {"error"}
    listed = BY_NAME["list"].call(client, globex.id, globex.headers)
    assert listed.json() == {"contacts": [], "next_cursor": None}
    assert BY_NAME["count"].call(client, globex.id, globex.headers).json() == {"total_contacts": 0}
    assert BY_NAME["delete"].call(client, globex.id, globex.headers).status_code == 404
    assert BY_NAME["updateStatus"].call(client, globex.id, globex.headers).status_code == 404
    assert get_contact(client, acme, JANE) == acme_before

    # The same email in globex is a contact of globex's own, created there.
    create_list(client, globex, "news")
    operations = import_ok(client, globex, [{"email": JANE, "first_name": "Other"}], ["news"])
    assert operations[0]["action"] == "create"
    set_status(client, globex, JANE, "news", "bounced")
    assert memberships(client, globex, JANE) == {"news": "bounced"}
    assert get_contact(client, acme, JANE) == acme_before
    assert BY_NAME["delete"].call(client, globex.id, globex.headers).status_code == 200
    assert get_contact(client, acme, JANE) == acme_before
