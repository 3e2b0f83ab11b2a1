"""docs/import.md rules 1-3: authentication, request-level errors in their order, body limits.

A request rejected at this level answers {"error": <exact message>} and writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from audience.api_keys.schemas import Permission
from audience.db.models import api_keys
from audience.kit.clock import utcnow
from audience.kit.crypto import parse_api_key
from tests.conftest import Tenant, make_key
from tests.contacts.conftest import KeyFor, MakeClient
from tests.contacts.helpers import (
    count_contacts,
    create_list,
    import_body,
    import_ok,
    post_import,
    post_raw_import,
    snapshot,
)

VALID = [{"email": "new1@example.com"}, {"email": "new2@example.com", "first_name": "New"}]
OTHER_WORKSPACE = "API key is not valid for this workspace"
LISTS_WRITE_REQUIRED = "write access to lists required when subscribe_to_lists is provided"
CONTACTS_WRITE_REQUIRED = "write access to contacts required"


@pytest.fixture
def seeded(client: TestClient, tenant: Tenant) -> Tenant:
    """The tenant with one contact, one membership and a list `news`."""
    create_list(client, tenant, "news")
    import_ok(client, tenant, [{"email": "old@example.com", "first_name": "Old"}], ["news"])
    return tenant


def assert_error(response: Any, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": message}


# --- rule 1: the key ----------------------------------------------------------------------------


def _revoked_key(engine: Engine, workspace_id: str) -> str:
    key = make_key(engine, workspace_id)
    parsed = parse_api_key(key)
    assert parsed is not None
    with engine.begin() as conn:
        conn.execute(
            update(api_keys)
            .where(api_keys.c.workspace_id == workspace_id, api_keys.c.id == parsed.key_id)
            .values(revoked_at=utcnow())
        )
    return key


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "missing API key: send Authorization: Bearer <key>"),
        ("empty bearer", "malformed Authorization header: expected Bearer <key>"),
        ("basic scheme", "malformed Authorization header: expected Bearer <key>"),
        ("garbage key", "invalid API key"),
        ("wrong secret", "invalid API key"),
        ("revoked key", "invalid API key"),
    ],
)
def test_missing_or_invalid_key_is_401_and_writes_nothing(
    client: TestClient, engine: Engine, seeded: Tenant, kind: str, message: str
) -> None:
    headers = {
        "missing": {},
        "empty bearer": {"Authorization": "Bearer "},
        "basic scheme": {"Authorization": f"Basic {seeded.key}"},
        "garbage key": {"Authorization": "Bearer not-a-key"},
        "wrong secret": {"Authorization": f"Bearer {seeded.key[:-4]}AAAA"},
        "revoked key": {"Authorization": f"Bearer {_revoked_key(engine, seeded.id)}"},
    }[kind]
    before = snapshot(engine)
    response = client.post(
        "/api/contacts.import", headers=headers, json=import_body(seeded.id, VALID, ["news"])
    )
    assert_error(response, 401, message)
    assert snapshot(engine) == before


def test_key_is_checked_before_the_body(client: TestClient, tenant: Tenant) -> None:
    response = client.post("/api/contacts.import", content=b"{not json")
    assert_error(response, 401, "missing API key: send Authorization: Bearer <key>")
    response = client.post(
        "/api/contacts.import", headers={"Authorization": "Bearer nope"}, content=b"[]"
    )
    assert_error(response, 401, "invalid API key")


@pytest.mark.usefixtures("other_tenant")
@pytest.mark.parametrize("workspace_id", ["globex", "nowhere"])
def test_another_workspace_id_is_401_whether_it_exists_or_not(
    client: TestClient, engine: Engine, seeded: Tenant, workspace_id: str
) -> None:
    before = snapshot(engine)
    response = client.post(
        "/api/contacts.import",
        headers=seeded.headers,
        json=import_body(workspace_id, VALID),
    )
    assert_error(response, 401, OTHER_WORKSPACE)
    assert snapshot(engine) == before


# --- rule 2: each error, its exact message, nothing written ----------------------------------


INVALID_JSON = [
    pytest.param(b"not json", id="not-json"),
    pytest.param(b'{"workspace_id": "acme", "contacts": [', id="truncated"),
    pytest.param(b"", id="empty-body"),
    pytest.param(
        b'{"workspace_id": "acme", "contacts": [{"email": "a@example.com",}]}', id="comma"
    ),
    pytest.param(b'{"workspace_id": "acme", "contacts": [{"email": "a@x.com"}]', id="unclosed"),
    pytest.param(b'{"workspace_id": "acme"} trailing', id="trailing-garbage"),
    pytest.param(
        b'{"workspace_id": "acme", "contacts": [{"email": "a@x.com", "first_name": "\\ud800"}]}',
        id="lone-surrogate-escape",
    ),
    # JSON text is UTF-8 (RFC 8259 §8.1): invalid UTF-8 anywhere is not JSON.
    pytest.param(b'{"workspace_id": "ac\xffme", "contacts": [{"email": "a@x.com"}]}', id="utf8-ws"),
    pytest.param(
        b'{"workspace_id": "acme", "contacts": [{"email": "\xff@x.com"}]}', id="utf8-email"
    ),
    pytest.param(
        b'{"workspace_id": "acme", "contacts": [{"email": "a@x.com", "first_name": "\xff"}]}',
        id="utf8-text-field",
    ),
    pytest.param(
        b'{"workspace_id": "acme", "contacts": [{"email": "a@x.com"}], '
        b'"subscribe_to_lists": ["\xff"]}',
        id="utf8-list-id",
    ),
    pytest.param(
        b'{"workspace_id": "acme", "contacts": [{"email": "a@x.com", "unknown": "\xff"}]}',
        id="utf8-unknown-key",
    ),
]


@pytest.mark.parametrize("body", INVALID_JSON)
def test_body_not_json_is_400_invalid_json_body(
    client: TestClient, engine: Engine, seeded: Tenant, body: bytes
) -> None:
    before = snapshot(engine)
    response = post_raw_import(client, seeded, body)
    assert response.status_code == 400, response.text
    payload = response.json()
    assert list(payload) == ["error"]
    assert payload["error"].startswith("invalid JSON body: ")
    assert len(payload["error"]) > len("invalid JSON body: ")
    assert snapshot(engine) == before


@pytest.mark.parametrize(
    "body",
    [b"[]", b'[{"workspace_id": "acme"}]', b'"acme"', b"42", b"null", b"true"],
    ids=["empty-array", "array", "string", "number", "null", "bool"],
)
def test_body_not_an_object_is_400(
    client: TestClient, engine: Engine, seeded: Tenant, body: bytes
) -> None:
    before = snapshot(engine)
    response = post_raw_import(client, seeded, body)
    assert_error(response, 400, "invalid JSON body: expected a JSON object")
    assert snapshot(engine) == before


def _body(**fields: Any) -> dict[str, Any]:
    """An otherwise valid import body of workspace acme, with some fields replaced."""
    body: dict[str, Any] = {"workspace_id": "acme", "contacts": VALID}
    for name, value in fields.items():
        if value is ...:
            body.pop(name, None)
        else:
            body[name] = value
    return body


REQUEST_ERRORS = [
    # (id, body, message): every check of rule 2, with a body otherwise valid.
    ("workspace-missing", _body(workspace_id=...), "workspace_id is required"),
    ("workspace-null", _body(workspace_id=None), "workspace_id is required"),
    ("workspace-empty", _body(workspace_id=""), "workspace_id is required"),
    ("workspace-not-string", _body(workspace_id=7), "workspace_id must be a string"),
    ("contacts-missing", _body(contacts=...), "contacts is required"),
    ("contacts-null", _body(contacts=None), "contacts is required"),
    ("contacts-object", _body(contacts={"email": "a@example.com"}), "contacts must be an array"),
    ("contacts-string", _body(contacts="a@example.com"), "contacts must be an array"),
    ("contacts-number", _body(contacts=3), "contacts must be an array"),
    ("contacts-false", _body(contacts=False), "contacts must be an array"),
    ("contacts-empty", _body(contacts=[]), "contacts array cannot be empty"),
    (
        "lists-not-array",
        _body(subscribe_to_lists="news"),
        "subscribe_to_lists must be an array of list ids (strings)",
    ),
    (
        "lists-not-strings",
        _body(subscribe_to_lists=[1]),
        "subscribe_to_lists must be an array of list ids (strings)",
    ),
    ("list-unknown", _body(subscribe_to_lists=["nope"]), "list not found: nope"),
    (
        "first-unknown-list-named",
        _body(subscribe_to_lists=["news", "zeta", "alpha"]),
        "list not found: zeta",
    ),
    (
        "list-id-case-sensitive",
        _body(subscribe_to_lists=["NEWS"]),
        "list not found: NEWS",
    ),
]


@pytest.mark.parametrize(
    ("body", "message"), [pytest.param(b, m, id=i) for i, b, m in REQUEST_ERRORS]
)
def test_request_error_has_exact_message_and_writes_nothing(
    client: TestClient, engine: Engine, seeded: Tenant, body: dict[str, Any], message: str
) -> None:
    before = snapshot(engine)
    response = client.post("/api/contacts.import", headers=seeded.headers, json=body)
    assert_error(response, 400, message)
    assert snapshot(engine) == before


def test_list_of_another_workspace_is_not_found(
    client: TestClient, engine: Engine, seeded: Tenant, other_tenant: Tenant
) -> None:
    create_list(client, other_tenant, "theirs")
    before = snapshot(engine)
    response = post_import(client, seeded, VALID, ["news", "theirs"])
    assert_error(response, 400, "list not found: theirs")
    assert snapshot(engine) == before


@pytest.mark.parametrize(
    ("permissions", "lists", "message"),
    [
        pytest.param(
            (Permission.CONTACTS_WRITE, Permission.CONTACTS_READ, Permission.LISTS_READ),
            ["news"],
            LISTS_WRITE_REQUIRED,
            id="no-lists-write",
        ),
        pytest.param(
            (Permission.CONTACTS_READ, Permission.LISTS_WRITE, Permission.LISTS_READ),
            None,
            CONTACTS_WRITE_REQUIRED,
            id="no-contacts-write",
        ),
        pytest.param(
            (Permission.CONTACTS_READ, Permission.LISTS_WRITE),
            ["news"],
            CONTACTS_WRITE_REQUIRED,
            id="no-contacts-write-with-lists",
        ),
        pytest.param((), [], CONTACTS_WRITE_REQUIRED, id="no-permission-at-all"),
    ],
)
def test_missing_permission_is_400_and_writes_nothing(
    client: TestClient,
    engine: Engine,
    seeded: Tenant,
    key_for: KeyFor,
    permissions: tuple[Permission, ...],
    lists: list[str] | None,
    message: str,
) -> None:
    before = snapshot(engine)
    response = post_import(client, key_for(*permissions), VALID, lists)
    assert_error(response, 400, message)
    assert snapshot(engine) == before


@pytest.mark.parametrize("lists", [None, []], ids=["absent", "empty"])
def test_contacts_write_alone_suffices_without_lists(
    client: TestClient, engine: Engine, seeded: Tenant, key_for: KeyFor, lists: list[str] | None
) -> None:
    key = key_for(Permission.CONTACTS_WRITE)
    response = post_import(client, key, VALID, lists)
    assert response.status_code == 200, response.text
    assert count_contacts(engine, seeded.id) == 3


# --- rule 2: the order of the checks ----------------------------------------------------------

ORDER = [
    # (id, body, permissions, status, message): several problems at once, the first one wins.
    ("ws-before-contacts", {}, None, 400, "workspace_id is required"),
    ("ws-before-bad-contacts", {"contacts": "x"}, None, 400, "workspace_id is required"),
    (
        "empty-ws-before-empty-contacts",
        {"workspace_id": "", "contacts": []},
        None,
        400,
        "workspace_id is required",
    ),
    ("other-ws-before-contacts", {"workspace_id": "globex"}, None, 401, OTHER_WORKSPACE),
    (
        "other-ws-before-empty-contacts",
        {"workspace_id": "nowhere", "contacts": []},
        None,
        401,
        OTHER_WORKSPACE,
    ),
    (
        "other-ws-before-permissions",
        {"workspace_id": "globex", "contacts": VALID, "subscribe_to_lists": ["news"]},
        (Permission.CONTACTS_READ,),
        401,
        OTHER_WORKSPACE,
    ),
    (
        "contacts-before-lists",
        {"workspace_id": "acme", "subscribe_to_lists": ["nope"]},
        None,
        400,
        "contacts is required",
    ),
    (
        "contacts-before-permissions",
        {"workspace_id": "acme", "contacts": None, "subscribe_to_lists": ["news"]},
        (Permission.CONTACTS_READ,),
        400,
        "contacts is required",
    ),
    (
        "array-before-permissions",
        {"workspace_id": "acme", "contacts": {}, "subscribe_to_lists": ["news"]},
        (),
        400,
        "contacts must be an array",
    ),
    (
        "empty-before-permissions",
        {"workspace_id": "acme", "contacts": [], "subscribe_to_lists": ["nope"]},
        (),
        400,
        "contacts array cannot be empty",
    ),
    (
        "lists-write-before-contacts-write",
        {"workspace_id": "acme", "contacts": VALID, "subscribe_to_lists": ["news"]},
        (Permission.CONTACTS_READ,),
        400,
        LISTS_WRITE_REQUIRED,
    ),
    (
        "lists-write-before-unknown-list",
        {"workspace_id": "acme", "contacts": VALID, "subscribe_to_lists": ["nope"]},
        (Permission.CONTACTS_WRITE,),
        400,
        LISTS_WRITE_REQUIRED,
    ),
    (
        "contacts-write-before-unknown-list",
        {"workspace_id": "acme", "contacts": VALID, "subscribe_to_lists": ["nope"]},
        (Permission.LISTS_WRITE,),
        400,
        CONTACTS_WRITE_REQUIRED,
    ),
    (
        "unknown-list-before-invalid-contacts",
        {"workspace_id": "acme", "contacts": [42, {}], "subscribe_to_lists": ["nope"]},
        None,
        400,
        "list not found: nope",
    ),
]


@pytest.mark.usefixtures("other_tenant")
@pytest.mark.parametrize(
    ("body", "permissions", "status", "message"),
    [pytest.param(b, p, s, m, id=i) for i, b, p, s, m in ORDER],
)
def test_checks_run_in_the_order_of_rule_2(
    client: TestClient,
    engine: Engine,
    seeded: Tenant,
    key_for: KeyFor,
    body: dict[str, Any],
    permissions: tuple[Permission, ...] | None,
    status: int,
    message: str,
) -> None:
    caller = seeded if permissions is None else key_for(*permissions)
    before = snapshot(engine)
    response = client.post("/api/contacts.import", headers=caller.headers, json=body)
    assert_error(response, status, message)
    assert snapshot(engine) == before


# --- rule 2: the maximum number of contacts ----------------------------------------------------


def test_more_contacts_than_the_configured_maximum_is_400(
    make_client: MakeClient, engine: Engine, seeded: Tenant
) -> None:
    client = make_client(max_contacts_per_import=5)
    before = snapshot(engine)
    six = [{"email": f"c{i}@example.com"} for i in range(6)]
    response = post_import(client, seeded, six, ["news"])
    assert_error(response, 400, "contacts array exceeds the maximum of 5")
    assert snapshot(engine) == before
    # Invalid elements count too: the limit is on the array, not on the valid contacts.
    response = post_import(client, seeded, [*six[:5], 42])
    assert_error(response, 400, "contacts array exceeds the maximum of 5")
    assert snapshot(engine) == before

    operations = import_ok(client, seeded, six[:5], ["news"])
    assert {op["action"] for op in operations} == {"create"}
    assert count_contacts(engine, seeded.id) == 6


def test_maximum_is_checked_before_permissions(
    make_client: MakeClient, engine: Engine, seeded: Tenant, key_for: KeyFor
) -> None:
    client = make_client(max_contacts_per_import=2)
    three = [{"email": f"c{i}@example.com"} for i in range(3)]
    response = post_import(client, key_for(Permission.CONTACTS_READ), three, ["nope"])
    assert_error(response, 400, "contacts array exceeds the maximum of 2")


def test_default_maximum_is_10000_and_a_full_batch_is_accepted(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    batch = [{"email": f"user{i:05d}@example.com", "custom_number_1": i} for i in range(10_001)]
    response = post_import(client, tenant, batch)
    assert_error(response, 400, "contacts array exceeds the maximum of 10000")
    assert count_contacts(engine) == 0

    operations = import_ok(client, tenant, batch[:10_000])
    assert len(operations) == 10_000
    assert all(op["action"] == "create" and op["error"] is None for op in operations)
    assert operations[9_999]["email"] == "user09999@example.com"
    assert count_contacts(engine, tenant.id) == 10_000


# --- rule 3: the body size limit ----------------------------------------------------------------

LIMIT = 4096


def _padded_body(workspace_id: str, size: int) -> bytes:
    """A valid import body of exactly `size` bytes (JSON allows trailing whitespace)."""
    body = json.dumps(
        import_body(workspace_id, [{"email": "padded@example.com", "first_name": "Pad"}])
    ).encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


@pytest.fixture
def small_client(make_client: MakeClient) -> TestClient:
    return make_client(max_body_bytes=LIMIT)


def test_body_at_the_limit_is_accepted(
    small_client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    response = post_raw_import(small_client, tenant, _padded_body(tenant.id, LIMIT))
    assert response.status_code == 200, response.text
    assert count_contacts(engine, tenant.id) == 1


def test_body_over_the_limit_is_413_and_writes_nothing(
    small_client: TestClient, engine: Engine, seeded: Tenant
) -> None:
    before = snapshot(engine)
    response = post_raw_import(small_client, seeded, _padded_body(seeded.id, LIMIT + 1))
    assert_error(response, 413, "request body too large")
    many = [{"email": f"c{i}@example.com", "first_name": "x" * 50} for i in range(100)]
    response = post_import(small_client, seeded, many)
    assert_error(response, 413, "request body too large")
    assert snapshot(engine) == before


def test_streamed_body_over_the_limit_is_413(
    small_client: TestClient, engine: Engine, seeded: Tenant
) -> None:
    """Without a Content-Length the limit applies while the body streams in."""
    body = _padded_body(seeded.id, 3 * LIMIT)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    before = snapshot(engine)
    response = small_client.post(
        "/api/contacts.import",
        headers={**seeded.headers, "Content-Type": "application/json"},
        content=chunks(),
    )
    assert_error(response, 413, "request body too large")
    assert snapshot(engine) == before


def test_body_limit_applies_to_contacts_upsert_too(
    small_client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    contact = {"email": "big@example.com", "custom_json_1": {"blob": "x" * (2 * LIMIT)}}
    response = small_client.post(
        "/api/contacts.upsert",
        headers=tenant.headers,
        json={"workspace_id": tenant.id, "contact": contact},
    )
    assert_error(response, 413, "request body too large")
    assert count_contacts(engine) == 0
