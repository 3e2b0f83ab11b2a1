"""The contacts routes around the import: upsert, lookups, list, count, delete, updateStatus."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import Tenant
from tests.contacts.helpers import (
    FIELDS,
    STATUSES,
    count_contacts,
    count_memberships,
    create_list,
    get_contact,
    import_ok,
    memberships,
    set_status,
    snapshot,
    update_status,
)

JANE = "jane@example.com"
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")


def assert_error(response: httpx.Response, status: int, message: str | None = None) -> str:
    assert response.status_code == status, response.text[:300]
    payload = response.json()
    assert set(payload) == {"error"}
    assert isinstance(payload["error"], str) and payload["error"]
    if message is not None:
        assert payload["error"] == message
    return str(payload["error"])


def assert_rfc3339_utc(value: str) -> None:
    assert RFC3339_UTC.fullmatch(value), value
    assert datetime.fromisoformat(value).utcoffset() is not None


# --- contacts.upsert -----------------------------------------------------------------------------


def upsert(client: TestClient, tenant: Tenant, body: Any) -> httpx.Response:
    response: httpx.Response = client.post(
        "/api/contacts.upsert", headers=tenant.headers, json=body
    )
    return response


def test_upsert_creates_then_updates(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    response = upsert(
        client, tenant, {"workspace_id": tenant.id, "contact": {"email": " Jane@Example.com "}}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"email": JANE, "action": "create", "changed_fields": []}
    response = upsert(
        client,
        tenant,
        {"workspace_id": tenant.id, "contact": {"email": JANE, "first_name": "Jane"}},
    )
    assert response.json() == {"email": JANE, "action": "update", "changed_fields": ["first_name"]}
    assert count_contacts(engine, tenant.id) == 1


def test_upsert_follows_rule_7(client: TestClient, tenant: Tenant) -> None:
    first = {"email": JANE, "first_name": "Jane", "last_name": "Doe", "custom_json_1": [1]}
    assert upsert(client, tenant, {"workspace_id": tenant.id, "contact": first}).is_success
    second = {"email": JANE, "last_name": None, "custom_number_1": 3}
    assert upsert(client, tenant, {"workspace_id": tenant.id, "contact": second}).is_success
    stored = get_contact(client, tenant, JANE)
    assert stored is not None
    assert stored["first_name"] == "Jane"
    assert stored["last_name"] is None
    assert stored["custom_json_1"] == [1]
    assert stored["custom_number_1"] == 3


@pytest.mark.parametrize(
    ("contact", "field", "message"),
    [
        ({"email": JANE, "custom_number_2": "3"}, "custom_number_2", None),
        ({"email": JANE, "custom_number_3": True}, "custom_number_3", None),
        ({"email": JANE, "first_name": 1}, "first_name", "first_name: expected a string"),
        ({"email": JANE, "timezone": "Mars/Base"}, "timezone", None),
        ({"email": JANE, "custom_datetime_1": "2024-05-01"}, "custom_datetime_1", None),
        ({"email": JANE, "custom_datetime_2": "2024-05-01T10:00:00"}, "custom_datetime_2", None),
        ({"email": JANE, "custom_json_2": "x"}, "custom_json_2", None),
        ({"email": JANE, "state": "a\u0000"}, "state", None),
        ({"email": JANE, "job_title": "x" * 256}, "job_title", None),
        ({"first_name": "Jane"}, "email", "email is required"),
        ({"email": "jane"}, "email", "invalid email format"),
        ("jane@example.com", "contact", "contact must be a JSON object"),
        ([{"email": JANE}], "contact", "contact must be a JSON object"),
    ],
)
def test_upsert_of_an_invalid_contact_is_400_naming_the_field(
    client: TestClient,
    engine: Engine,
    tenant: Tenant,
    contact: Any,
    field: str,
    message: str | None,
) -> None:
    response = upsert(client, tenant, {"workspace_id": tenant.id, "contact": contact})
    error = assert_error(response, 400, message)
    assert field in error
    if field not in ("email", "contact"):
        assert error.startswith(f"{field}: ")
    assert count_contacts(engine) == 0


def test_upsert_rejects_a_non_finite_number(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    body = b'{"workspace_id": "acme", "contact": {"email": "jane@example.com", '
    body += b'"custom_number_1": 1e400}}'
    response = client.post(
        "/api/contacts.upsert",
        headers={**tenant.headers, "Content-Type": "application/json"},
        content=body,
    )
    error = assert_error(response, 400)
    assert error.startswith("custom_number_1: ")
    assert count_contacts(engine) == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"workspace_id": "acme"}, "contact is required"),
        ({"workspace_id": "acme", "contact": None}, "contact is required"),
        ({"contact": {"email": JANE}}, "workspace_id is required"),
        ({"workspace_id": "", "contact": {"email": JANE}}, "workspace_id is required"),
        ({}, "workspace_id is required"),
    ],
)
def test_upsert_request_errors(
    client: TestClient, engine: Engine, tenant: Tenant, body: Any, message: str
) -> None:
    assert_error(upsert(client, tenant, body), 400, message)
    assert count_contacts(engine) == 0


def test_upsert_body_not_json_is_400(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    response = client.post(
        "/api/contacts.upsert",
        headers={**tenant.headers, "Content-Type": "application/json"},
        content=b"{nope",
    )
    error = assert_error(response, 400)
    assert error.startswith("invalid JSON body: ")
    assert count_contacts(engine) == 0


# --- contacts.getByEmail / getByExternalID ----------------------------------------------------


def test_get_by_email_returns_every_field_timestamps_and_memberships(
    client: TestClient, tenant: Tenant
) -> None:
    create_list(client, tenant, "news")
    create_list(client, tenant, "weekly", double_optin=True)
    import_ok(
        client,
        tenant,
        [{"email": JANE, "first_name": "Jane", "custom_datetime_1": "2024-05-01T11:00:00+02:00"}],
        ["weekly", "news"],
    )
    response = client.get(
        "/api/contacts.getByEmail",
        params={"workspace_id": tenant.id, "email": JANE},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    assert list(response.json()) == ["contact"]
    contact = response.json()["contact"]
    assert set(contact) == {"email", *FIELDS, "created_at", "updated_at", "contact_lists"}
    assert contact["email"] == JANE
    assert contact["first_name"] == "Jane"
    assert contact["last_name"] is None
    assert contact["custom_datetime_1"] == "2024-05-01T09:00:00Z"
    assert_rfc3339_utc(contact["created_at"])
    assert_rfc3339_utc(contact["updated_at"])
    lists = contact["contact_lists"]
    assert [(m["list_id"], m["status"]) for m in lists] == [
        ("news", "active"),
        ("weekly", "pending"),
    ]
    for membership in lists:
        assert set(membership) == {"list_id", "status", "created_at", "updated_at"}
        assert_rfc3339_utc(membership["created_at"])
        assert_rfc3339_utc(membership["updated_at"])


def test_get_by_email_without_memberships_has_an_empty_list(
    client: TestClient, tenant: Tenant
) -> None:
    import_ok(client, tenant, [{"email": JANE}])
    contact = get_contact(client, tenant, JANE)
    assert contact is not None
    assert contact["contact_lists"] == []


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"email": "nobody@example.com"}, 404, "contact not found: nobody@example.com"),
        ({"email": " Nobody@Example.com "}, 404, "contact not found: nobody@example.com"),
        ({}, 400, "email is required"),
        ({"email": ""}, 400, "email is required"),
        ({"email": "not-an-email"}, 400, "invalid email format"),
    ],
)
def test_get_by_email_errors(
    client: TestClient, tenant: Tenant, params: dict[str, str], status: int, message: str
) -> None:
    import_ok(client, tenant, [{"email": JANE}])
    response = client.get(
        "/api/contacts.getByEmail",
        params={"workspace_id": tenant.id, **params},
        headers=tenant.headers,
    )
    assert_error(response, status, message)


def test_get_by_email_requires_workspace_id(client: TestClient, tenant: Tenant) -> None:
    import_ok(client, tenant, [{"email": JANE}])
    response = client.get(
        "/api/contacts.getByEmail", params={"email": JANE}, headers=tenant.headers
    )
    assert_error(response, 400, "workspace_id is required")


def by_external_id(client: TestClient, tenant: Tenant, external_id: str | None) -> httpx.Response:
    params = {"workspace_id": tenant.id}
    if external_id is not None:
        params["external_id"] = external_id
    response: httpx.Response = client.get(
        "/api/contacts.getByExternalID", params=params, headers=tenant.headers
    )
    return response


def test_get_by_external_id(client: TestClient, tenant: Tenant) -> None:
    create_list(client, tenant, "news")
    import_ok(
        client,
        tenant,
        [
            {"email": JANE, "external_id": "  user_1 ", "first_name": "Jane"},
            {"email": "bob@example.com", "external_id": "user_2"},
        ],
        ["news"],
    )
    response = by_external_id(client, tenant, "user_1")
    assert response.status_code == 200, response.text
    contact = response.json()["contact"]
    assert (contact["email"], contact["external_id"], contact["first_name"]) == (
        JANE,
        "user_1",
        "Jane",
    )
    assert [m["list_id"] for m in contact["contact_lists"]] == ["news"]
    assert set(contact) == {"email", *FIELDS, "created_at", "updated_at", "contact_lists"}
    assert by_external_id(client, tenant, "user_2").json()["contact"]["email"] == (
        "bob@example.com"
    )


def test_get_by_external_id_errors(client: TestClient, tenant: Tenant) -> None:
    import_ok(client, tenant, [{"email": JANE, "external_id": "user_1"}])
    assert_error(by_external_id(client, tenant, "USER_1"), 404)
    assert_error(by_external_id(client, tenant, "nope"), 404)
    assert_error(by_external_id(client, tenant, None), 400, "external_id is required")
    assert_error(by_external_id(client, tenant, ""), 400, "external_id is required")


def test_get_by_external_id_after_it_was_cleared(client: TestClient, tenant: Tenant) -> None:
    import_ok(client, tenant, [{"email": JANE, "external_id": "user_1"}])
    import_ok(client, tenant, [{"email": JANE, "external_id": None}])
    assert_error(by_external_id(client, tenant, "user_1"), 404)


# --- contacts.list -----------------------------------------------------------------------------


def list_page(client: TestClient, tenant: Tenant, **params: Any) -> httpx.Response:
    response: httpx.Response = client.get(
        "/api/contacts.list",
        params={"workspace_id": tenant.id, **params},
        headers=tenant.headers,
    )
    return response


def list_emails(client: TestClient, tenant: Tenant, **params: Any) -> list[str]:
    response = list_page(client, tenant, **params)
    assert response.status_code == 200, response.text
    return [c["email"] for c in response.json()["contacts"]]


def seed(client: TestClient, tenant: Tenant, count: int, prefix: str = "user") -> list[str]:
    emails = [f"{prefix}{i:03d}@example.com" for i in range(count)]
    import_ok(client, tenant, [{"email": e} for e in reversed(emails)])
    return emails


def test_list_default_limit_is_20(client: TestClient, tenant: Tenant) -> None:
    emails = seed(client, tenant, 25)
    response = list_page(client, tenant)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert set(payload) == {"contacts", "next_cursor"}
    assert [c["email"] for c in payload["contacts"]] == emails[:20]
    assert isinstance(payload["next_cursor"], str) and payload["next_cursor"]
    contact = payload["contacts"][0]
    assert {"email", *FIELDS, "created_at", "updated_at"} <= set(contact)
    assert_rfc3339_utc(contact["created_at"])


@pytest.mark.parametrize("limit", [1, 100])
def test_list_limit_bounds_are_accepted(client: TestClient, tenant: Tenant, limit: int) -> None:
    emails = seed(client, tenant, 101)
    assert list_emails(client, tenant, limit=limit) == emails[:limit]


@pytest.mark.parametrize("limit", ["0", "101", "-1", "1000", "ten", "1.5", ""])
def test_list_limit_outside_1_to_100_is_400(client: TestClient, tenant: Tenant, limit: str) -> None:
    seed(client, tenant, 3)
    error = assert_error(list_page(client, tenant, limit=limit), 400)
    assert "limit" in error


def test_list_is_empty_for_an_empty_workspace(client: TestClient, tenant: Tenant) -> None:
    assert list_page(client, tenant).json() == {"contacts": [], "next_cursor": None}


def test_cursor_pagination_visits_every_contact_exactly_once(
    client: TestClient, tenant: Tenant
) -> None:
    emails = seed(client, tenant, 45)
    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 10}
        if cursor is not None:
            params["cursor"] = cursor
        payload = list_page(client, tenant, **params).json()
        sizes.append(len(payload["contacts"]))
        seen += [c["email"] for c in payload["contacts"]]
        cursor = payload["next_cursor"]
        if cursor is None:
            break
        assert len(sizes) < 10, "pagination does not end"
    assert sizes == [10, 10, 10, 10, 5]
    assert seen == emails


def test_last_full_page_has_no_next_cursor(client: TestClient, tenant: Tenant) -> None:
    emails = seed(client, tenant, 20)
    first = list_page(client, tenant, limit=10).json()
    second = list_page(client, tenant, limit=10, cursor=first["next_cursor"]).json()
    assert [c["email"] for c in first["contacts"] + second["contacts"]] == emails
    assert second["next_cursor"] is None


def _all_pages(client: TestClient, tenant: Tenant, cursor: str | None, **params: Any) -> list[str]:
    seen: list[str] = []
    while cursor is not None:
        payload = list_page(client, tenant, cursor=cursor, **params).json()
        seen += [c["email"] for c in payload["contacts"]]
        cursor = payload["next_cursor"]
    return seen


def test_imports_between_pages_cause_no_repeats_or_skips(
    client: TestClient, tenant: Tenant
) -> None:
    existing = seed(client, tenant, 45, prefix="m")
    first = list_page(client, tenant, limit=10).json()
    seen = [c["email"] for c in first["contacts"]]
    assert seen == existing[:10]

    # New contacts that sort before the cursor, between seen ones, and after it.
    new_before = [f"a{i:02d}@example.com" for i in range(15)] + ["m004x@example.com"]
    new_after = ["m020x@example.com", "zz@example.com"]
    import_ok(client, tenant, [{"email": e} for e in new_before + new_after])
    # And updates of contacts already seen and not yet seen.
    import_ok(client, tenant, [{"email": existing[3], "first_name": "X"}])
    import_ok(client, tenant, [{"email": existing[30], "first_name": "Y"}])

    seen += _all_pages(client, tenant, first["next_cursor"], limit=10)
    assert len(seen) == len(set(seen)), "a contact was repeated"
    assert set(existing) <= set(seen), "an existing contact was skipped"
    assert seen == sorted(seen)
    assert set(new_after) <= set(seen)
    assert not set(new_before) & set(seen)


def test_deleting_the_cursor_contact_between_pages_skips_nothing(
    client: TestClient, tenant: Tenant
) -> None:
    emails = seed(client, tenant, 30)
    first = list_page(client, tenant, limit=10).json()
    response = client.post(
        "/api/contacts.delete",
        headers=tenant.headers,
        json={"workspace_id": tenant.id, "email": emails[9]},
    )
    assert response.status_code == 200, response.text
    rest = _all_pages(client, tenant, first["next_cursor"], limit=10)
    assert rest == emails[10:]


@pytest.mark.parametrize("cursor", ["a", "_w", "not-a-cursor", "!!!!", "===="])
def test_an_invalid_cursor_is_400(client: TestClient, tenant: Tenant, cursor: str) -> None:
    seed(client, tenant, 3)
    error = assert_error(list_page(client, tenant, cursor=cursor), 400)
    assert "cursor" in error


@pytest.fixture
def directory(client: TestClient, tenant: Tenant) -> Tenant:
    """Four contacts with filterable fields and memberships in `news` and `weekly`."""
    create_list(client, tenant, "news")
    create_list(client, tenant, "weekly", double_optin=True)
    people = [
        {
            "email": "alice@example.com",
            "external_id": "EXT-alpha",
            "first_name": "Alice",
            "last_name": "Anders",
            "phone": "+1 555 0100",
            "country": "US",
            "language": "en-US",
        },
        {
            "email": "bob@example.org",
            "external_id": "ext-beta",
            "first_name": "Bob",
            "last_name": "Brown",
            "phone": "+44 20 7946 0000",
            "country": "GB",
            "language": "en-GB",
        },
        {
            "email": "carla@sample.net",
            "first_name": "Carla",
            "last_name": "Anderson",
            "country": "FR",
            "language": "fr",
        },
        {"email": "dan@sample.net", "first_name": "50%_off", "last_name": "D"},
    ]
    import_ok(client, tenant, people[:2], ["news"])
    import_ok(client, tenant, people[2:3], ["weekly"])
    import_ok(client, tenant, people[3:])
    set_status(client, tenant, "bob@example.org", "news", "unsubscribed")
    return tenant


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"email": "EXAMPLE"}, ["alice@example.com", "bob@example.org"]),
        ({"email": "sample.net"}, ["carla@sample.net", "dan@sample.net"]),
        ({"external_id": "ext-"}, ["alice@example.com", "bob@example.org"]),
        ({"external_id": "ALPHA"}, ["alice@example.com"]),
        ({"first_name": "AL"}, ["alice@example.com"]),
        ({"first_name": "a"}, ["alice@example.com", "carla@sample.net"]),
        ({"last_name": "anders"}, ["alice@example.com", "carla@sample.net"]),
        ({"phone": "555"}, ["alice@example.com"]),
        ({"phone": "+44"}, ["bob@example.org"]),
        ({"country": "gb"}, ["bob@example.org"]),
        ({"language": "EN"}, ["alice@example.com", "bob@example.org"]),
        ({"language": "fr"}, ["carla@sample.net"]),
        ({"first_name": "a", "country": "fr"}, ["carla@sample.net"]),
        ({"first_name": "%"}, ["dan@sample.net"]),
        ({"first_name": "_"}, ["dan@sample.net"]),
        ({"first_name": "zzz"}, []),
        ({"list_id": "news"}, ["alice@example.com", "bob@example.org"]),
        ({"list_id": "weekly"}, ["carla@sample.net"]),
        ({"list_id": "news", "contact_list_status": "active"}, ["alice@example.com"]),
        ({"list_id": "news", "contact_list_status": "unsubscribed"}, ["bob@example.org"]),
        ({"list_id": "weekly", "contact_list_status": "active"}, []),
        ({"contact_list_status": "pending"}, ["carla@sample.net"]),
        ({"list_id": "news", "email": "bob"}, ["bob@example.org"]),
    ],
)
def test_list_filters(
    client: TestClient, directory: Tenant, params: dict[str, str], expected: list[str]
) -> None:
    assert list_emails(client, directory, **params) == expected


def test_list_filter_with_pagination(client: TestClient, tenant: Tenant) -> None:
    import_ok(
        client,
        tenant,
        [{"email": f"u{i:02d}@example.com", "country": "US" if i % 3 else "FR"} for i in range(30)],
    )
    expected = [f"u{i:02d}@example.com" for i in range(30) if i % 3]
    first = list_page(client, tenant, limit=7, country="us").json()
    seen = [c["email"] for c in first["contacts"]]
    seen += _all_pages(client, tenant, first["next_cursor"], limit=7, country="us")
    assert seen == expected


def test_list_with_an_invalid_status_is_400(client: TestClient, directory: Tenant) -> None:
    error = assert_error(list_page(client, directory, contact_list_status="subscribed"), 400)
    assert "contact_list_status" in error


def test_list_with_contact_lists(client: TestClient, directory: Tenant) -> None:
    plain = list_page(client, directory).json()["contacts"]
    assert all(c.get("contact_lists") is None for c in plain)

    rich = list_page(client, directory, with_contact_lists="true").json()["contacts"]
    by_email = {c["email"]: c["contact_lists"] for c in rich}
    assert {e: [(m["list_id"], m["status"]) for m in ms] for e, ms in by_email.items()} == {
        "alice@example.com": [("news", "active")],
        "bob@example.org": [("news", "unsubscribed")],
        "carla@sample.net": [("weekly", "pending")],
        "dan@sample.net": [],
    }
    membership = by_email["alice@example.com"][0]
    assert set(membership) == {"list_id", "status", "created_at", "updated_at"}
    assert_rfc3339_utc(membership["created_at"])


# --- contacts.count ---------------------------------------------------------------------------


def count(client: TestClient, tenant: Tenant) -> int:
    response = client.get(
        "/api/contacts.count", params={"workspace_id": tenant.id}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"total_contacts"}
    return int(response.json()["total_contacts"])


def test_count(client: TestClient, tenant: Tenant, other_tenant: Tenant) -> None:
    assert count(client, tenant) == 0
    import_ok(client, tenant, [{"email": f"c{i}@example.com"} for i in range(7)] + ["bad"])
    import_ok(client, other_tenant, [{"email": "c1@example.com"}])
    assert count(client, tenant) == 7
    assert count(client, other_tenant) == 1


# --- contacts.delete --------------------------------------------------------------------------


def delete(client: TestClient, tenant: Tenant, email: Any) -> httpx.Response:
    response: httpx.Response = client.post(
        "/api/contacts.delete",
        headers=tenant.headers,
        json={"workspace_id": tenant.id, "email": email},
    )
    return response


def test_delete_removes_the_contact_and_its_memberships(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    create_list(client, tenant, "news")
    create_list(client, tenant, "weekly", double_optin=True)
    import_ok(client, tenant, [{"email": JANE}, {"email": "bob@example.com"}], ["news", "weekly"])
    assert count_memberships(engine) == 4

    response = delete(client, tenant, " JANE@example.com ")
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    assert get_contact(client, tenant, JANE) is None
    assert count_contacts(engine, tenant.id) == 1
    assert count_memberships(engine) == 2
    assert memberships(client, tenant, "bob@example.com") == {"news": "active", "weekly": "pending"}

    # A contact imported again starts afresh: created, with only the memberships it is given.
    operations = import_ok(client, tenant, [{"email": JANE}], ["news"])
    assert operations[0]["action"] == "create"
    assert memberships(client, tenant, JANE) == {"news": "active"}


@pytest.mark.parametrize(
    ("email", "status", "message"),
    [
        ("nobody@example.com", 404, "contact not found: nobody@example.com"),
        ("not-an-email", 400, "invalid email format"),
        ("", 400, None),
        (None, 400, None),
    ],
)
def test_delete_errors_change_nothing(
    client: TestClient,
    engine: Engine,
    tenant: Tenant,
    email: Any,
    status: int,
    message: str | None,
) -> None:
    import_ok(client, tenant, [{"email": JANE}])
    before = snapshot(engine)
    assert_error(delete(client, tenant, email), status, message)
    assert snapshot(engine) == before


def test_delete_twice_is_404(client: TestClient, tenant: Tenant) -> None:
    import_ok(client, tenant, [{"email": JANE}])
    assert delete(client, tenant, JANE).status_code == 200
    assert_error(delete(client, tenant, JANE), 404, f"contact not found: {JANE}")


# --- contactLists.updateStatus ----------------------------------------------------------------


@pytest.fixture
def member(client: TestClient, tenant: Tenant) -> Tenant:
    """jane@example.com, active in `news`; a list `weekly` she is not in."""
    create_list(client, tenant, "news")
    create_list(client, tenant, "weekly", double_optin=True)
    import_ok(client, tenant, [{"email": JANE}, {"email": "bob@example.com"}], ["news"])
    import_ok(client, tenant, [{"email": "amy@example.com"}])
    return tenant


@pytest.mark.parametrize("status", STATUSES)
def test_update_status_sets_any_status(client: TestClient, member: Tenant, status: str) -> None:
    set_status(client, member, JANE, "news", "unsubscribed")
    response = update_status(client, member, "  Jane@EXAMPLE.com", "news", status)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    assert memberships(client, member, JANE) == {"news": status}
    assert memberships(client, member, "bob@example.com") == {"news": "active"}


@pytest.mark.parametrize(
    ("email", "list_id", "status", "code", "message"),
    [
        ("nobody@example.com", "news", "active", 404, "contact not found: nobody@example.com"),
        (JANE, "nope", "active", 404, "list not found: nope"),
        (JANE, "weekly", "active", 404, f"contact {JANE} is not in list weekly"),
        ("amy@example.com", "news", "active", 404, None),
        (JANE, "news", "subscribed", 400, None),
        (JANE, "news", "", 400, None),
        (JANE, "news", "ACTIVE", 400, None),
        (JANE, "news", None, 400, None),
        ("not-an-email", "news", "active", 400, None),
    ],
)
def test_update_status_errors_change_nothing(
    client: TestClient,
    engine: Engine,
    member: Tenant,
    email: str,
    list_id: str,
    status: Any,
    code: int,
    message: str | None,
) -> None:
    before = snapshot(engine)
    response = update_status(client, member, email, list_id, status)
    error = assert_error(response, code, message)
    if code == 400 and email != "not-an-email":
        assert "status" in error
    assert snapshot(engine) == before
