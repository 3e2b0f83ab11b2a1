"""Re-sync: contacts imported again exactly as the import that last wrote them are answered
unchanged without being checked or written again (contacts.import_digest), and only then."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from audience.db.models import contact_lists, contacts
from tests.conftest import Tenant
from tests.contacts.conftest import MakeClient
from tests.contacts.helpers import (
    create_list,
    get_contact,
    import_body,
    import_ok,
    memberships,
    post_import,
)
from tests.reliability.test_database_limits import contact_row_locked, driver_url

PEOPLE: list[dict[str, Any]] = [
    {"email": " Ann@Example.com ", "first_name": "Ann", "custom_json_1": {"tier": "gold"}},
    {"email": "bo@example.com", "last_name": "Bo", "custom_number_1": 7},
    {"email": "cy@example.com", "country": "FR", "custom_datetime_1": "2024-05-01T09:00:00Z"},
]


def _stored(engine: Engine, workspace_id: str) -> dict[str, tuple[Any, ...]]:
    """Every stored contact's row, by email."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(contacts).where(contacts.c.workspace_id == workspace_id)
        ).mappings()
        return {row["email"]: tuple(row.values()) for row in rows}


def _memberships(engine: Engine, workspace_id: str) -> dict[tuple[str, str], tuple[Any, ...]]:
    """Every stored membership's row, by (email, list id)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(contact_lists).where(contact_lists.c.workspace_id == workspace_id)
        ).mappings()
        return {(row["email"], row["list_id"]): tuple(row.values()) for row in rows}


def _summary(client: TestClient, tenant: Tenant, items: list[dict[str, Any]]) -> dict[str, int]:
    response = post_import(client, tenant, items)
    assert response.status_code == 200, response.text
    return dict(response.json()["summary"])


def test_the_same_contacts_again_are_unchanged_and_nothing_is_written(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    import_ok(client, tenant, PEOPLE)
    before = _stored(engine, tenant.id)
    for _ in range(2):
        operations = import_ok(client, tenant, PEOPLE)
        assert [(op["action"], op["changed_fields"], op["error"]) for op in operations] == [
            ("update", [], None)
        ] * 3
        assert [op["email"] for op in operations] == [
            "ann@example.com",
            "bo@example.com",
            "cy@example.com",
        ]
    assert _stored(engine, tenant.id) == before  # updated_at included: nothing rewritten
    assert _summary(client, tenant, PEOPLE) == {
        "created": 0,
        "updated": 0,
        "unchanged": 3,
        "errors": 0,
    }


def test_a_contact_changed_since_by_another_write_is_restored(
    client: TestClient, tenant: Tenant
) -> None:
    import_ok(client, tenant, PEOPLE)
    body = {"workspace_id": tenant.id, "contact": {"email": "bo@example.com", "last_name": "X"}}
    response = client.post("/api/contacts.upsert", headers=tenant.headers, json=body)
    assert response.status_code == 200, response.text
    operations = import_ok(client, tenant, PEOPLE)
    assert [op["changed_fields"] for op in operations] == [[], ["last_name"], []]
    contact = get_contact(client, tenant, "bo@example.com")
    assert contact is not None and contact["last_name"] == "Bo"


def test_a_deleted_contact_is_created_again(client: TestClient, tenant: Tenant) -> None:
    import_ok(client, tenant, PEOPLE)
    body = {"workspace_id": tenant.id, "email": "cy@example.com"}
    assert client.post("/api/contacts.delete", headers=tenant.headers, json=body).status_code == 200
    operations = import_ok(client, tenant, PEOPLE)
    assert [op["action"] for op in operations] == ["update", "update", "create"]
    contact = get_contact(client, tenant, "cy@example.com")
    assert contact is not None and contact["country"] == "FR"


def test_the_same_values_sent_differently_are_checked_again(
    client: TestClient, tenant: Tenant
) -> None:
    """Other bytes (here the email's case and a key order) or another merge policy are
    another input: checked and merged as usual, still unchanged."""
    import_ok(client, tenant, PEOPLE)
    again = [
        {"first_name": "Ann", "custom_json_1": {"tier": "gold"}, "email": "ann@example.com"},
        *PEOPLE[1:],
    ]
    operations = import_ok(client, tenant, again)
    assert [(op["action"], op["changed_fields"]) for op in operations] == [("update", [])] * 3
    response = client.post(
        "/api/contacts.import",
        headers=tenant.headers,
        json={"workspace_id": tenant.id, "contacts": PEOPLE, "merge": "fill_blanks"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["summary"]["unchanged"] == 3


def test_an_invalid_contact_sent_again_is_refused_again(client: TestClient, tenant: Tenant) -> None:
    bad = [*PEOPLE, {"email": "dee@example.com", "custom_number_2": "seven"}]
    for _ in range(2):
        operations = import_ok(client, tenant, bad)
        assert operations[3]["action"] == "error"
        assert operations[3]["error"] == "custom_number_2: expected a number"


def test_duplicates_follow_their_own_rule(client: TestClient, tenant: Tenant) -> None:
    """An email sent twice in a batch is applied in order each time (rule 8)."""
    twice = [*PEOPLE, {"email": "ann@example.com", "first_name": "Annie"}]
    import_ok(client, tenant, twice)
    operations = import_ok(client, tenant, twice)
    assert [op["changed_fields"] for op in operations] == [["first_name"], [], [], ["first_name"]]
    contact = get_contact(client, tenant, "ann@example.com")
    assert contact is not None and contact["first_name"] == "Annie"


def test_with_lists_every_contact_is_subscribed(client: TestClient, tenant: Tenant) -> None:
    """Known contacts are still subscribed, each by its own list_status when it has one."""
    people = [*PEOPLE, {"email": "di@example.com", "list_status": "unsubscribed"}]
    import_ok(client, tenant, people)
    create_list(client, tenant, "news")
    operations = import_ok(client, tenant, people, lists=["news"])
    assert [op["changed_fields"] for op in operations] == [[], [], [], []]
    assert [op["lists"][0]["status"] for op in operations] == ["active"] * 3 + ["unsubscribed"]
    assert memberships(client, tenant, "bo@example.com") == {"news": "active"}
    assert memberships(client, tenant, "di@example.com") == {"news": "unsubscribed"}
    operations = import_ok(client, tenant, people, lists=["news"])
    assert [op["lists"][0]["previous_status"] for op in operations] == ["active"] * 3 + [
        "unsubscribed"
    ]


def test_a_dry_run_answers_the_same_and_writes_nothing(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    import_ok(client, tenant, PEOPLE)
    before = _stored(engine, tenant.id)
    response = client.post(
        "/api/contacts.import",
        headers=tenant.headers,
        json={"workspace_id": tenant.id, "contacts": PEOPLE, "dry_run": True},
    )
    assert response.status_code == 200, response.text
    assert response.json()["summary"]["unchanged"] == 3
    assert _stored(engine, tenant.id) == before


def test_stored_contacts_the_sample_misses_are_answered_all_the_same(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    """The lookup of stored digests samples every SAMPLE_EVERY-th email first (sorted) and
    looks no further when none is stored: contacts it misses go the usual way."""
    import_ok(client, tenant, PEOPLE[1:2])  # bo: sorted second, never in the sample
    before = _stored(engine, tenant.id)
    changed = {"email": "cy@example.com", "country": "DE"}
    import_ok(client, tenant, [{"email": "cy@example.com", "country": "FR"}])
    fresh = [{"email": f"new{i}@example.com", "first_name": f"N{i}"} for i in range(8)]
    operations = import_ok(client, tenant, [PEOPLE[0], PEOPLE[1], changed, *fresh])
    assert [(op["action"], op["changed_fields"]) for op in operations[:3]] == [
        ("create", ["custom_json_1", "first_name"]),
        ("update", []),
        ("update", ["country"]),
    ]
    assert [op["action"] for op in operations[3:]] == ["create"] * 8
    after = _stored(engine, tenant.id)
    assert after["bo@example.com"] == before["bo@example.com"]  # not rewritten
    assert after["cy@example.com"][list(contacts.c.keys()).index("country")] == "DE"


# --- with lists: known contacts whose memberships the import would not change ----------------


def _lists(operation: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(o["list_id"], o["status"], o["previous_status"]) for o in operation["lists"]]


def test_with_lists_the_same_contacts_again_change_nothing_and_write_nothing(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    people = [*PEOPLE, {"email": "di@example.com", "list_status": "unsubscribed"}]
    create_list(client, tenant, "news")
    create_list(client, tenant, "promo", double_optin=True)
    first = import_ok(client, tenant, people, lists=["news", "promo"])
    assert [_lists(op) for op in first] == [
        [("news", "active", None), ("promo", "pending", None)]
    ] * 3 + [[("news", "unsubscribed", None), ("promo", "unsubscribed", None)]]
    before = _stored(engine, tenant.id), _memberships(engine, tenant.id)
    again = import_ok(client, tenant, people, lists=["news", "promo"])
    assert [(op["action"], op["changed_fields"], op["error"]) for op in again] == [
        ("update", [], None)
    ] * 4
    assert [_lists(op) for op in again] == [
        [("news", "active", "active"), ("promo", "pending", "pending")]
    ] * 3 + [[("news", "unsubscribed", "unsubscribed"), ("promo", "unsubscribed", "unsubscribed")]]
    assert (_stored(engine, tenant.id), _memberships(engine, tenant.id)) == before
    response = post_import(client, tenant, people, ["news", "promo"])
    assert response.json()["summary"] == {"created": 0, "updated": 0, "unchanged": 4, "errors": 0}


def test_with_lists_a_known_contact_is_still_subscribed_where_the_import_changes_something(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    """The same contact bytes, but a list it is not in yet, a pending membership the
    request's `active` confirms, or a membership removed since: those are written."""
    create_list(client, tenant, "news", double_optin=True)
    create_list(client, tenant, "promo")
    import_ok(client, tenant, PEOPLE, lists=["news"])
    assert memberships(client, tenant, "bo@example.com") == {"news": "pending"}
    # A list none of them is in: subscribed to it, the other left as it is.
    operations = import_ok(client, tenant, PEOPLE, lists=["news", "promo"])
    assert [_lists(op) for op in operations] == [
        [("news", "pending", "pending"), ("promo", "active", None)]
    ] * 3
    assert [op["changed_fields"] for op in operations] == [[], [], []]
    # The request's list_status `active` confirms the pending memberships.
    body = import_body(tenant.id, PEOPLE, ["news", "promo"]) | {"list_status": "active"}
    response = client.post("/api/contacts.import", headers=tenant.headers, json=body)
    assert response.status_code == 200, response.text
    assert [_lists(op) for op in response.json()["operations"]] == [
        [("news", "active", "pending"), ("promo", "active", "active")]
    ] * 3
    assert memberships(client, tenant, "cy@example.com") == {"news": "active", "promo": "active"}
    # A membership changed since by another write is restored by the rules (here an
    # unsubscribed one stays so: an opt-out is never undone).
    body = {"workspace_id": tenant.id, "email": "bo@example.com", "list_id": "promo"}
    body["status"] = "unsubscribed"
    update = client.post("/api/contactLists.updateStatus", headers=tenant.headers, json=body)
    assert update.status_code == 200, update.text
    operations = import_ok(client, tenant, PEOPLE, lists=["promo"])
    assert [_lists(op) for op in operations] == [
        [("promo", "active", "active")],
        [("promo", "unsubscribed", "unsubscribed")],
        [("promo", "active", "active")],
    ]


def test_with_lists_a_deleted_contact_is_created_and_subscribed_again(
    client: TestClient, tenant: Tenant
) -> None:
    create_list(client, tenant, "news")
    import_ok(client, tenant, PEOPLE, lists=["news"])
    body = {"workspace_id": tenant.id, "email": "cy@example.com"}
    assert client.post("/api/contacts.delete", headers=tenant.headers, json=body).status_code == 200
    operations = import_ok(client, tenant, PEOPLE, lists=["news"])
    assert [op["action"] for op in operations] == ["update", "update", "create"]
    assert _lists(operations[2]) == [("news", "active", None)]
    assert memberships(client, tenant, "cy@example.com") == {"news": "active"}


def test_with_lists_a_contact_whose_own_list_status_changed_is_checked_again(
    client: TestClient, tenant: Tenant
) -> None:
    """A contact's own list_status is part of its bytes: another one is another input."""
    create_list(client, tenant, "news")
    import_ok(client, tenant, PEOPLE, lists=["news"])
    changed = [PEOPLE[0], {**PEOPLE[1], "list_status": "unsubscribed"}, PEOPLE[2]]
    operations = import_ok(client, tenant, changed, lists=["news"])
    assert [_lists(op) for op in operations] == [
        [("news", "active", "active")],
        [("news", "unsubscribed", "active")],
        [("news", "active", "active")],
    ]
    response = post_import(client, tenant, changed, ["news"])
    assert response.json()["summary"]["unchanged"] == 3


def test_with_lists_known_contacts_are_not_locked(
    backend: str, database_url: str, make_client: MakeClient, tenant: Tenant
) -> None:
    """A re-sync that changes nothing takes no row lock (PostgreSQL's row locks): a contact
    and a membership locked by another session do not hold it up, while an import that
    changes that contact waits for the lock and times out (503)."""
    if backend == "sqlite":
        pytest.skip("row locks are PostgreSQL's: SQLite's import holds the one write lock")
    client = make_client(db_lock_timeout_seconds=1.0)
    create_list(client, tenant, "news")
    import_ok(client, tenant, PEOPLE, lists=["news"])
    with (
        contact_row_locked(database_url, tenant.id, "bo@example.com"),
        psycopg.connect(driver_url(database_url)) as holder,
    ):
        holder.execute(
            "SELECT 1 FROM contact_lists WHERE workspace_id = %s AND email = %s FOR UPDATE",
            (tenant.id, "cy@example.com"),
        )
        operations = import_ok(client, tenant, PEOPLE, lists=["news"])
        assert [_lists(op) for op in operations] == [[("news", "active", "active")]] * 3
        changed = [PEOPLE[0], {**PEOPLE[1], "last_name": "Bob"}, PEOPLE[2]]
        response = post_import(client, tenant, changed, ["news"])
        assert response.status_code == 503, response.text
        holder.rollback()
