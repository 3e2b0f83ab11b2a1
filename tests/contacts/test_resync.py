"""Re-sync: contacts imported again exactly as the import that last wrote them are answered
unchanged without being checked or written again (contacts.import_digest), and only then."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from audience.db.models import contacts
from tests.conftest import Tenant
from tests.contacts.helpers import create_list, get_contact, import_ok, memberships, post_import

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
