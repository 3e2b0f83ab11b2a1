"""Tenant isolation, revocation, key storage and permissions, for every /api/ route.

The route table lives in routes.py; the first test reads the app's routes so that a new route
without a row in the table fails the suite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from audience.api_keys import service as api_keys
from audience.api_keys.schemas import ALL_PERMISSIONS
from audience.app import create_app
from audience.config import Settings
from audience.db.models import metadata
from audience.db.session import transaction
from audience.kit import crypto
from audience.kit.crypto import parse_api_key
from tests.conftest import SECRET, Tenant, make_key
from tests.reliability.conftest import assert_error_body, snapshot
from tests.reliability.routes import CASES, RouteCase, api_routes, seed

A_MARKER = "ACME-SECRET"
B_MARKER = "GLOBEX-OWN"
WRONG_WORKSPACE = {"error": "API key is not valid for this workspace"}
ids = [case.id for case in CASES]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def data_of(engine: Engine, workspace_id: str) -> dict[str, Any]:
    """The workspace's data, without its key rows (whose last_used_at a request may move)."""
    tables = snapshot(engine, workspace_id)
    del tables["api_keys"]
    return tables


def test_every_api_route_has_a_case(client: TestClient) -> None:
    served = api_routes(client.app)  # type: ignore[arg-type]
    covered = {(case.method, case.path) for case in CASES}
    assert served, "no /api/ routes found: the route walk is broken"
    assert served - covered == set(), "routes without a row in tests/reliability/routes.py"
    assert covered - served == set(), "rows for routes the app no longer serves"


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_another_workspace_key_neither_reads_nor_changes_anything(
    case: RouteCase, client: TestClient, engine: Engine, tenant: Tenant, other_tenant: Tenant
) -> None:
    seed(client, tenant.id, tenant.headers, A_MARKER)
    seed(client, other_tenant.id, other_tenant.headers, B_MARKER)
    before = snapshot(engine, tenant.id)

    # B's key naming A's workspace: refused before anything is read or written.
    response = case.call(client, other_tenant.headers, tenant.id)
    assert response.status_code == 401, response.text
    assert response.json() == WRONG_WORKSPACE
    # The same for a workspace that does not exist: nothing tells the two apart.
    response = case.call(client, other_tenant.headers, "no_such_workspace")
    assert response.json() == WRONG_WORKSPACE

    # B's key in B's own workspace, naming the same ids that A's data carries: B's data only.
    response = case.call(client, other_tenant.headers, other_tenant.id)
    assert response.status_code == case.success, response.text
    assert A_MARKER not in response.text
    if case.id == "contacts.count":
        assert response.json() == {"total_contacts": 2}

    assert snapshot(engine, tenant.id) == before


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_each_route_enforces_its_permissions(
    case: RouteCase, client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    seed(client, tenant.id, tenant.headers, A_MARKER)
    lacking = {
        missing: make_key(engine, tenant.id, tuple(p for p in ALL_PERMISSIONS if p != missing))
        for missing in case.permissions
    }
    exact = make_key(engine, tenant.id, case.permissions)
    before = data_of(engine, tenant.id)

    for missing, key in lacking.items():
        response = case.call(client, bearer(key), tenant.id)
        assert response.status_code == case.denied, (missing, response.text)
        message = assert_error_body(response)
        assert missing.value.partition(":")[0] in message, message
        assert data_of(engine, tenant.id) == before, f"a key without {missing} changed data"

    # A key with exactly the listed permissions is enough: the table is not too strict.
    response = case.call(client, bearer(exact), tenant.id)
    assert response.status_code == case.success, response.text


BAD_KEYS = [
    ({}, "missing API key: send Authorization: Bearer <key>"),
    ({"Authorization": "Token abc"}, "malformed Authorization header: expected Bearer <key>"),
    ({"Authorization": "Bearer aud_acme_0000000000"}, "invalid API key"),
]


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_a_missing_or_invalid_key_gets_401_and_changes_nothing(
    case: RouteCase, client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    seed(client, tenant.id, tenant.headers, A_MARKER)
    before = snapshot(engine, tenant.id)
    for headers, message in BAD_KEYS:
        response = case.call(client, headers, tenant.id)
        assert response.status_code == 401, response.text
        assert response.json() == {"error": message}
        assert response.headers["www-authenticate"] == "Bearer"
    assert snapshot(engine, tenant.id) == before


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_a_key_with_no_permission_at_all_gets_nothing(
    case: RouteCase, client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    seed(client, tenant.id, tenant.headers, A_MARKER)
    nothing = make_key(engine, tenant.id, ())
    before = data_of(engine, tenant.id)
    response = case.call(client, bearer(nothing), tenant.id)
    assert response.status_code == case.denied, response.text
    assert_error_body(response)
    assert data_of(engine, tenant.id) == before


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_a_revoked_key_stops_working_at_once(
    case: RouteCase, client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    seed(client, tenant.id, tenant.headers, A_MARKER)
    key = make_key(engine, tenant.id)
    params = {"workspace_id": tenant.id}
    assert client.get("/api/lists.list", headers=bearer(key), params=params).status_code == 200
    parsed = parse_api_key(key)
    assert parsed is not None
    with transaction(engine, write=True) as conn:
        api_keys.revoke_key(conn, key_id=parsed.key_id)
    before = data_of(engine, tenant.id)

    response = case.call(client, bearer(key), tenant.id)
    assert response.status_code == 401, response.text
    assert response.json() == {"error": "invalid API key"}
    assert data_of(engine, tenant.id) == before
    # The workspace's other keys keep working.
    assert case.call(client, tenant.headers, tenant.id).status_code == case.success


def test_keys_are_never_stored_in_plaintext(
    client: TestClient,
    engine: Engine,
    tenant: Tenant,
    other_tenant: Tenant,
    database_url: str,
) -> None:
    keys = [tenant.key, other_tenant.key]
    keys += [make_key(engine, tenant.id, (permission,)) for permission in ALL_PERMISSIONS]
    for key in keys:  # used once, so that last_used_at is written too
        client.get("/api/lists.list", headers=bearer(key), params={"workspace_id": tenant.id})
    secrets = [key[-32:] for key in keys]  # the random part, without the public prefix
    cells = 0
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for column, value in row._mapping.items():
                    cells += 1
                    text = str(value)
                    leaked = [s for s in secrets if s in text]
                    assert not leaked, f"{table.name}.{column} holds a key in plaintext"
        hashes = [row.hash for row in conn.execute(select(metadata.tables["api_keys"]))]
    # What is stored is the keyed hash (HMAC-SHA256 with the server's secret), nothing else.
    assert sorted(hashes) == sorted(crypto.hash_api_key(key, SECRET) for key in keys)
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///"))
        for file in (path, path.with_name(path.name + "-wal")):
            if file.exists():
                raw = file.read_bytes()
                assert not [s for s in secrets if s.encode() in raw], f"a key in {file.name}"
    print(f"[reliability] plaintext scan: {len(keys)} keys, {cells} cells")


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_auth_and_permission_errors_are_documented(case: RouteCase) -> None:
    """Each route's OpenAPI responses list the 400, 401 and permission answers it gives."""
    document = create_app(Settings(database_url="sqlite://", secret_key="x")).openapi()
    responses = document["paths"][case.path][case.method.lower()]["responses"]
    missing = {"400", "401", str(case.denied)} - set(responses)
    assert not missing, f"{case.method} {case.path} does not document {sorted(missing)}"
