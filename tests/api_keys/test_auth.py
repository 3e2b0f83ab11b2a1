"""Authentication, the error envelope, the served documents and the body limit."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine, select

from audience.api_keys import service as api_keys
from audience.app import create_app
from audience.config import Settings
from audience.db.models import api_keys as api_keys_table
from audience.db.models import lists
from audience.db.session import transaction
from audience.kit import crypto
from tests.conftest import SECRET, Tenant, make_key

SMALL_LIMIT = 2048
TOO_LARGE = {"error": "request body too large"}


def list_lists(client: TestClient, headers: dict[str, str], workspace_id: str = "acme") -> Response:
    return client.get("/api/lists.list", headers=headers, params={"workspace_id": workspace_id})


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def key_row(engine: Engine, key: str) -> Any:
    parsed = crypto.parse_api_key(key)
    assert parsed is not None
    query = select(api_keys_table).where(
        api_keys_table.c.workspace_id == parsed.workspace_id, api_keys_table.c.id == parsed.key_id
    )
    with engine.connect() as conn:
        return conn.execute(query).one()


def assert_unauthorized(r: Response) -> None:
    assert r.status_code == 401, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"], str) and body["error"]


# --- rejected keys --------------------------------------------------------------------------


def test_missing_authorization_is_401(client: TestClient, tenant: Tenant) -> None:
    r = list_lists(client, {})
    assert_unauthorized(r)
    assert r.json() == {"error": "missing API key: send Authorization: Bearer <key>"}


@pytest.mark.parametrize(
    "value",
    ["", "Basic x", "Basic YWxhZGRpbjpvcGVu", "Bearer", "Bearer   ", "Token abc", "key"],
)
def test_malformed_authorization_is_401(client: TestClient, tenant: Tenant, value: str) -> None:
    assert_unauthorized(list_lists(client, {"Authorization": value}))


def test_the_key_alone_without_scheme_is_401(client: TestClient, tenant: Tenant) -> None:
    assert_unauthorized(list_lists(client, {"Authorization": tenant.key}))


@pytest.mark.parametrize(
    "key", ["not-a-key", "aud_acme_short", "aud_" + "x" * 42, "aud_acme_" + "!" * 42]
)
def test_garbage_bearer_key_is_401(client: TestClient, tenant: Tenant, key: str) -> None:
    assert_unauthorized(list_lists(client, bearer(key)))


def test_unknown_well_formed_key_is_401(client: TestClient, tenant: Tenant) -> None:
    key = crypto.generate_api_key(tenant.id, crypto.new_key_id())
    assert crypto.parse_api_key(key) is not None
    r = list_lists(client, bearer(key))
    assert_unauthorized(r)
    assert r.json() == {"error": "invalid API key"}


def test_known_key_id_with_wrong_secret_is_401(client: TestClient, tenant: Tenant) -> None:
    last = tenant.key[-1]
    forged = tenant.key[:-1] + ("A" if last != "A" else "B")
    assert crypto.parse_api_key(forged) == crypto.parse_api_key(tenant.key)
    r = list_lists(client, bearer(forged))
    assert_unauthorized(r)
    assert r.json() == {"error": "invalid API key"}
    assert list_lists(client, tenant.headers).status_code == 200


def test_key_moved_to_another_workspace_is_401(
    client: TestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    moved = tenant.key.replace(f"aud_{tenant.id}_", f"aud_{other_tenant.id}_", 1)
    assert moved != tenant.key
    assert_unauthorized(list_lists(client, bearer(moved), other_tenant.id))


def test_key_hashed_with_another_secret_is_401(settings: Settings, tenant: Tenant) -> None:
    other = settings.model_copy(update={"secret_key": SECRET + "-rotated"})
    with TestClient(create_app(other), raise_server_exceptions=False) as client:
        r = list_lists(client, tenant.headers)
    assert_unauthorized(r)


def test_revoked_key_is_401_at_once(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    assert list_lists(client, tenant.headers).status_code == 200
    parsed = crypto.parse_api_key(tenant.key)
    assert parsed is not None
    with transaction(engine, write=True) as conn:
        info = api_keys.revoke_key(conn, key_id=parsed.key_id)
    assert info.revoked_at is not None
    r = list_lists(client, tenant.headers)
    assert_unauthorized(r)
    assert r.json() == {"error": "invalid API key"}


def test_revoking_one_key_leaves_the_others(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    second = make_key(engine, tenant.id)
    parsed = crypto.parse_api_key(tenant.key)
    assert parsed is not None
    with transaction(engine, write=True) as conn:
        api_keys.revoke_key(conn, key_id=parsed.key_id)
    assert_unauthorized(list_lists(client, tenant.headers))
    assert list_lists(client, bearer(second)).status_code == 200


def test_scheme_is_case_insensitive(client: TestClient, tenant: Tenant) -> None:
    r = list_lists(client, {"Authorization": f"bearer {tenant.key}"})
    assert r.status_code == 200, r.text


# --- storage of keys ------------------------------------------------------------------------


def test_keys_are_stored_only_as_a_keyed_hash(engine: Engine, tenant: Tenant) -> None:
    second = make_key(engine, tenant.id)
    with engine.connect() as conn:
        rows = [row._mapping for row in conn.execute(select(api_keys_table))]
    assert len(rows) == 2
    for key in (tenant.key, second):
        secret_part = key[-crypto.SECRET_LENGTH :]
        for row in rows:
            for column, value in row.items():
                assert key not in str(value), column
                assert secret_part not in str(value), column
        stored = key_row(engine, key)
        assert stored.hash != key
        assert stored.hash != hashlib.sha256(key.encode()).hexdigest()
        assert stored.prefix == key[: -crypto.SECRET_LENGTH]


def test_last_used_at_is_recorded(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    assert key_row(engine, tenant.key).last_used_at is None
    assert list_lists(client, tenant.headers).status_code == 200
    first = key_row(engine, tenant.key)
    assert first.last_used_at is not None
    assert first.last_used_at >= first.created_at
    # Recorded cheaply: a request right after the first does not write again.
    assert list_lists(client, tenant.headers).status_code == 200
    assert key_row(engine, tenant.key).last_used_at == first.last_used_at


def test_a_failed_authentication_records_nothing(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    forged = tenant.key[:-1] + ("A" if tenant.key[-1] != "A" else "B")
    assert_unauthorized(list_lists(client, bearer(forged)))
    assert key_row(engine, tenant.key).last_used_at is None


# --- routes without authentication ----------------------------------------------------------


def test_healthz_needs_no_key(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_healthz_is_503_when_the_database_does_not_answer() -> None:
    settings = Settings(
        database_url="postgresql://nobody@127.0.0.1:1/none", secret_key=SECRET, auto_migrate=False
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        r = client.get("/healthz")
    assert r.status_code == 503
    assert r.json() == {"error": "database unavailable"}


def test_openapi_document_is_served(client: TestClient) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    for route in ("lists.create", "lists.update", "lists.delete"):
        operation = doc["paths"][f"/api/{route}"]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        name = schema["$ref"].rsplit("/", 1)[-1]
        assert name in doc["components"]["schemas"]
        assert operation["security"] == [{"BearerAuth": []}]
    for route in ("lists.list", "lists.get"):
        assert "get" in doc["paths"][f"/api/{route}"]
    assert doc["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"
    assert "/healthz" in doc["paths"]


def test_docs_are_served(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in r.text


@pytest.mark.parametrize("path", ["/nope", "/api/lists.nope", "/api/", "/"])
def test_unknown_route_is_404_in_the_envelope(
    client: TestClient, tenant: Tenant, path: str
) -> None:
    r = client.get(path, headers=tenant.headers)
    assert r.status_code == 404
    assert r.json() == {"error": "not found"}


def test_wrong_method_is_405_in_the_envelope(client: TestClient, tenant: Tenant) -> None:
    r = client.get("/api/lists.create", headers=tenant.headers)
    assert r.status_code == 405
    assert r.json() == {"error": "method not allowed"}


# --- the body limit -------------------------------------------------------------------------


@pytest.fixture
def small_client(settings: Settings) -> Iterator[TestClient]:
    limited = settings.model_copy(update={"max_body_bytes": SMALL_LIMIT})
    with TestClient(create_app(limited), raise_server_exceptions=False) as test_client:
        yield test_client


def list_body(tenant: Tenant, size: int) -> bytes:
    """A valid lists.create body of exactly `size` bytes."""
    body = {"workspace_id": tenant.id, "id": "big", "name": "Big", "description": ""}
    padding = size - len(json.dumps(body).encode())
    assert padding >= 0
    body["description"] = "d" * padding
    encoded = json.dumps(body).encode()
    assert len(encoded) == size
    return encoded


def chunks(data: bytes, size: int = 500) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def stored_lists(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [row.id for row in conn.execute(select(lists.c.id))]


def post_create(client: TestClient, tenant: Tenant, content: Any) -> Response:
    headers = {**tenant.headers, "Content-Type": "application/json"}
    return client.post("/api/lists.create", headers=headers, content=content)


def test_body_over_the_limit_is_413_by_content_length(
    small_client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    r = post_create(small_client, tenant, list_body(tenant, SMALL_LIMIT + 1))
    assert r.request.headers["content-length"] == str(SMALL_LIMIT + 1)
    assert r.status_code == 413
    assert r.json() == TOO_LARGE
    assert stored_lists(engine) == []


def test_body_over_the_limit_is_413_when_chunked(
    small_client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    r = post_create(small_client, tenant, chunks(list_body(tenant, SMALL_LIMIT * 3)))
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert r.status_code == 413
    assert r.json() == TOO_LARGE
    assert stored_lists(engine) == []


@pytest.mark.parametrize("chunked", [False, True])
def test_body_at_the_limit_is_accepted(
    small_client: TestClient, engine: Engine, tenant: Tenant, chunked: bool
) -> None:
    body = list_body(tenant, SMALL_LIMIT)
    r = post_create(small_client, tenant, chunks(body) if chunked else body)
    assert r.status_code == 201, r.text
    assert stored_lists(engine) == ["big"]


def test_the_default_limit_is_far_above_a_small_body(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    r = post_create(client, tenant, list_body(tenant, SMALL_LIMIT * 4))
    assert r.status_code == 201, r.text
