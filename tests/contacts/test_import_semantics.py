"""docs/import.md rules 7-9: absent keeps, null clears, a value replaces; duplicates; atomicity."""

from __future__ import annotations

import random
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from audience.db.models import contacts
from audience.kit.gil import SWITCH_INTERVAL
from tests.conftest import Tenant
from tests.contacts.helpers import (
    FIELDS,
    actions,
    count_contacts,
    count_memberships,
    create_list,
    get_contact,
    import_ok,
    post_import,
    snapshot,
    stored_emails,
)

JANE = "jane@example.com"

# --- rule 7: absent keeps, null clears, a value replaces ---------------------------------------

KINDS = [
    # (field, first value, its stored form, second value, its stored form)
    pytest.param("phone", "+15551234567", "+15551234567", " +4930123 ", "+4930123", id="text"),
    pytest.param("timezone", "Europe/Paris", "Europe/Paris", "Asia/Tokyo", "Asia/Tokyo", id="tz"),
    pytest.param("custom_number_2", 42, 42, -0.5, -0.5, id="number"),
    pytest.param(
        "custom_datetime_3",
        "2024-05-01T09:00:00Z",
        "2024-05-01T09:00:00Z",
        "2025-01-02T03:04:05+01:00",
        "2025-01-02T02:04:05Z",
        id="datetime",
    ),
    pytest.param("custom_json_4", {"a": 1}, {"a": 1}, [1, 2], [1, 2], id="json"),
]


@pytest.mark.parametrize(("field", "first", "first_stored", "second", "second_stored"), KINDS)
def test_absent_keeps_null_clears_value_replaces(
    client: TestClient,
    tenant: Tenant,
    field: str,
    first: Any,
    first_stored: Any,
    second: Any,
    second_stored: Any,
) -> None:
    def stored() -> dict[str, Any]:
        contact = get_contact(client, tenant, JANE)
        assert contact is not None
        return contact

    import_ok(client, tenant, [{"email": JANE, "first_name": "Jane", field: first}])
    assert (stored()[field], stored()["first_name"]) == (first_stored, "Jane")

    assert actions(import_ok(client, tenant, [{"email": JANE}])) == ["update"]
    assert (stored()[field], stored()["first_name"]) == (first_stored, "Jane")

    assert actions(import_ok(client, tenant, [{"email": JANE, field: second}])) == ["update"]
    assert (stored()[field], stored()["first_name"]) == (second_stored, "Jane")

    assert actions(import_ok(client, tenant, [{"email": JANE, field: None}])) == ["update"]
    assert (stored()[field], stored()["first_name"]) == (None, "Jane")

    assert actions(import_ok(client, tenant, [{"email": JANE, field: first}])) == ["update"]
    assert (stored()[field], stored()["first_name"]) == (first_stored, "Jane")


def _full_contact(email: str, tag: str) -> dict[str, Any]:
    contact: dict[str, Any] = {"email": email}
    for name in FIELDS:
        if name.startswith("custom_number"):
            contact[name] = float(len(tag))
        elif name.startswith("custom_datetime"):
            contact[name] = "2024-05-01T09:00:00Z"
        elif name.startswith("custom_json"):
            contact[name] = {"tag": tag}
        elif name == "timezone":
            contact[name] = "Europe/Berlin"
        else:
            contact[name] = f"{name}-{tag}"
    return contact


def test_every_field_follows_rule_7(client: TestClient, tenant: Tenant) -> None:
    import_ok(client, tenant, [_full_contact(JANE, "one")])
    created = get_contact(client, tenant, JANE)
    assert created is not None

    import_ok(client, tenant, [{"email": JANE}])
    kept = get_contact(client, tenant, JANE)
    assert kept is not None
    assert {n: kept[n] for n in FIELDS} == {n: created[n] for n in FIELDS}

    import_ok(client, tenant, [_full_contact(JANE, "second")])
    replaced = get_contact(client, tenant, JANE)
    assert replaced is not None
    assert replaced["first_name"] == "first_name-second"
    assert replaced["custom_json_5"] == {"tag": "second"}
    assert replaced["custom_number_1"] == 6

    import_ok(client, tenant, [{"email": JANE, **dict.fromkeys(FIELDS)}])
    cleared = get_contact(client, tenant, JANE)
    assert cleared is not None
    assert {n: cleared[n] for n in FIELDS} == dict.fromkeys(FIELDS)


def test_empty_string_is_stored_not_treated_as_absent(client: TestClient, tenant: Tenant) -> None:
    import_ok(client, tenant, [{"email": JANE, "first_name": "Jane", "last_name": "Doe"}])
    import_ok(client, tenant, [{"email": JANE, "first_name": ""}])
    stored = get_contact(client, tenant, JANE)
    assert stored is not None
    assert (stored["first_name"], stored["last_name"]) == ("", "Doe")


def test_contacts_in_one_batch_each_keep_their_own_fields(
    client: TestClient, tenant: Tenant
) -> None:
    import_ok(
        client,
        tenant,
        [
            {"email": "a@example.com", "first_name": "A", "last_name": "Alpha"},
            {"email": "b@example.com", "first_name": "B", "last_name": "Beta"},
        ],
    )
    import_ok(
        client,
        tenant,
        [
            {"email": "a@example.com", "first_name": None},
            {"email": "b@example.com", "last_name": "Bravo"},
            {"email": "c@example.com", "last_name": None, "first_name": "C"},
        ],
    )
    a = get_contact(client, tenant, "a@example.com")
    b = get_contact(client, tenant, "b@example.com")
    c = get_contact(client, tenant, "c@example.com")
    assert a is not None and b is not None and c is not None
    assert (a["first_name"], a["last_name"]) == (None, "Alpha")
    assert (b["first_name"], b["last_name"]) == ("B", "Bravo")
    assert (c["first_name"], c["last_name"]) == ("C", None)


def _age(engine: Engine, email: str) -> None:
    """Move a contact's timestamps to 2020, so that any later write visibly changes them."""
    old = datetime(2020, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            update(contacts).where(contacts.c.email == email).values(created_at=old, updated_at=old)
        )


def _upsert(client: TestClient, tenant: Tenant, contact: dict[str, Any]) -> None:
    response = client.post(
        "/api/contacts.upsert",
        headers=tenant.headers,
        json={"workspace_id": tenant.id, "contact": contact},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("route", ["import", "upsert"])
@pytest.mark.parametrize(
    "change",
    [{"first_name": "Janet"}, {"first_name": None}, {}],
    ids=["value", "null", "nothing"],
)
def test_created_at_never_moves_and_updated_at_moves_with_a_change(
    client: TestClient, engine: Engine, tenant: Tenant, route: str, change: dict[str, Any]
) -> None:
    import_ok(client, tenant, [{"email": JANE, "first_name": "Jane"}])
    fresh = get_contact(client, tenant, JANE)
    assert fresh is not None
    assert fresh["created_at"] == fresh["updated_at"]

    _age(engine, JANE)
    contact = {"email": JANE.upper(), **change}
    if route == "import":
        assert actions(import_ok(client, tenant, [contact])) == ["update"]
    else:
        _upsert(client, tenant, contact)
    updated = get_contact(client, tenant, JANE)
    assert updated is not None
    assert updated["created_at"] == "2020-01-01T00:00:00Z"
    if change:  # something changed: updated_at moves
        assert updated["updated_at"] > "2020-01-01T00:00:00Z"
        assert updated["updated_at"] >= fresh["updated_at"]
    else:  # an update that changes nothing writes nothing
        assert updated["updated_at"] == "2020-01-01T00:00:00Z"


def test_created_at_is_kept_by_a_duplicate_in_the_batch_that_creates(
    client: TestClient, tenant: Tenant
) -> None:
    import_ok(client, tenant, [{"email": JANE}, {"email": JANE, "first_name": "Jane"}])
    stored = get_contact(client, tenant, JANE)
    assert stored is not None
    assert stored["created_at"] == stored["updated_at"]


# --- rule 8: duplicates applied in order -------------------------------------------------------


def test_duplicates_create_then_update_with_fields_merged_in_order(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    operations = import_ok(
        client,
        tenant,
        [
            {"email": JANE, "first_name": "Jane", "last_name": "Doe", "phone": "1"},
            {"email": "other@example.com"},
            {"email": JANE, "first_name": "Janet", "custom_number_1": 1},
            {"email": JANE, "last_name": None, "custom_json_1": {"v": 3}},
        ],
    )
    assert actions(operations) == ["create", "create", "update", "update"]
    assert [op["email"] for op in operations] == [JANE, "other@example.com", JANE, JANE]
    stored = get_contact(client, tenant, JANE)
    assert stored is not None
    assert stored["first_name"] == "Janet"  # the later value wins
    assert stored["last_name"] is None  # a later null clears
    assert stored["phone"] == "1"  # absent later: the earlier value stays
    assert stored["custom_number_1"] == 1
    assert stored["custom_json_1"] == {"v": 3}
    assert count_contacts(engine, tenant.id) == 2


def test_duplicates_of_an_existing_contact_are_all_updates(
    client: TestClient, tenant: Tenant
) -> None:
    import_ok(client, tenant, [{"email": JANE, "first_name": "Jane", "country": "US"}])
    operations = import_ok(
        client,
        tenant,
        [
            {"email": JANE, "first_name": None},
            {"email": JANE, "first_name": "Back"},
            {"email": JANE, "country": "FR"},
        ],
    )
    assert actions(operations) == ["update", "update", "update"]
    stored = get_contact(client, tenant, JANE)
    assert stored is not None
    assert (stored["first_name"], stored["country"]) == ("Back", "FR")


def test_a_later_value_then_a_later_null_clears(client: TestClient, tenant: Tenant) -> None:
    operations = import_ok(
        client,
        tenant,
        [{"email": JANE, "first_name": "Jane"}, {"email": JANE, "first_name": None}],
    )
    assert actions(operations) == ["create", "update"]
    stored = get_contact(client, tenant, JANE)
    assert stored is not None
    assert stored["first_name"] is None


def test_duplicates_written_differently_are_the_same_email(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    operations = import_ok(
        client,
        tenant,
        [
            {"email": "Jane@Example.com", "first_name": "Jane"},
            {"email": "  JANE@EXAMPLE.COM\u00a0", "last_name": "Doe"},
            {"email": "\tjane@example.com ", "first_name": "Janet"},
        ],
    )
    assert actions(operations) == ["create", "update", "update"]
    assert {op["email"] for op in operations} == {JANE}
    assert stored_emails(engine, tenant.id) == [JANE]
    stored = get_contact(client, tenant, JANE)
    assert stored is not None
    assert (stored["first_name"], stored["last_name"]) == ("Janet", "Doe")


def test_an_invalid_duplicate_does_not_count_as_the_creating_one(
    client: TestClient, tenant: Tenant
) -> None:
    operations = import_ok(
        client,
        tenant,
        [
            {"email": JANE, "custom_number_1": "one"},
            {"email": JANE, "first_name": "Jane"},
            {"email": JANE, "first_name": "Bad", "custom_datetime_1": "soon"},
            {"email": JANE, "last_name": "Doe"},
        ],
    )
    assert actions(operations) == ["error", "create", "error", "update"]
    stored = get_contact(client, tenant, JANE)
    assert stored is not None
    assert (stored["first_name"], stored["last_name"], stored["custom_number_1"]) == (
        "Jane",
        "Doe",
        None,
    )


# --- rule 9: one transaction; a database failure writes nothing ------------------------------

FailWhen = Callable[[str, str, str], None]
#: Citus refuses triggers on distributed tables unless told (they then run on the shards,
#: where the function is propagated), and a function's DDL beside a table's in one
#: transaction needs one connection per node.
CITUS_DDL = [
    "SET LOCAL citus.enable_unsafe_triggers TO on",
    "SET LOCAL citus.multi_shard_modify_mode TO 'sequential'",
]


@pytest.fixture
def fail_when(engine: Engine, backend: str) -> Iterator[FailWhen]:
    """Install a trigger that makes the database fail on `event` of `table` when `condition`."""
    installed: list[tuple[str, str]] = []

    def install(table: str, event: str, condition: str) -> None:
        name = f"audience_test_fail_{len(installed)}"
        if backend == "sqlite":
            statements = [
                f"CREATE TRIGGER {name} BEFORE {event} ON {table} WHEN {condition} "
                "BEGIN SELECT RAISE(ABORT, 'boom'); END"
            ]
        else:
            unsafe = CITUS_DDL if backend == "citus" else []
            statements = [
                *unsafe,
                "CREATE OR REPLACE FUNCTION audience_test_fail() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$",
                f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW "
                f"WHEN ({condition}) EXECUTE FUNCTION audience_test_fail()",
            ]
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
        installed.append((name, table))

    yield install

    with engine.begin() as conn:
        for statement in CITUS_DDL if backend == "citus" else []:
            conn.exec_driver_sql(statement)
        for name, table in installed:
            if backend == "sqlite":
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
            else:
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        if backend != "sqlite":
            conn.exec_driver_sql("DROP FUNCTION IF EXISTS audience_test_fail()")


@pytest.fixture
def with_existing(client: TestClient, tenant: Tenant) -> Tenant:
    """A list `news`, and keep@example.com subscribed to it, first name Old."""
    create_list(client, tenant, "news")
    import_ok(client, tenant, [{"email": "keep@example.com", "first_name": "Old"}], ["news"])
    return tenant


BATCH: list[dict[str, Any]] = [
    {"email": "aaron@example.com", "first_name": "Aaron"},
    {"email": "keep@example.com", "first_name": "New", "last_name": None},
    {"email": "boom@example.com", "first_name": "Boom"},
    {"email": "zoe@example.com", "first_name": "Zoe"},
    {"email": "not valid"},
]


def _assert_failed_and_nothing_written(response: Any, engine: Engine, before: Any) -> None:
    assert response.status_code == 500, response.text
    payload = response.json()
    assert set(payload) == {"error"}
    assert isinstance(payload["error"], str) and payload["error"]
    assert snapshot(engine) == before


FAILURES = [
    pytest.param("contacts", "INSERT", "NEW.email = 'boom@example.com'", id="contact-insert"),
    pytest.param(
        "contact_lists", "INSERT", "NEW.email = 'zoe@example.com'", id="membership-insert"
    ),
    pytest.param(
        "contacts",
        "UPDATE",
        "NEW.email = 'keep@example.com' AND NEW.last_name IS NULL AND NEW.first_name = 'New'",
        id="null-clearing-update",
    ),
]


@pytest.mark.parametrize(("table", "event", "condition"), FAILURES)
def test_a_database_failure_part_way_writes_nothing_and_answers_500(
    client: TestClient,
    engine: Engine,
    with_existing: Tenant,
    fail_when: FailWhen,
    table: str,
    event: str,
    condition: str,
) -> None:
    # keep@ has a last name, so that clearing it is a real change.
    import_ok(client, with_existing, [{"email": "keep@example.com", "last_name": "Kept"}])
    fail_when(table, event, condition)
    before = snapshot(engine)

    response = post_import(client, with_existing, BATCH, ["news"])
    _assert_failed_and_nothing_written(response, engine, before)
    kept = get_contact(client, with_existing, "keep@example.com")
    assert kept is not None
    assert (kept["first_name"], kept["last_name"]) == ("Old", "Kept")


@pytest.mark.parametrize("failing", [0, 1_500, 2_999], ids=["first-part", "middle", "last-part"])
def test_a_database_failure_in_any_part_of_a_large_batch_writes_nothing(
    client: TestClient, engine: Engine, tenant: Tenant, fail_when: FailWhen, failing: int
) -> None:
    # 3,000 contacts are written in parts (contacts/service.py), the next part queued behind
    # the one being written: a failure in any of them leaves no part written.
    batch = [{"email": f"p{i:04d}@example.com", "first_name": "P"} for i in range(3_000)]
    fail_when("contacts", "INSERT", f"NEW.email = 'p{failing:04d}@example.com'")
    before = snapshot(engine)
    response = post_import(client, tenant, batch)
    _assert_failed_and_nothing_written(response, engine, before)
    assert count_contacts(engine, tenant.id) == 0
    # and the next import on the same server goes through
    operations = import_ok(client, tenant, batch[:failing] + batch[failing + 1 :])
    assert set(actions(operations)) == {"create"}
    assert count_contacts(engine, tenant.id) == 2_999


def test_the_service_recovers_after_a_database_failure(
    client: TestClient, engine: Engine, with_existing: Tenant, fail_when: FailWhen
) -> None:
    fail_when("contacts", "INSERT", "NEW.email = 'boom@example.com'")
    before = snapshot(engine)
    response = post_import(client, with_existing, BATCH, ["news"])
    _assert_failed_and_nothing_written(response, engine, before)

    without_boom = [c for c in BATCH if c["email"] != "boom@example.com"]
    operations = import_ok(client, with_existing, without_boom, ["news"])
    assert actions(operations) == ["create", "update", "create", "error"]
    assert count_contacts(engine, with_existing.id) == 3
    assert count_memberships(engine, with_existing.id) == 3


def test_a_database_failure_on_upsert_writes_nothing(
    client: TestClient, engine: Engine, tenant: Tenant, fail_when: FailWhen
) -> None:
    fail_when("contacts", "INSERT", "NEW.email = 'boom@example.com'")
    response = client.post(
        "/api/contacts.upsert",
        headers=tenant.headers,
        json={"workspace_id": tenant.id, "contact": {"email": "boom@example.com"}},
    )
    _assert_failed_and_nothing_written(response, engine, snapshot(engine))
    assert count_contacts(engine) == 0


def test_concurrent_imports_of_the_same_emails_lose_no_write(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    """Four imports touching the same 120 emails in different orders, each setting its own
    field: none fails (no deadlock), every email is created once, and every field is kept."""
    emails = [f"shared{i:03d}@example.com" for i in range(120)]

    def run(worker: int) -> list[dict[str, Any]]:
        order = emails[:]
        random.Random(worker).shuffle(order)
        batch = [{"email": e, f"custom_string_{worker + 1}": f"w{worker}"} for e in order]
        return import_ok(client, tenant, batch)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, range(4)))

    created = Counter(op["email"] for ops in results for op in ops if op["action"] == "create")
    assert created == Counter(emails)
    assert all(op["action"] in ("create", "update") for ops in results for op in ops)
    assert count_contacts(engine, tenant.id) == 120
    fields = [contacts.c[f"custom_string_{w + 1}"] for w in range(4)]
    with engine.connect() as conn:
        rows = conn.execute(select(*fields).where(contacts.c.workspace_id == tenant.id)).all()
    assert {tuple(row) for row in rows} == {("w0", "w1", "w2", "w3")}


# --- the overlap's hand-over of Python's lock (audience.kit.gil, from contacts/service.py) ------


@pytest.fixture
def switch_interval() -> Iterator[None]:
    """The process's switch interval restored after the test, which sets its own."""
    before = sys.getswitchinterval()
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@pytest.mark.usefixtures("switch_interval")
def test_an_import_written_in_parts_on_postgresql_hands_the_lock_over_sooner(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    sys.setswitchinterval(0.005)  # Python's default
    small = [{"email": f"s{i:04d}@example.com"} for i in range(100)]
    import_ok(client, tenant, small)  # one part, no writing thread: nothing to hand over
    assert sys.getswitchinterval() == pytest.approx(0.005)
    batch = [{"email": f"p{i:04d}@example.com", "first_name": "P"} for i in range(3_000)]
    assert set(actions(import_ok(client, tenant, batch))) == {"create"}
    overlapped = engine.dialect.name == "postgresql"  # SQLite writes its parts in turn
    expected = SWITCH_INTERVAL if overlapped else 0.005
    assert sys.getswitchinterval() == pytest.approx(expected)
    assert count_contacts(engine, tenant.id) == 3_100


@pytest.mark.usefixtures("switch_interval")
def test_a_lower_switch_interval_is_kept(client: TestClient, tenant: Tenant) -> None:
    sys.setswitchinterval(SWITCH_INTERVAL / 4)
    batch = [{"email": f"p{i:04d}@example.com"} for i in range(3_000)]
    import_ok(client, tenant, batch)
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL / 4)
