"""The lists API over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine, insert, select, text

from audience.api_keys.schemas import Permission
from audience.db.models import contact_lists, contacts, lists
from audience.db.session import transaction
from audience.kit.clock import utcnow
from tests.conftest import Tenant, make_key

LIST_FIELDS = {
    "id",
    "name",
    "is_double_optin",
    "is_public",
    "description",
    "created_at",
    "updated_at",
}
ROUTES = ["lists.list", "lists.get", "lists.create", "lists.update", "lists.delete"]
POST_ROUTES = ["lists.create", "lists.update", "lists.delete"]
WRONG_WORKSPACE = {"error": "API key is not valid for this workspace"}


# --- helpers --------------------------------------------------------------------------------


def create(client: TestClient, tenant: Tenant, **fields: Any) -> Response:
    body = {"workspace_id": tenant.id, "id": "news", "name": "News", **fields}
    return client.post("/api/lists.create", headers=tenant.headers, json=body)


def get(client: TestClient, tenant: Tenant, list_id: str = "news") -> Response:
    params = {"workspace_id": tenant.id, "id": list_id}
    return client.get("/api/lists.get", headers=tenant.headers, params=params)


def update(client: TestClient, tenant: Tenant, **fields: Any) -> Response:
    body = {"workspace_id": tenant.id, "id": "news", **fields}
    return client.post("/api/lists.update", headers=tenant.headers, json=body)


def call(client: TestClient, route: str, headers: dict[str, str], workspace_id: str) -> Response:
    """One request to `route` that would succeed for the owner of list `news`."""
    if route == "lists.list":
        params = {"workspace_id": workspace_id}
        return client.get("/api/lists.list", headers=headers, params=params)
    if route == "lists.get":
        params = {"workspace_id": workspace_id, "id": "news"}
        return client.get("/api/lists.get", headers=headers, params=params)
    body: dict[str, Any] = {"workspace_id": workspace_id, "id": "news"}
    if route == "lists.create":
        body.update(id="fresh", name="Fresh")
    if route == "lists.update":
        body.update(name="Renamed", is_public=True)
    return client.post(f"/api/{route}", headers=headers, json=body)


def add_member(engine: Engine, workspace_id: str, email: str, list_id: str) -> None:
    """A contact (if new) and its membership of a list, written straight to the tables."""
    now = utcnow()
    with transaction(engine, write=True) as conn:
        exists = conn.execute(
            select(contacts.c.email).where(
                contacts.c.workspace_id == workspace_id, contacts.c.email == email
            )
        ).first()
        if exists is None:
            conn.execute(
                insert(contacts).values(
                    workspace_id=workspace_id, email=email, created_at=now, updated_at=now
                )
            )
        conn.execute(
            insert(contact_lists).values(
                workspace_id=workspace_id,
                email=email,
                list_id=list_id,
                status="active",
                created_at=now,
                updated_at=now,
            )
        )


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables the lists API could touch, in a stable order."""
    result = {}
    with engine.connect() as conn:
        for table in (lists, contact_lists, contacts):
            rows = conn.execute(select(table).order_by(*table.primary_key.columns))
            result[table.name] = [tuple(row) for row in rows]
    return result


def memberships(engine: Engine) -> list[tuple[str, str, str]]:
    query = select(contact_lists.c.workspace_id, contact_lists.c.email, contact_lists.c.list_id)
    with engine.connect() as conn:
        return sorted((r[0], r[1], r[2]) for r in conn.execute(query))


@pytest.fixture
def two_tenants(
    client: TestClient, engine: Engine, tenant: Tenant, other_tenant: Tenant
) -> tuple[Tenant, Tenant]:
    """Both workspaces own a list `news` with one member."""
    for owner in (tenant, other_tenant):
        assert create(client, owner).status_code == 201
        add_member(engine, owner.id, "ann@example.com", "news")
    return tenant, other_tenant


# --- lists.create ---------------------------------------------------------------------------


def test_create_answers_201_with_the_list(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    r = create(client, tenant, is_double_optin=True, is_public=True, description="Weekly news")
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"list"}
    created = body["list"]
    assert set(created) == LIST_FIELDS
    assert created["id"] == "news"
    assert created["name"] == "News"
    assert created["is_double_optin"] is True
    assert created["is_public"] is True
    assert created["description"] == "Weekly news"
    assert created["created_at"].endswith("Z")
    assert created["updated_at"] == created["created_at"]
    with engine.connect() as conn:
        row = conn.execute(select(lists)).one()
    assert (row.workspace_id, row.id, row.name) == (tenant.id, "news", "News")


def test_create_defaults_flags_and_description(client: TestClient, tenant: Tenant) -> None:
    r = create(client, tenant)
    assert r.status_code == 201, r.text
    created = r.json()["list"]
    assert created["is_double_optin"] is False
    assert created["is_public"] is False
    assert created["description"] is None


def test_create_trims_the_name(client: TestClient, tenant: Tenant) -> None:
    r = create(client, tenant, name="  News  ")
    assert r.status_code == 201, r.text
    assert r.json()["list"]["name"] == "News"


def test_create_duplicate_id_is_400_and_keeps_the_first(client: TestClient, tenant: Tenant) -> None:
    assert create(client, tenant, name="First").status_code == 201
    r = create(client, tenant, name="Second")
    assert r.status_code == 400
    assert r.json() == {"error": "list already exists: news"}
    assert get(client, tenant).json()["list"]["name"] == "First"


def test_same_list_id_in_two_workspaces(
    client: TestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    assert create(client, tenant, name="Acme news").status_code == 201
    assert create(client, other_tenant, name="Globex news").status_code == 201
    assert get(client, tenant).json()["list"]["name"] == "Acme news"
    assert get(client, other_tenant).json()["list"]["name"] == "Globex news"


def test_create_accepts_the_longest_id(client: TestClient, tenant: Tenant) -> None:
    list_id = "A_" + "z9" * 15
    assert len(list_id) == 32
    r = create(client, tenant, id=list_id)
    assert r.status_code == 201, r.text
    assert get(client, tenant, list_id).status_code == 200


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"id": "a-b"}, "id"),
        ({"id": "with space"}, "id"),
        ({"id": ""}, "id"),
        ({"id": "x" * 33}, "id"),
        ({"id": "news\n"}, "id"),
        ({"id": "caf\u00e9"}, "id"),
        ({"id": 5}, "id"),
        ({"id": None}, "id"),
        ({"id": ["news"]}, "id"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 256}, "name"),
        ({"name": 5}, "name"),
        ({"name": None}, "name"),
        ({"is_double_optin": "yes"}, "is_double_optin"),
        ({"is_double_optin": 1}, "is_double_optin"),
        ({"is_public": "true"}, "is_public"),
        ({"is_public": None}, "is_public"),
        ({"description": 5}, "description"),
        ({"description": "d" * 10_001}, "description"),
    ],
)
def test_create_rejects_bad_fields_naming_the_field(
    client: TestClient, engine: Engine, tenant: Tenant, fields: dict[str, Any], field: str
) -> None:
    r = create(client, tenant, **fields)
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert body["error"].startswith(f"{field}: "), body
    assert snapshot(engine)["lists"] == []


@pytest.mark.parametrize("missing", ["id", "name"])
def test_create_requires_id_and_name(
    client: TestClient, engine: Engine, tenant: Tenant, missing: str
) -> None:
    body = {"workspace_id": tenant.id, "id": "news", "name": "News"}
    del body[missing]
    r = client.post("/api/lists.create", headers=tenant.headers, json=body)
    assert r.status_code == 400
    assert r.json()["error"].startswith(f"{missing}: ")
    assert snapshot(engine)["lists"] == []


def test_create_ignores_unknown_fields(client: TestClient, tenant: Tenant) -> None:
    r = create(client, tenant, color="blue")
    assert r.status_code == 201, r.text
    assert set(r.json()["list"]) == LIST_FIELDS


# --- bodies and workspace_id, on every route ------------------------------------------------


INVALID_JSON = [b"{", b"not json", b"", b'{"workspace_id": }', b"[]", b'"x"', b"\xff\xfe"]


@pytest.mark.parametrize("route", POST_ROUTES)
def test_invalid_json_body_is_400(
    client: TestClient, engine: Engine, tenant: Tenant, route: str
) -> None:
    headers = {**tenant.headers, "Content-Type": "application/json"}
    for body in [*INVALID_JSON, b"[" * 10_000]:
        r = client.post(f"/api/{route}", headers=headers, content=body)
        assert r.status_code == 400, body[:20]
        error = r.json()["error"]
        assert error.startswith("invalid JSON body: "), body[:20]
        assert len(error) > len("invalid JSON body: ")
    assert snapshot(engine)["lists"] == []


@pytest.mark.parametrize("route", ROUTES)
def test_missing_workspace_id_is_400(client: TestClient, tenant: Tenant, route: str) -> None:
    for workspace_id in (None, ""):
        if route in POST_ROUTES:
            body: dict[str, Any] = {"id": "news", "name": "News"}
            if workspace_id is not None:
                body["workspace_id"] = workspace_id
            r = client.post(f"/api/{route}", headers=tenant.headers, json=body)
        else:
            params = {"id": "news"}
            if workspace_id is not None:
                params["workspace_id"] = workspace_id
            r = client.get(f"/api/{route}", headers=tenant.headers, params=params)
        assert r.status_code == 400, workspace_id
        assert r.json() == {"error": "workspace_id is required"}


@pytest.mark.parametrize("route", POST_ROUTES)
def test_workspace_id_must_be_a_string(client: TestClient, tenant: Tenant, route: str) -> None:
    body = {"workspace_id": 5, "id": "news", "name": "News"}
    r = client.post(f"/api/{route}", headers=tenant.headers, json=body)
    assert r.status_code == 400
    assert r.json() == {"error": "workspace_id must be a string"}


@pytest.mark.parametrize("route", POST_ROUTES)
def test_authentication_comes_before_the_body(
    client: TestClient, engine: Engine, tenant: Tenant, route: str
) -> None:
    r = client.post(f"/api/{route}", content=b"{not json")
    assert r.status_code == 401
    assert set(r.json()) == {"error"}


# --- lists.list and lists.get ---------------------------------------------------------------


def test_list_of_an_empty_workspace(client: TestClient, tenant: Tenant) -> None:
    params = {"workspace_id": tenant.id}
    r = client.get("/api/lists.list", headers=tenant.headers, params=params)
    assert r.status_code == 200
    assert r.json() == {"lists": []}


def test_list_returns_every_list_of_the_workspace_by_id(
    client: TestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    for list_id in ("zeta", "alpha", "mid"):
        assert create(client, tenant, id=list_id, name=list_id.title()).status_code == 201
    assert create(client, other_tenant, id="beta", name="Beta").status_code == 201
    params = {"workspace_id": tenant.id}
    r = client.get("/api/lists.list", headers=tenant.headers, params=params)
    assert r.status_code == 200
    found = r.json()["lists"]
    assert [item["id"] for item in found] == ["alpha", "mid", "zeta"]
    assert all(set(item) == LIST_FIELDS for item in found)


def test_list_orders_ids_by_code_point_on_every_backend(client: TestClient, tenant: Tenant) -> None:
    ids = ["b", "B", "a", "A", "_x", "a_b", "Z9"]
    for list_id in ids:
        assert create(client, tenant, id=list_id).status_code == 201
    params = {"workspace_id": tenant.id}
    r = client.get("/api/lists.list", headers=tenant.headers, params=params)
    assert [item["id"] for item in r.json()["lists"]] == sorted(ids)


def test_get_returns_what_create_returned(client: TestClient, tenant: Tenant) -> None:
    created = create(client, tenant, description="d").json()
    r = get(client, tenant)
    assert r.status_code == 200
    assert r.json() == created


def test_get_unknown_list_is_404(client: TestClient, tenant: Tenant) -> None:
    r = get(client, tenant, "nope")
    assert r.status_code == 404
    assert r.json() == {"error": "list not found: nope"}


@pytest.mark.parametrize("params", [{}, {"id": ""}])
def test_get_without_id_is_400(client: TestClient, tenant: Tenant, params: dict[str, str]) -> None:
    r = client.get(
        "/api/lists.get", headers=tenant.headers, params={"workspace_id": tenant.id, **params}
    )
    assert r.status_code == 400
    assert r.json() == {"error": "id is required"}


# --- lists.update ---------------------------------------------------------------------------


def test_update_changes_only_the_fields_given(client: TestClient, tenant: Tenant) -> None:
    before = create(
        client, tenant, is_double_optin=True, is_public=False, description="Weekly"
    ).json()["list"]
    r = update(client, tenant, name="Newsletter")
    assert r.status_code == 200, r.text
    after = r.json()["list"]
    assert after["name"] == "Newsletter"
    for field in ("id", "is_double_optin", "is_public", "description", "created_at"):
        assert after[field] == before[field], field
    assert after["updated_at"] >= before["updated_at"]
    assert get(client, tenant).json()["list"] == after


def test_update_flags_and_clears_the_description(client: TestClient, tenant: Tenant) -> None:
    create(client, tenant, description="Weekly")
    r = update(client, tenant, is_public=True, is_double_optin=True, description=None)
    assert r.status_code == 200, r.text
    after = r.json()["list"]
    assert (after["is_public"], after["is_double_optin"]) == (True, True)
    assert after["description"] is None
    assert after["name"] == "News"


def test_update_with_nothing_to_change_keeps_the_list(client: TestClient, tenant: Tenant) -> None:
    before = create(client, tenant, description="Weekly").json()["list"]
    r = update(client, tenant)
    assert r.status_code == 200, r.text
    after = r.json()["list"]
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }


def test_update_unknown_list_is_404(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    r = update(client, tenant, id="nope", name="Nope")
    assert r.status_code == 404
    assert r.json() == {"error": "list not found: nope"}
    assert snapshot(engine)["lists"] == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"name": "  "}, "name"),
        ({"name": 5}, "name"),
        ({"is_public": None}, "is_public"),
        ({"is_public": "yes"}, "is_public"),
        ({"is_double_optin": None}, "is_double_optin"),
        ({"is_double_optin": 0}, "is_double_optin"),
        ({"description": 5}, "description"),
        ({"id": 5}, "id"),
        ({"id": None}, "id"),
    ],
)
def test_update_rejects_bad_fields_and_changes_nothing(
    client: TestClient, engine: Engine, tenant: Tenant, fields: dict[str, Any], field: str
) -> None:
    create(client, tenant, description="Weekly")
    before = snapshot(engine)
    r = update(client, tenant, **fields)
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(f"{field}: "), r.json()
    assert snapshot(engine) == before


def test_update_requires_id(client: TestClient, tenant: Tenant) -> None:
    body = {"workspace_id": tenant.id, "name": "News"}
    r = client.post("/api/lists.update", headers=tenant.headers, json=body)
    assert r.status_code == 400
    assert r.json()["error"].startswith("id: ")


# --- lists.delete ---------------------------------------------------------------------------


def test_delete_removes_the_list_and_its_memberships(
    client: TestClient, engine: Engine, tenant: Tenant, other_tenant: Tenant
) -> None:
    for owner, list_id in ((tenant, "news"), (tenant, "offers"), (other_tenant, "news")):
        assert create(client, owner, id=list_id).status_code == 201
        add_member(engine, owner.id, "ann@example.com", list_id)
    add_member(engine, tenant.id, "bob@example.com", "news")

    body = {"workspace_id": tenant.id, "id": "news"}
    r = client.post("/api/lists.delete", headers=tenant.headers, json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True}

    assert get(client, tenant).status_code == 404
    assert memberships(engine) == [
        (tenant.id, "ann@example.com", "offers"),
        (other_tenant.id, "ann@example.com", "news"),
    ]
    # The contacts themselves stay, and so does the other workspace's list of the same id.
    with engine.connect() as conn:
        emails = sorted(conn.execute(select(contacts.c.workspace_id, contacts.c.email)))
    assert [tuple(e) for e in emails] == [
        (tenant.id, "ann@example.com"),
        (tenant.id, "bob@example.com"),
        (other_tenant.id, "ann@example.com"),
    ]
    assert get(client, other_tenant).status_code == 200


def test_delete_unknown_list_is_404(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    create(client, tenant)
    before = snapshot(engine)
    body = {"workspace_id": tenant.id, "id": "nope"}
    r = client.post("/api/lists.delete", headers=tenant.headers, json=body)
    assert r.status_code == 404
    assert r.json() == {"error": "list not found: nope"}
    assert snapshot(engine) == before


def test_delete_requires_id(client: TestClient, tenant: Tenant) -> None:
    body = {"workspace_id": tenant.id}
    r = client.post("/api/lists.delete", headers=tenant.headers, json=body)
    assert r.status_code == 400
    assert r.json()["error"].startswith("id: ")


def test_a_deleted_list_id_can_be_created_again(client: TestClient, tenant: Tenant) -> None:
    create(client, tenant, name="Old")
    body = {"workspace_id": tenant.id, "id": "news"}
    assert client.post("/api/lists.delete", headers=tenant.headers, json=body).status_code == 200
    r = create(client, tenant, name="New")
    assert r.status_code == 201
    assert r.json()["list"]["name"] == "New"


# --- NUL characters (PostgreSQL cannot store them; the contacts API rejects them) -----------


@pytest.mark.parametrize("field", ["name", "description"])
def test_create_rejects_nul_characters_naming_the_field(
    client: TestClient, engine: Engine, tenant: Tenant, field: str
) -> None:
    r = create(client, tenant, **{field: "a\u0000b"})
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(f"{field}: "), r.json()
    assert snapshot(engine)["lists"] == []


@pytest.mark.parametrize("field", ["name", "description"])
def test_update_rejects_nul_characters_naming_the_field(
    client: TestClient, engine: Engine, tenant: Tenant, field: str
) -> None:
    create(client, tenant)
    before = snapshot(engine)
    r = update(client, tenant, **{field: "a\u0000b"})
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(f"{field}: "), r.json()
    assert snapshot(engine) == before


def test_a_nul_character_in_a_field_the_route_does_not_know_is_ignored_with_it(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    """Unknown fields are ignored, whatever they hold (the document does not close its
    objects): a NUL in one is no reason to refuse the request (found by schemathesis)."""
    r = create(client, tenant, note="a\u0000b")
    assert r.status_code == 201, r.text
    assert get(client, tenant).json()["list"]["name"] == "News"
    assert len(snapshot(engine)["lists"]) == 1


@pytest.mark.parametrize("route", ["lists.get", "lists.update", "lists.delete"])
def test_an_id_with_a_nul_character_is_a_client_error(
    client: TestClient, engine: Engine, tenant: Tenant, route: str
) -> None:
    create(client, tenant)
    before = snapshot(engine)
    if route == "lists.get":
        r = get(client, tenant, "news\x00")
    else:
        body = {"workspace_id": tenant.id, "id": "news\u0000"}
        r = client.post(f"/api/{route}", headers=tenant.headers, json=body)
    assert r.status_code in (400, 404), r.text
    assert set(r.json()) == {"error"}
    assert snapshot(engine) == before


# --- tenant scoping -------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_a_key_never_reaches_another_workspace(
    client: TestClient, engine: Engine, two_tenants: tuple[Tenant, Tenant], route: str
) -> None:
    tenant, other = two_tenants
    before = snapshot(engine)
    for key_owner, workspace in ((tenant, other), (other, tenant)):
        r = call(client, route, key_owner.headers, workspace.id)
        assert r.status_code == 401, (key_owner.id, r.text)
        assert r.json() == WRONG_WORKSPACE
    assert snapshot(engine) == before


@pytest.mark.parametrize("route", ROUTES)
def test_another_workspace_answers_like_a_missing_one(
    client: TestClient, engine: Engine, two_tenants: tuple[Tenant, Tenant], route: str
) -> None:
    tenant, other = two_tenants
    existing = call(client, route, tenant.headers, other.id)
    missing = call(client, route, tenant.headers, "no_such_workspace")
    assert (existing.status_code, existing.json()) == (missing.status_code, missing.json())


@pytest.mark.parametrize("route", POST_ROUTES)
def test_scoping_comes_before_body_validation(
    client: TestClient, two_tenants: tuple[Tenant, Tenant], route: str
) -> None:
    tenant, other = two_tenants
    body = {"workspace_id": other.id, "id": "bad id!", "name": 5}
    r = client.post(f"/api/{route}", headers=tenant.headers, json=body)
    assert r.status_code == 401
    assert r.json() == WRONG_WORKSPACE


def test_own_workspace_sees_none_of_anothers_lists(
    client: TestClient, engine: Engine, tenant: Tenant, other_tenant: Tenant
) -> None:
    assert create(client, tenant, id="secret", name="Secret").status_code == 201
    add_member(engine, tenant.id, "ann@example.com", "secret")
    before = snapshot(engine)

    params = {"workspace_id": other_tenant.id}
    r = client.get("/api/lists.list", headers=other_tenant.headers, params=params)
    assert r.json() == {"lists": []}
    assert get(client, other_tenant, "secret").status_code == 404
    assert update(client, other_tenant, id="secret", name="Mine").status_code == 404
    body = {"workspace_id": other_tenant.id, "id": "secret"}
    r = client.post("/api/lists.delete", headers=other_tenant.headers, json=body)
    assert r.status_code == 404
    assert snapshot(engine) == before


# --- permissions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("permissions", "allowed"),
    [
        ((Permission.LISTS_READ,), {"lists.list", "lists.get"}),
        ((Permission.LISTS_WRITE,), {"lists.create", "lists.update", "lists.delete"}),
        ((Permission.CONTACTS_READ, Permission.CONTACTS_WRITE), set()),
    ],
)
def test_permissions_per_route(
    client: TestClient,
    engine: Engine,
    two_tenants: tuple[Tenant, Tenant],
    permissions: tuple[Permission, ...],
    allowed: set[str],
) -> None:
    tenant, _ = two_tenants
    headers = {"Authorization": f"Bearer {make_key(engine, tenant.id, permissions)}"}
    for route in ROUTES:
        if route in allowed:
            continue
        before = snapshot(engine)
        r = call(client, route, headers, tenant.id)
        assert r.status_code == 403, (route, r.text)
        access = "read" if route in ("lists.list", "lists.get") else "write"
        assert r.json() == {"error": f"{access} access to lists required"}
        assert snapshot(engine) == before
    for route in ROUTES:
        if route in allowed:
            r = call(client, route, headers, tenant.id)
            assert r.status_code in (200, 201), (route, r.text)


# --- concurrency ----------------------------------------------------------------------------


def _wait_until_blocked(engine: Engine, backend: str, worker: threading.Thread) -> None:
    """Return once the request waits on our lock (PostgreSQL, Citus), or after a moment
    (SQLite)."""
    if backend == "sqlite":
        # SQLite has no view of waiters; the answer must be the same whenever the request runs.
        time.sleep(0.2)
        return
    query = text(
        # Citus: the wait is on the worker that holds the shard; the view covers the cluster.
        "SELECT count(*) FROM citus_lock_waits"
        if backend == "citus"
        else "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + 20
    with engine.connect() as conn:
        while time.monotonic() < deadline and worker.is_alive():
            if conn.execute(query).scalar():
                return
            conn.rollback()
            time.sleep(0.02)
    raise AssertionError("the request never waited on the concurrent insert")


def test_concurrent_create_of_the_same_id_is_400_not_500(
    client: TestClient, engine: Engine, tenant: Tenant, backend: str
) -> None:
    """A list inserted by a transaction that commits while lists.create runs: still a 400."""
    answers: list[Response] = []
    worker = threading.Thread(target=lambda: answers.append(create(client, tenant, name="B")))
    with transaction(engine, write=True) as conn:
        now = utcnow()
        conn.execute(
            insert(lists).values(
                workspace_id=tenant.id,
                id="news",
                name="A",
                is_double_optin=False,
                is_public=False,
                created_at=now,
                updated_at=now,
            )
        )
        worker.start()
        _wait_until_blocked(engine, backend, worker)
    worker.join(timeout=60)
    assert answers, "the request did not finish"
    r = answers[0]
    assert r.status_code == 400, r.text
    assert r.json() == {"error": "list already exists: news"}
    assert get(client, tenant).json()["list"]["name"] == "A"
