"""docs/import.md rule 10: subscribe_to_lists, double opt-in, and opt-outs never re-subscribed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from audience.db.models import contact_lists
from tests.conftest import Tenant
from tests.contacts.helpers import (
    actions,
    count_memberships,
    create_list,
    get_contact,
    import_ok,
    memberships,
    set_status,
)

JANE = "jane@example.com"


@pytest.fixture
def lists(client: TestClient, tenant: Tenant) -> Tenant:
    """`news` (single opt-in) and `weekly` (double opt-in)."""
    create_list(client, tenant, "news")
    create_list(client, tenant, "weekly", double_optin=True)
    return tenant


def _membership_rows(engine: Engine, email: str) -> list[tuple[object, ...]]:
    query = (
        select(contact_lists)
        .where(contact_lists.c.email == email)
        .order_by(contact_lists.c.list_id)
    )
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


def test_new_memberships_are_active_or_pending_for_double_optin(
    client: TestClient, lists: Tenant
) -> None:
    operations = import_ok(
        client,
        lists,
        [{"email": JANE}, {"email": "Bob@Example.com"}],
        ["news", "weekly"],
    )
    assert actions(operations) == ["create", "create"]
    assert memberships(client, lists, JANE) == {"news": "active", "weekly": "pending"}
    assert memberships(client, lists, "bob@example.com") == {
        "news": "active",
        "weekly": "pending",
    }


def test_only_the_lists_given_are_subscribed(
    client: TestClient, engine: Engine, lists: Tenant
) -> None:
    import_ok(client, lists, [{"email": JANE}], ["weekly"])
    assert memberships(client, lists, JANE) == {"weekly": "pending"}
    import_ok(client, lists, [{"email": "bob@example.com"}])
    import_ok(client, lists, [{"email": "amy@example.com"}], [])
    assert memberships(client, lists, "bob@example.com") == {}
    assert memberships(client, lists, "amy@example.com") == {}
    assert count_memberships(engine) == 1


def test_updated_contacts_are_subscribed_too(client: TestClient, lists: Tenant) -> None:
    import_ok(client, lists, [{"email": JANE, "first_name": "Jane"}])
    assert memberships(client, lists, JANE) == {}
    operations = import_ok(client, lists, [{"email": " JANE@example.com"}], ["news"])
    assert actions(operations) == ["update"]
    assert memberships(client, lists, JANE) == {"news": "active"}


def test_repeated_list_ids_and_duplicate_contacts_subscribe_once(
    client: TestClient, engine: Engine, lists: Tenant
) -> None:
    operations = import_ok(
        client, lists, [{"email": JANE}, {"email": "Jane@example.com"}], ["news", "news"]
    )
    assert actions(operations) == ["create", "update"]
    assert memberships(client, lists, JANE) == {"news": "active"}
    assert count_memberships(engine) == 1


def test_active_stays_active_and_pending_stays_pending(
    client: TestClient, engine: Engine, lists: Tenant
) -> None:
    import_ok(client, lists, [{"email": JANE}], ["news", "weekly"])
    before = _membership_rows(engine, JANE)
    import_ok(client, lists, [{"email": JANE, "first_name": "Jane"}], ["news", "weekly"])
    assert memberships(client, lists, JANE) == {"news": "active", "weekly": "pending"}
    assert _membership_rows(engine, JANE) == before


def test_pending_on_a_single_optin_list_stays_pending(client: TestClient, lists: Tenant) -> None:
    import_ok(client, lists, [{"email": JANE}], ["news"])
    set_status(client, lists, JANE, "news", "pending")
    import_ok(client, lists, [{"email": JANE}], ["news"])
    assert memberships(client, lists, JANE) == {"news": "pending"}


def test_active_on_a_double_optin_list_stays_active(client: TestClient, lists: Tenant) -> None:
    import_ok(client, lists, [{"email": JANE}], ["weekly"])
    set_status(client, lists, JANE, "weekly", "active")
    import_ok(client, lists, [{"email": JANE}], ["weekly"])
    assert memberships(client, lists, JANE) == {"weekly": "active"}


@pytest.mark.parametrize("status", ["unsubscribed", "bounced", "complained"])
@pytest.mark.parametrize("list_id", ["news", "weekly"])
def test_an_import_never_resubscribes_an_opted_out_contact(
    client: TestClient, engine: Engine, lists: Tenant, status: str, list_id: str
) -> None:
    import_ok(client, lists, [{"email": JANE}], [list_id])
    set_status(client, lists, JANE, list_id, status)
    before = _membership_rows(engine, JANE)

    operations = import_ok(
        client,
        lists,
        [{"email": JANE, "first_name": "Jane"}, {"email": "JANE@EXAMPLE.COM"}],
        ["news", "weekly"],
    )
    assert actions(operations) == ["update", "update"]
    other = "weekly" if list_id == "news" else "news"
    assert memberships(client, lists, JANE) == {
        list_id: status,
        other: "pending" if other == "weekly" else "active",
    }
    assert [r for r in _membership_rows(engine, JANE) if list_id in r] == before
    stored = get_contact(client, lists, JANE)
    assert stored is not None
    assert stored["first_name"] == "Jane"  # the contact itself is still updated


def test_invalid_contacts_are_not_subscribed(
    client: TestClient, engine: Engine, lists: Tenant
) -> None:
    import_ok(client, lists, [{"email": "known@example.com"}])
    operations = import_ok(
        client,
        lists,
        [
            {"email": JANE},
            {"email": "bad@example.com", "custom_number_1": "nope"},
            {"email": "known@example.com", "timezone": "Nowhere/Land"},
            "bad",
        ],
        ["news", "weekly"],
    )
    assert actions(operations) == ["create", "error", "error", "error"]
    assert get_contact(client, lists, "bad@example.com") is None
    assert memberships(client, lists, "known@example.com") == {}
    assert memberships(client, lists, JANE) == {"news": "active", "weekly": "pending"}
    assert count_memberships(engine) == 2


def test_membership_timestamps_are_rfc3339_utc(client: TestClient, lists: Tenant) -> None:
    import_ok(client, lists, [{"email": JANE}], ["news"])
    contact = get_contact(client, lists, JANE)
    assert contact is not None
    (membership,) = contact["contact_lists"]
    assert set(membership) == {"list_id", "status", "created_at", "updated_at"}
    assert membership["created_at"].endswith("Z")
    assert membership["updated_at"].endswith("Z")
