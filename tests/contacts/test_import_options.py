"""contacts.import options: dry_run, merge, list_status; changed_fields, lists and summary.

Every expectation here comes from the specification of the options (the issue text), not
from the code: exact answers, the stored rows before and after, and on PostgreSQL the row
versions (xmin, ctid) and `n_tup_upd` of an update that changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, insert, select, text

from audience.api_keys.schemas import Permission
from audience.app import create_app
from audience.config import Settings
from audience.db.models import api_keys, contact_lists, metadata
from tests.conftest import Tenant, make_key
from tests.contacts.conftest import MakeClient
from tests.contacts.helpers import FIELDS, create_list, get_contact

JANE = "jane@example.com"
BOB = "bob@example.com"
#: NEWS is single opt-in, WEEKLY double opt-in.
NEWS, WEEKLY = "news", "weekly"
LISTS = {NEWS: False, WEEKLY: True}
#: A membership before the import: none, or each stored status.
PREVIOUS: tuple[str | None, ...] = (
    None,
    "active",
    "pending",
    "unsubscribed",
    "bounced",
    "complained",
)
LIST_STATUSES = ("subscribed", "active", "unsubscribed")
MERGE_ERROR = "merge must be one of overwrite, fill_blanks"
LIST_STATUS_ERROR = "list_status must be one of subscribed, active, unsubscribed"
CONTACT_LIST_STATUS_ERROR = "list_status: must be one of subscribed, active, unsubscribed"


def expected_after(before: str | None, target: str, *, double_optin: bool) -> str:
    """The specification's table of list_status, written out case by case."""
    if before in ("unsubscribed", "bounced", "complained"):
        return before  # never revived; bounced/complained never changed at all
    if target == "unsubscribed":
        return "unsubscribed"  # a new, active or pending membership
    if target == "active":
        return "active"  # a new or pending membership
    if before is None:  # subscribed: only a new membership is made
        return "pending" if double_optin else "active"
    return before


# --- helpers --------------------------------------------------------------------------------------


def post(
    client: TestClient,
    tenant: Tenant,
    items: Sequence[Any],
    lists: Sequence[str] | None = None,
    **options: Any,
) -> httpx.Response:
    body: dict[str, Any] = {"workspace_id": tenant.id, "contacts": list(items)}
    if lists is not None:
        body["subscribe_to_lists"] = list(lists)
    body.update(options)
    response: httpx.Response = client.post(
        "/api/contacts.import", headers=tenant.headers, json=body
    )
    return response


def run(
    client: TestClient,
    tenant: Tenant,
    items: Sequence[Any],
    lists: Sequence[str] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The answer of a 200 import, checked for the invariants every answer keeps."""
    response = post(client, tenant, items, lists, **options)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    check_answer(answer, len(items), lists)
    return answer


def check_answer(answer: dict[str, Any], sent: int, lists: Sequence[str] | None) -> None:
    """One operation per contact in order; error operations carry neither changed_fields nor
    lists, the others both (lists with subscribe_to_lists only); the summary adds up."""
    assert answer["error"] is None
    operations = answer["operations"]
    assert [op["index"] for op in operations] == list(range(sent))
    for op in operations:
        assert op["action"] in ("create", "update", "error"), op
        if op["action"] == "error":
            assert "changed_fields" not in op and "lists" not in op, op
            continue
        assert op["changed_fields"] == sorted(set(op["changed_fields"])), op
        if lists:
            assert [o["list_id"] for o in op["lists"]] == list(dict.fromkeys(lists)), op
        elif lists is None:
            assert "lists" not in op, op
        else:  # an empty subscribe_to_lists: no entry (or none at all)
            assert op.get("lists", []) == [], op
    summary = answer["summary"]
    assert set(summary) == {"created", "updated", "unchanged", "errors"}
    assert sum(summary.values()) == sent, summary


def ops(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return list(answer["operations"])


def op(index: int, email: str, action: str, changed: Sequence[str], **extra: Any) -> dict[str, Any]:
    """An expected non-error operation."""
    return {
        "index": index,
        "email": email,
        "action": action,
        "error": None,
        "changed_fields": list(changed),
        **extra,
    }


def error_op(index: int, email: str, error: str) -> dict[str, Any]:
    return {"index": index, "email": email, "action": "error", "error": error}


def outcome(list_id: str, status: str, previous: str | None) -> dict[str, Any]:
    return {"list_id": list_id, "status": status, "previous_status": previous}


def summary(created: int = 0, updated: int = 0, unchanged: int = 0, errors: int = 0) -> Any:
    return {"created": created, "updated": updated, "unchanged": unchanged, "errors": errors}


def everything(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order (an API key's last_used_at, written by
    the key bookkeeping of any request, left out)."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            columns = [c for c in table.columns if c is not api_keys.c.last_used_at]
            query = select(*columns).order_by(*table.primary_key.columns)
            tables[table.name] = [tuple(row) for row in conn.execute(query)]
    return tables


def stored(client: TestClient, tenant: Tenant, email: str) -> dict[str, Any]:
    contact = get_contact(client, tenant, email)
    assert contact is not None, email
    return contact


def set_memberships(engine: Engine, workspace_id: str, states: dict[str, str | None]) -> None:
    """Give each email (a stored contact) this status in both lists (None: no membership)."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for email, status in states.items():
            conn.execute(
                delete(contact_lists).where(
                    (contact_lists.c.workspace_id == workspace_id)
                    & (contact_lists.c.email == email)
                )
            )
            if status is None:
                continue
            for list_id in LISTS:
                conn.execute(
                    insert(contact_lists).values(
                        workspace_id=workspace_id,
                        email=email,
                        list_id=list_id,
                        status=status,
                        created_at=now,
                        updated_at=now,
                    )
                )


def membership_table(engine: Engine, workspace_id: str) -> dict[tuple[str, str], str]:
    query = select(contact_lists.c.email, contact_lists.c.list_id, contact_lists.c.status).where(
        contact_lists.c.workspace_id == workspace_id
    )
    with engine.connect() as conn:
        return {(e, lid): s for e, lid, s in conn.execute(query)}


@pytest.fixture
def lists(client: TestClient, tenant: Tenant) -> Tenant:
    """The tenant with `news` (single opt-in) and `weekly` (double opt-in)."""
    for list_id, double_optin in LISTS.items():
        create_list(client, tenant, list_id, double_optin=double_optin)
    return tenant


# --- without the new options ----------------------------------------------------------------------


def test_a_request_without_options_answers_as_before_with_extra_keys(
    client: TestClient, tenant: Tenant
) -> None:
    run(client, tenant, [{"email": BOB, "first_name": "Bob"}])
    answer = run(
        client,
        tenant,
        [
            {"email": " Jane@Example.com ", "first_name": "Jane", "custom_number_1": None},
            {"email": BOB, "first_name": "Robert"},
            {"email": BOB, "first_name": "Robert"},
            {"email": "nope", "first_name": "x"},
        ],
    )
    assert answer == {
        "operations": [
            op(0, JANE, "create", ["first_name"]),
            op(1, BOB, "update", ["first_name"]),
            op(2, BOB, "update", []),
            error_op(3, "nope", "invalid email format"),
        ],
        "error": None,
        "summary": summary(created=1, updated=1, unchanged=1, errors=1),
    }
    assert stored(client, tenant, BOB)["first_name"] == "Robert"


# --- dry_run -------------------------------------------------------------------------------------


def _seed_for_plans(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    run(
        client,
        tenant,
        [
            {"email": JANE, "first_name": "Jane", "last_name": "", "custom_number_1": 1},
            {"email": BOB, "first_name": "Bob", "custom_json_1": {"a": 1, "b": [1, 2]}},
            {"email": "amy@example.com", "phone": "123"},
            {"email": "zed@example.com"},
        ],
        [NEWS],
    )
    states = {JANE: "pending", BOB: "unsubscribed", "amy@example.com": "active"}
    set_memberships(engine, tenant.id, {**states, "zed@example.com": "bounced"})


#: A batch that touches every path: a new contact, a changing and an unchanged update,
#: duplicates, an invalid contact, per-contact list_status.
PLAN_BATCH: list[Any] = [
    {"email": "new@example.com", "first_name": "New", "custom_datetime_1": "2024-01-01T00:00:00Z"},
    {"email": JANE, "first_name": "Janet", "last_name": "Doe", "custom_number_1": 1.0},
    {"email": BOB, "first_name": "Bob", "custom_json_1": {"b": [1, 2], "a": 1.0}},
    {"email": "AMY@example.com", "phone": None, "list_status": "unsubscribed"},
    {"email": "new@example.com", "first_name": "Newer", "list_status": "active"},
    {"email": "zed@example.com", "list_status": "active"},
    {"email": "bad@", "first_name": "x"},
    {"email": JANE, "list_status": None, "custom_json_2": [1]},
    {"email": "other@example.com", "list_status": "pending"},
]


@pytest.mark.parametrize("merge", ["overwrite", "fill_blanks"])
@pytest.mark.parametrize("list_status", LIST_STATUSES)
def test_dry_run_answers_what_the_request_answers_and_writes_nothing(
    client: TestClient, engine: Engine, lists: Tenant, merge: str, list_status: str
) -> None:
    _seed_for_plans(client, engine, lists)
    before = everything(engine)
    options = {"merge": merge, "list_status": list_status}
    planned = run(client, lists, PLAN_BATCH, [WEEKLY, NEWS], dry_run=True, **options)
    assert everything(engine) == before  # no contact, no membership, nothing at all
    again = run(client, lists, PLAN_BATCH, [WEEKLY, NEWS], dry_run=True, **options)
    assert again == planned
    assert planned.pop("dry_run") is True
    done = run(client, lists, PLAN_BATCH, [WEEKLY, NEWS], **options)
    assert "dry_run" not in done
    assert done == planned
    assert everything(engine) != before


def test_dry_run_plans_against_the_data_as_it_is(
    client: TestClient, engine: Engine, lists: Tenant
) -> None:
    batch = [{"email": JANE, "first_name": "Jane"}, {"email": JANE, "last_name": "Doe"}]
    first = run(client, lists, batch, [WEEKLY], dry_run=True)
    assert first == {
        "operations": [
            op(0, JANE, "create", ["first_name"], lists=[outcome(WEEKLY, "pending", None)]),
            op(1, JANE, "update", ["last_name"], lists=[outcome(WEEKLY, "pending", "pending")]),
        ],
        "error": None,
        "summary": summary(created=1, updated=1),
        "dry_run": True,
    }
    assert everything(engine)["contacts"] == []
    run(client, lists, batch, [WEEKLY])
    second = run(client, lists, batch, [WEEKLY], dry_run=True)
    assert second == {
        "operations": [
            op(0, JANE, "update", [], lists=[outcome(WEEKLY, "pending", "pending")]),
            op(1, JANE, "update", [], lists=[outcome(WEEKLY, "pending", "pending")]),
        ],
        "error": None,
        "summary": summary(unchanged=2),
        "dry_run": True,
    }


def test_dry_run_false_is_a_real_run(client: TestClient, tenant: Tenant) -> None:
    answer = run(client, tenant, [{"email": JANE}], dry_run=False)
    assert answer == {
        "operations": [op(0, JANE, "create", [])],
        "error": None,
        "summary": summary(created=1),
    }
    assert get_contact(client, tenant, JANE) is not None


@pytest.mark.parametrize("value", [1, 0, "true", "false", [], {}])
def test_dry_run_must_be_a_boolean(
    client: TestClient, engine: Engine, tenant: Tenant, value: Any
) -> None:
    before = everything(engine)
    response = post(client, tenant, [{"email": JANE}], dry_run=value)
    assert response.status_code == 400, response.text
    assert "dry_run" in response.json()["error"]
    assert everything(engine) == before


REFUSALS = [
    pytest.param({}, [NEWS, "ghost"], (), "list not found: ghost", id="unknown-list"),
    pytest.param(
        {},
        [NEWS],
        (Permission.CONTACTS_WRITE, Permission.CONTACTS_READ),
        "write access to lists required when subscribe_to_lists is provided",
        id="no-lists-write",
    ),
    pytest.param(
        {},
        None,
        (Permission.CONTACTS_READ, Permission.LISTS_WRITE),
        "write access to contacts required",
        id="no-contacts-write",
    ),
    pytest.param(
        {"max_contacts_per_import": 2},
        None,
        (),
        "contacts array exceeds the maximum of 2",
        id="contacts-limit",
    ),
    pytest.param(
        {"max_lists_per_import": 1},
        [NEWS, WEEKLY],
        (),
        "subscribe_to_lists exceeds the maximum of 1",
        id="lists-limit",
    ),
    pytest.param(
        {"max_memberships_per_import": 5},
        [NEWS, WEEKLY],
        (),
        "too many memberships in one request (contacts × lists > 5)",  # noqa: RUF001
        id="memberships-limit",
    ),
]


@pytest.mark.parametrize(("limits", "subscribe", "permissions", "error"), REFUSALS)
def test_dry_run_is_refused_as_the_request_would_be(
    make_client: MakeClient,
    engine: Engine,
    lists: Tenant,
    limits: dict[str, int],
    subscribe: list[str] | None,
    permissions: tuple[Permission, ...],
    error: str,
) -> None:
    client = make_client(**limits)
    caller = Tenant(lists.id, make_key(engine, lists.id, permissions)) if permissions else lists
    batch = [{"email": f"c{i}@example.com"} for i in range(3)]
    before = everything(engine)
    for dry_run in (True, False):
        response = post(client, caller, batch, subscribe, dry_run=dry_run)
        assert response.status_code == 400, response.text
        assert response.json() == {"error": error}
        assert everything(engine) == before


# --- merge ---------------------------------------------------------------------------------------


def test_merge_overwrite_is_the_default(client: TestClient, tenant: Tenant) -> None:
    base = {"email": JANE, "first_name": "Jane", "last_name": "Doe", "phone": "1"}
    run(client, tenant, [base])
    change = {"email": JANE, "first_name": "Janet", "last_name": None}
    implicit = run(client, tenant, [change], dry_run=True)
    explicit = run(client, tenant, [change], dry_run=True, merge="overwrite")
    assert implicit == explicit
    answer = run(client, tenant, [change], merge="overwrite")
    assert ops(answer) == [op(0, JANE, "update", ["first_name", "last_name"])]
    contact = stored(client, tenant, JANE)
    assert (contact["first_name"], contact["last_name"], contact["phone"]) == ("Janet", None, "1")


#: (field, stored, sent, stored after fill_blanks): blank is null, or "" for text only.
FILL_CASES: list[tuple[str, Any, Any, Any]] = [
    ("first_name", None, "Jane", "Jane"),
    ("last_name", "", "Doe", "Doe"),
    ("custom_string_1", "   ", "filled", "filled"),  # stored trimmed: ""
    ("phone", "123", "456", "123"),
    ("job_title", "Boss", "", "Boss"),
    ("country", None, "", ""),  # "" is a value: it fills a null
    ("state", "", "", ""),
    ("external_id", "x-1", None, "x-1"),  # null changes nothing
    ("postcode", None, None, None),
    ("timezone", None, " Europe/Paris ", "Europe/Paris"),
    ("custom_number_1", None, 5, 5.0),
    ("custom_number_2", 0, 5, 0.0),  # 0 is not blank
    ("custom_number_3", 7, None, 7.0),
    ("custom_datetime_1", None, "2024-05-01T10:00:00+02:00", "2024-05-01T08:00:00Z"),
    ("custom_datetime_2", "2020-01-01T00:00:00Z", "2024-05-01T08:00:00Z", "2020-01-01T00:00:00Z"),
    ("custom_datetime_3", "2020-01-01T00:00:00Z", None, "2020-01-01T00:00:00Z"),
    ("custom_json_1", None, {"a": 1}, {"a": 1}),
    ("custom_json_2", {}, {"a": 1}, {}),  # {} is not blank
    ("custom_json_3", [], [1], []),  # nor is []
    ("custom_json_4", {"k": ""}, {"k": "v"}, {"k": ""}),
    ("custom_json_5", [None], None, [None]),
]


def test_fill_blanks_writes_a_value_only_where_the_stored_one_is_blank(
    client: TestClient, tenant: Tenant
) -> None:
    first = {"email": JANE, **{f: s for f, s, _, _ in FILL_CASES}}
    run(client, tenant, [first])
    second = {"email": JANE, **{f: v for f, _, v, _ in FILL_CASES}}
    answer = run(client, tenant, [second], merge="fill_blanks")
    filled = ["first_name", "last_name", "custom_string_1", "country", "timezone"]
    filled += ["custom_number_1", "custom_datetime_1", "custom_json_1"]
    assert ops(answer) == [op(0, JANE, "update", sorted(filled))]
    assert answer["summary"] == summary(updated=1)
    contact = stored(client, tenant, JANE)
    assert {f: contact[f] for f, *_ in FILL_CASES} == {f: after for f, _, _, after in FILL_CASES}


def test_fill_blanks_with_nothing_blank_changes_nothing(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    full = {
        "email": JANE,
        "first_name": "Jane",
        "custom_number_1": 0,
        "custom_datetime_1": "2024-05-01T08:00:00Z",
        "custom_json_1": {},
    }
    run(client, tenant, [full])
    before = everything(engine)
    sent = {
        "email": JANE,
        "first_name": None,
        "last_name": None,
        "custom_number_1": 9,
        "custom_datetime_1": "2030-01-01T00:00:00Z",
        "custom_json_1": {"x": 1},
        "custom_json_2": None,
    }
    answer = run(client, tenant, [sent], merge="fill_blanks")
    assert ops(answer) == [op(0, JANE, "update", [])]
    assert answer["summary"] == summary(unchanged=1)
    assert everything(engine) == before  # not rewritten: updated_at kept


def test_fill_blanks_creates_a_new_contact_as_usual(client: TestClient, tenant: Tenant) -> None:
    sent: dict[str, Any] = {
        "email": JANE,
        "first_name": " Jane ",
        "last_name": "",
        "phone": None,
        "custom_number_1": 0,
        "custom_json_1": [],
    }
    answer = run(client, tenant, [sent], merge="fill_blanks")
    expected = ["custom_json_1", "custom_number_1", "first_name", "last_name"]
    assert ops(answer) == [op(0, JANE, "create", expected)]
    contact = stored(client, tenant, JANE)
    assert contact["first_name"] == "Jane"
    assert contact["last_name"] == ""
    assert contact["phone"] is None
    assert (contact["custom_number_1"], contact["custom_json_1"]) == (0, [])


DUPLICATES: list[Any] = [
    {"email": JANE, "first_name": "", "custom_number_1": None},
    {"email": JANE, "first_name": "Jane", "last_name": "Doe", "custom_number_1": 1},
    {"email": " JANE@example.com", "first_name": "Janet", "last_name": None, "phone": "1"},
    {"email": JANE, "custom_number_1": 2, "phone": "2", "job_title": ""},
]


@pytest.mark.parametrize(
    ("merge", "expected_ops", "final"),
    [
        pytest.param(
            "fill_blanks",
            [
                op(0, JANE, "create", ["first_name"]),
                op(1, JANE, "update", ["custom_number_1", "first_name", "last_name"]),
                op(2, JANE, "update", ["phone"]),
                op(3, JANE, "update", ["job_title"]),
            ],
            {"first_name": "Jane", "last_name": "Doe", "phone": "1", "custom_number_1": 1.0},
            id="fill_blanks",
        ),
        pytest.param(
            "overwrite",
            [
                op(0, JANE, "create", ["first_name"]),
                op(1, JANE, "update", ["custom_number_1", "first_name", "last_name"]),
                op(2, JANE, "update", ["first_name", "last_name", "phone"]),
                op(3, JANE, "update", ["custom_number_1", "job_title", "phone"]),
            ],
            {"first_name": "Janet", "last_name": None, "phone": "2", "custom_number_1": 2.0},
            id="overwrite",
        ),
    ],
)
def test_duplicates_in_a_batch_merge_in_order_under_the_policy(
    client: TestClient,
    tenant: Tenant,
    merge: str,
    expected_ops: list[dict[str, Any]],
    final: dict[str, Any],
) -> None:
    answer = run(client, tenant, DUPLICATES, merge=merge)
    assert ops(answer) == expected_ops
    assert answer["summary"] == summary(created=1, updated=3)
    contact = stored(client, tenant, JANE)
    assert {k: contact[k] for k in final} == final
    assert contact["job_title"] == ""


def test_fill_blanks_duplicates_of_a_stored_contact(client: TestClient, tenant: Tenant) -> None:
    run(client, tenant, [{"email": JANE, "first_name": "Jane", "last_name": ""}])
    batch = [
        {"email": JANE, "first_name": "X", "last_name": ""},
        {"email": JANE, "last_name": "Doe"},
        {"email": JANE, "last_name": "Smith", "phone": "1"},
    ]
    answer = run(client, tenant, batch, merge="fill_blanks")
    assert ops(answer) == [
        op(0, JANE, "update", []),
        op(1, JANE, "update", ["last_name"]),
        op(2, JANE, "update", ["phone"]),
    ]
    assert answer["summary"] == summary(updated=2, unchanged=1)
    contact = stored(client, tenant, JANE)
    assert (contact["first_name"], contact["last_name"], contact["phone"]) == ("Jane", "Doe", "1")


BAD_CHOICES: list[Any] = [None, "", "Overwrite", "fill-blanks", "FILL_BLANKS", 1, True, [], {}]


@pytest.mark.parametrize("value", BAD_CHOICES)
def test_an_invalid_merge_is_refused(
    client: TestClient, engine: Engine, tenant: Tenant, value: Any
) -> None:
    before = everything(engine)
    for dry_run in (False, True):
        response = post(client, tenant, [{"email": JANE}], merge=value, dry_run=dry_run)
        assert response.status_code == 400, response.text
        assert response.json() == {"error": MERGE_ERROR}
    assert everything(engine) == before


# --- list_status ----------------------------------------------------------------------------------


def _contacts_in_every_state(
    client: TestClient, engine: Engine, tenant: Tenant, tag: str = ""
) -> dict[str, str | None]:
    """One stored contact per previous state (the same in both lists): email -> state."""
    states = {f"{state or 'none'}{tag}@example.com": state for state in PREVIOUS}
    run(client, tenant, [{"email": email} for email in states])
    set_memberships(engine, tenant.id, states)
    return states


@pytest.mark.parametrize("list_status", [None, *LIST_STATUSES])
def test_request_list_status_over_every_previous_status(
    client: TestClient, engine: Engine, lists: Tenant, list_status: str | None
) -> None:
    states = _contacts_in_every_state(client, engine, lists)
    options = {} if list_status is None else {"list_status": list_status}
    target = list_status or "subscribed"
    batch = [{"email": email} for email in states]
    planned = run(client, lists, batch, [NEWS, WEEKLY], dry_run=True, **options)
    answer = run(client, lists, batch, [NEWS, WEEKLY], **options)
    planned.pop("dry_run")
    assert planned == answer
    expected_ops = []
    expected_rows: dict[tuple[str, str], str] = {}
    changed = 0
    for index, (email, before) in enumerate(states.items()):
        entries = []
        for list_id, double_optin in LISTS.items():
            after = expected_after(before, target, double_optin=double_optin)
            entries.append(outcome(list_id, after, before))
            expected_rows[email, list_id] = after
            changed += after != before
        expected_ops.append(op(index, email, "update", [], lists=entries))
    assert ops(answer) == expected_ops
    touched = sum(
        any(e["status"] != e["previous_status"] for e in o["lists"]) for o in expected_ops
    )
    assert answer["summary"] == summary(updated=touched, unchanged=len(states) - touched)
    assert membership_table(engine, lists.id) == expected_rows
    assert changed > 0


def test_each_contact_list_status_overrides_the_request(
    client: TestClient, engine: Engine, lists: Tenant
) -> None:
    """Every (previous status, own list_status, double opt-in) in one request; an own null
    or absent list_status is the request's (here `unsubscribed`)."""
    batch: list[dict[str, Any]] = []
    expected_ops: list[dict[str, Any]] = []
    expected_rows: dict[tuple[str, str], str] = {}
    for own in [*LIST_STATUSES, None, "absent"]:
        states = _contacts_in_every_state(client, engine, lists, tag=f".{str(own).lower()}")
        for email, before in states.items():
            item: dict[str, Any] = {"email": email}
            if own != "absent":
                item["list_status"] = own
            target = "unsubscribed" if own in (None, "absent") else str(own)
            entries = []
            for list_id, double_optin in LISTS.items():
                after = expected_after(before, target, double_optin=double_optin)
                entries.append(outcome(list_id, after, before))
                expected_rows[email, list_id] = after
            expected_ops.append(op(len(batch), email, "update", [], lists=entries))
            batch.append(item)
    answer = run(client, lists, batch, [NEWS, WEEKLY], list_status="unsubscribed")
    assert ops(answer) == expected_ops
    assert membership_table(engine, lists.id) == expected_rows


def test_new_contacts_with_their_own_list_status(
    client: TestClient, engine: Engine, lists: Tenant
) -> None:
    batch = [
        {"email": "a@example.com"},
        {"email": "b@example.com", "list_status": "active"},
        {"email": "c@example.com", "list_status": "unsubscribed"},
        {"email": "d@example.com", "list_status": "subscribed"},
    ]
    answer = run(client, lists, batch, [WEEKLY, NEWS], list_status="active")
    assert ops(answer) == [
        op(0, "a@example.com", "create", [],
           lists=[outcome(WEEKLY, "active", None), outcome(NEWS, "active", None)]),
        op(1, "b@example.com", "create", [],
           lists=[outcome(WEEKLY, "active", None), outcome(NEWS, "active", None)]),
        op(2, "c@example.com", "create", [],
           lists=[outcome(WEEKLY, "unsubscribed", None), outcome(NEWS, "unsubscribed", None)]),
        op(3, "d@example.com", "create", [],
           lists=[outcome(WEEKLY, "pending", None), outcome(NEWS, "active", None)]),
    ]  # fmt: skip
    assert answer["summary"] == summary(created=4)
    assert membership_table(engine, lists.id)["c@example.com", NEWS] == "unsubscribed"


def test_duplicates_see_the_memberships_their_predecessors_left(
    client: TestClient, lists: Tenant
) -> None:
    batch = [
        {"email": JANE},
        {"email": JANE, "list_status": "active"},
        {"email": JANE, "list_status": "unsubscribed"},
        {"email": JANE, "list_status": "active", "first_name": "Jane"},
        {"email": JANE},
    ]
    answer = run(client, lists, batch, [NEWS, WEEKLY])
    assert ops(answer) == [
        op(0, JANE, "create", [], lists=[outcome(NEWS, "active", None),
                                         outcome(WEEKLY, "pending", None)]),
        op(1, JANE, "update", [], lists=[outcome(NEWS, "active", "active"),
                                         outcome(WEEKLY, "active", "pending")]),
        op(2, JANE, "update", [], lists=[outcome(NEWS, "unsubscribed", "active"),
                                         outcome(WEEKLY, "unsubscribed", "active")]),
        op(3, JANE, "update", ["first_name"],
           lists=[outcome(NEWS, "unsubscribed", "unsubscribed"),
                  outcome(WEEKLY, "unsubscribed", "unsubscribed")]),
        op(4, JANE, "update", [], lists=[outcome(NEWS, "unsubscribed", "unsubscribed"),
                                         outcome(WEEKLY, "unsubscribed", "unsubscribed")]),
    ]  # fmt: skip
    assert answer["summary"] == summary(created=1, updated=3, unchanged=1)


def test_a_contact_list_status_without_lists_only_writes_the_contact(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    answer = run(client, tenant, [{"email": JANE, "list_status": "unsubscribed"}])
    assert answer == {
        "operations": [op(0, JANE, "create", [])],
        "error": None,
        "summary": summary(created=1),
    }
    assert everything(engine)["contact_lists"] == []
    for value in ("subscribed", "active", None):
        again = run(client, tenant, [{"email": JANE, "list_status": value}], [])
        assert ops(again) == [op(0, JANE, "update", [])]


@pytest.mark.parametrize("value", [*BAD_CHOICES, "pending", "bounced", "complained", "Active"])
def test_an_invalid_request_list_status_is_refused(
    client: TestClient, engine: Engine, lists: Tenant, value: Any
) -> None:
    before = everything(engine)
    for subscribe in (None, [NEWS]):
        response = post(client, lists, [{"email": JANE}], subscribe, list_status=value)
        assert response.status_code == 400, response.text
        assert response.json() == {"error": LIST_STATUS_ERROR}
    assert everything(engine) == before


@pytest.mark.parametrize("value", ["", "pending", "bounced", "Active", "SUBSCRIBED", 1, True, []])
def test_an_invalid_contact_list_status_is_that_contacts_error(
    client: TestClient, engine: Engine, lists: Tenant, value: Any
) -> None:
    batch = [
        {"email": "a@example.com", "list_status": "unsubscribed"},
        {"email": " Jane@Example.com ", "first_name": "Jane", "list_status": value},
        {"email": "b@example.com"},
    ]
    for subscribe in ([NEWS], None):
        answer = run(client, lists, batch, subscribe, dry_run=True)
        error = error_op(1, JANE, CONTACT_LIST_STATUS_ERROR)
        assert ops(answer)[1] == error
        assert answer["summary"] == summary(created=2, errors=1)
    answer = run(client, lists, batch, [NEWS])
    assert ops(answer) == [
        op(0, "a@example.com", "create", [], lists=[outcome(NEWS, "unsubscribed", None)]),
        error_op(1, JANE, CONTACT_LIST_STATUS_ERROR),
        op(2, "b@example.com", "create", [], lists=[outcome(NEWS, "active", None)]),
    ]
    assert get_contact(client, lists, JANE) is None
    assert set(membership_table(engine, lists.id)) == {
        ("a@example.com", NEWS),
        ("b@example.com", NEWS),
    }


def test_lists_entries_follow_the_request_order(client: TestClient, lists: Tenant) -> None:
    create_list(client, lists, "alpha")
    answer = run(client, lists, [{"email": JANE}], [WEEKLY, "alpha", NEWS])
    assert ops(answer) == [
        op(0, JANE, "create", [], lists=[
            outcome(WEEKLY, "pending", None),
            outcome("alpha", "active", None),
            outcome(NEWS, "active", None),
        ])
    ]  # fmt: skip
    answer = run(client, lists, [{"email": JANE}], [NEWS, WEEKLY])
    assert ops(answer) == [
        op(0, JANE, "update", [], lists=[
            outcome(NEWS, "active", "active"), outcome(WEEKLY, "pending", "pending"),
        ])
    ]  # fmt: skip


def test_a_membership_change_alone_is_an_update(
    client: TestClient, engine: Engine, lists: Tenant
) -> None:
    run(client, lists, [{"email": JANE, "first_name": "Jane"}], [WEEKLY])
    before = stored(client, lists, JANE)
    answer = run(client, lists, [{"email": JANE, "first_name": "Jane"}], [WEEKLY, NEWS],
                 list_status="active")  # fmt: skip
    assert ops(answer) == [
        op(0, JANE, "update", [], lists=[
            outcome(WEEKLY, "active", "pending"), outcome(NEWS, "active", None)
        ])
    ]  # fmt: skip
    assert answer["summary"] == summary(updated=1)
    after = stored(client, lists, JANE)
    assert {k: after[k] for k in FIELDS} == {k: before[k] for k in FIELDS}
    assert membership_table(engine, lists.id) == {(JANE, WEEKLY): "active", (JANE, NEWS): "active"}


# --- changed_fields ------------------------------------------------------------------------------


def test_a_create_reports_the_fields_stored_non_null(client: TestClient, tenant: Tenant) -> None:
    every = {name: "x" for name in FIELDS if name.startswith(("first", "custom_string"))}
    sent: dict[str, Any] = {
        "email": JANE,
        **every,
        "last_name": "",
        "phone": "   ",
        "job_title": None,
        "timezone": "UTC",
        "custom_number_1": 0,
        "custom_number_2": None,
        "custom_datetime_5": "2024-05-01T08:00:00-03:00",
        "custom_json_1": {},
        "custom_json_2": [],
        "custom_json_3": None,
        "unknown_key": 1,
        "list_status": "active",
    }
    answer = run(client, tenant, [sent, {"email": BOB}])
    expected = [*every, "last_name", "phone", "timezone", "custom_number_1"]
    expected = sorted([*expected, "custom_datetime_5", "custom_json_1", "custom_json_2"])
    assert ops(answer) == [op(0, JANE, "create", expected), op(1, BOB, "create", [])]
    everything_sent = {"email": "all@example.com", **_one_of_each()}
    answer = run(client, tenant, [everything_sent])
    assert ops(answer) == [op(0, "all@example.com", "create", sorted(FIELDS))]


def _one_of_each() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in FIELDS:
        if name == "timezone":
            values[name] = "Europe/Paris"
        elif name.startswith("custom_number"):
            values[name] = 1.5
        elif name.startswith("custom_datetime"):
            values[name] = "2024-05-01T08:00:00Z"
        elif name.startswith("custom_json"):
            values[name] = {"k": [1]}
        else:
            values[name] = name
    return values


#: (field, stored, sent, changed): equal values are compared by value, not by spelling.
VALUE_CASES: list[tuple[str, Any, Any, bool]] = [
    ("custom_number_1", 1, 1.0, False),
    ("custom_number_1", 1.0, 1, False),
    ("custom_number_1", 1, 1e0, False),
    ("custom_number_1", 100, 1e2, False),
    ("custom_number_1", 0, -0.0, False),
    ("custom_number_1", 1, 1.5, True),
    ("custom_number_1", 1, None, True),
    ("custom_number_1", None, 0, True),
    ("custom_number_1", None, None, False),
    ("custom_json_1", {"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}, False),
    ("custom_json_1", {"a": {"x": 1, "y": "z"}}, {"a": {"y": "z", "x": 1.0}}, False),
    ("custom_json_1", {"a": 1}, {"a": 1.0}, False),
    ("custom_json_1", [1, 2.5], [1.0, 2.5], False),
    ("custom_json_1", {"a": 1}, {"a": True}, True),
    ("custom_json_1", {"a": True}, {"a": 1}, True),
    ("custom_json_1", [0], [False], True),
    ("custom_json_1", [1, 2], [2, 1], True),
    ("custom_json_1", {"a": None}, {}, True),
    ("custom_json_1", {}, [], True),
    ("custom_json_1", {"a": "1"}, {"a": 1}, True),
    ("custom_json_1", {"a": 1}, None, True),
    ("custom_datetime_1", "2024-05-01T10:00:00+02:00", "2024-05-01T08:00:00Z", False),
    ("custom_datetime_1", "2024-05-01T08:00:00Z", "2024-05-01T03:00:00-05:00", False),
    ("custom_datetime_1", "2024-05-01T08:00:00Z", "2024-05-01T08:00:00.000+00:00", False),
    ("custom_datetime_1", "2024-05-01T08:00:00Z", "2024-05-01T13:30:00+05:30", False),
    ("custom_datetime_1", "2024-05-01T08:00:00Z", "2024-05-01T08:00:00+01:00", True),
    ("custom_datetime_1", "2024-05-01T08:00:00Z", "2024-05-01T08:00:00.000001Z", True),
    ("first_name", "Jane", "  Jane\t", False),
    ("first_name", " Jane ", "Jane\u00a0", False),
    ("first_name", "Jane", "jane", True),
    ("first_name", "Jane", "", True),
    ("first_name", "", "  ", False),
    ("first_name", "", None, True),
    ("first_name", None, "", True),
    ("timezone", "Europe/Paris", " Europe/Paris ", False),
]


def test_an_update_reports_the_fields_whose_value_changed(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    emails = [f"case{i}@example.com" for i in range(len(VALUE_CASES))]
    firsts = [{"email": e, f: s} for e, (f, s, _, _) in zip(emails, VALUE_CASES, strict=True)]
    created = run(client, tenant, firsts)
    assert ops(created) == [
        op(i, e, "create", [] if s is None else [f])
        for i, (e, (f, s, _, _)) in enumerate(zip(emails, VALUE_CASES, strict=True))
    ]
    before = {e: stored(client, tenant, e) for e in emails}
    seconds = [{"email": e, f: v} for e, (f, _, v, _) in zip(emails, VALUE_CASES, strict=True)]
    planned = run(client, tenant, seconds, dry_run=True)
    answer = run(client, tenant, seconds)
    planned.pop("dry_run")
    assert planned == answer
    wrong: list[tuple[Any, ...]] = []
    for i, (email, (name, old, new, changed)) in enumerate(zip(emails, VALUE_CASES, strict=True)):
        expected = op(i, email, "update", [name] if changed else [])
        if ops(answer)[i] != expected:
            wrong.append((name, old, new, ops(answer)[i]["changed_fields"]))
        after = stored(client, tenant, email)
        if not changed and after != before[email]:
            wrong.append((name, old, new, "rewritten", before[email], after))
        if changed and after["updated_at"] == before[email]["updated_at"]:
            wrong.append((name, old, new, "updated_at kept"))
    assert not wrong, wrong
    changes = sum(changed for *_, changed in VALUE_CASES)
    assert answer["summary"] == summary(updated=changes, unchanged=len(VALUE_CASES) - changes)


#: JSON numbers compared as PostgreSQL's jsonb compares them (exact decimal values), which
#: bulk._same_json says SQLite follows: beyond a double's precision too.
PRECISE_CASES: list[tuple[Any, bytes, bytes, bool]] = [
    ("big-int-vs-float", b'{"a": 12345678901234567890}', b'{"a": 12345678901234567890.0}', False),
    ("beyond-a-double", b'{"a": 0.1}', b'{"a": 0.10000000000000001}', True),
    ("exponent", b"[1e2]", b"[100]", False),
]


def test_json_numbers_are_compared_by_their_exact_value(client: TestClient, tenant: Tenant) -> None:
    wrong = []
    for number, (name, first, second, changed) in enumerate(PRECISE_CASES):
        address = f"n{number}@example.com"
        for value in (first, second):
            body = b'{"workspace_id": "acme", "contacts": [{"email": "%s", "custom_json_1": %s}]}'
            headers = {**tenant.headers, "Content-Type": "application/json"}
            response = client.post(
                "/api/contacts.import", headers=headers, content=body % (address.encode(), value)
            )
            assert response.status_code == 200, response.text
        got = response.json()["operations"][0]["changed_fields"]
        if got != (["custom_json_1"] if changed else []):
            wrong.append((name, got))
    assert not wrong, wrong


def test_a_null_over_a_blank_and_a_blank_over_a_null(client: TestClient, tenant: Tenant) -> None:
    run(client, tenant, [{"email": JANE, "first_name": "", "last_name": None}])
    answer = run(client, tenant, [{"email": JANE, "first_name": None, "last_name": ""}])
    assert ops(answer) == [op(0, JANE, "update", ["first_name", "last_name"])]
    contact = stored(client, tenant, JANE)
    assert (contact["first_name"], contact["last_name"]) == (None, "")


# --- an update that changes nothing writes nothing ----------------------------------------------

SAME_AGAIN: list[Any] = [
    {
        "email": " JANE@example.com ",
        "first_name": " Jane ",
        "custom_number_1": 1.0,
        "custom_datetime_1": "2024-05-01T10:00:00+02:00",
        "custom_json_1": {"b": [1, 2.0], "a": {"y": 1, "x": "s"}},
    },
    {"email": BOB, "custom_json_1": None},
]


def _seed_unchanging(client: TestClient, tenant: Tenant) -> None:
    first = {
        "email": JANE,
        "first_name": "Jane",
        "custom_number_1": 1,
        "custom_datetime_1": "2024-05-01T08:00:00Z",
        "custom_json_1": {"a": {"x": "s", "y": 1}, "b": [1, 2]},
    }
    run(client, tenant, [first, {"email": BOB, "first_name": "Bob"}], [NEWS, WEEKLY])


@pytest.mark.parametrize("merge", ["overwrite", "fill_blanks"])
def test_an_update_that_changes_nothing_writes_nothing(
    client: TestClient, engine: Engine, lists: Tenant, merge: str
) -> None:
    _seed_unchanging(client, lists)
    before = everything(engine)
    rows = _row_versions(engine)
    time.sleep(0.01)
    for lists_given in (None, [NEWS, WEEKLY], [WEEKLY]):
        answer = run(client, lists, SAME_AGAIN, lists_given, merge=merge)
        assert [o["changed_fields"] for o in ops(answer)] == [[], []]
        assert answer["summary"] == summary(unchanged=2)
    assert everything(engine) == before  # updated_at kept, memberships untouched
    assert _row_versions(engine) == rows  # the same row versions (PostgreSQL)


def _row_versions(engine: Engine) -> list[tuple[Any, ...]]:
    """Each contact's row version on PostgreSQL (xmin, ctid: a rewrite makes a new one)."""
    if engine.dialect.name != "postgresql":
        return []
    query = "SELECT email, xmin::text, ctid::text FROM contacts ORDER BY email"
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(query))]


def _contacts_stats(engine: Engine) -> tuple[int, int]:
    """(n_tup_ins, n_tup_upd) of the contacts table, as the statistics collector has them."""
    query = "SELECT n_tup_ins, n_tup_upd FROM pg_stat_user_tables WHERE relname = 'contacts'"
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        ins, upd = conn.execute(text(query)).one()
    return int(ins), int(upd)


def _wait_for_stats(engine: Engine, done: Any, timeout: float = 15.0) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while True:
        stats = _contacts_stats(engine)
        if done(stats) or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


@pytest.mark.parametrize("backend", ["postgres"])
def test_an_update_that_changes_nothing_leaves_n_tup_upd_alone(
    settings: Settings, engine: Engine, lists: Tenant
) -> None:
    """Each app is closed after its requests: its connections end, and their statistics
    are flushed as they do. A real update of another contact is the control: once it shows,
    the no-op updates would show too."""
    ins0, _ = _contacts_stats(engine)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        _seed_unchanging(client, lists)
    _, upd0 = _wait_for_stats(engine, lambda s: s[0] >= ins0 + 2)
    rows = _row_versions(engine)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for merge in ("overwrite", "fill_blanks"):
            for lists_given in (None, [NEWS, WEEKLY]):
                answer = run(client, lists, SAME_AGAIN, lists_given, merge=merge)
                assert answer["summary"] == summary(unchanged=2)
        control = run(client, lists, [{"email": BOB, "first_name": "Robert"}])
        assert ops(control) == [op(0, BOB, "update", ["first_name"])]
    _, upd = _wait_for_stats(engine, lambda s: s[1] > upd0)
    time.sleep(0.3)  # a straggler connection's flush
    _, upd = _contacts_stats(engine)
    assert upd == upd0 + 1, (upd0, upd)
    versions = _row_versions(engine)
    assert versions[1] == rows[1]  # jane@: never rewritten
    assert versions[0] != rows[0]  # bob@: the control


# --- summary --------------------------------------------------------------------------------------


def test_the_summary_counts_every_outcome(
    client: TestClient, engine: Engine, lists: Tenant
) -> None:
    run(client, lists, [{"email": JANE, "first_name": "Jane"}, {"email": BOB}], [NEWS])
    batch = [
        {"email": "new1@example.com"},
        {"email": "new2@example.com", "first_name": "N"},
        {"email": "new2@example.com", "first_name": "N"},  # unchanged duplicate
        {"email": "new2@example.com", "last_name": "M"},  # updated duplicate
        {"email": JANE, "first_name": "Jane"},  # unchanged
        {"email": JANE, "first_name": "Janet"},  # updated: a field
        {"email": BOB, "list_status": "unsubscribed"},  # updated: a membership
        {"email": BOB, "list_status": "active"},  # unchanged: the opt-out stays
        {"email": 5},
        {"email": "x@example.com", "custom_number_1": "1"},
        "not an object",
    ]
    for dry_run in (True, False):
        answer = run(client, lists, batch, [NEWS], dry_run=dry_run)
        assert answer["summary"] == summary(created=2, updated=3, unchanged=3, errors=3)
    assert [o["action"] for o in ops(answer)] == ["create"] * 2 + ["update"] * 6 + ["error"] * 3
    answer = run(client, lists, batch, [NEWS])
    assert answer["summary"] == summary(updated=2, unchanged=6, errors=3)


# --- contacts.upsert ------------------------------------------------------------------------------


def upsert(client: TestClient, tenant: Tenant, contact: Any, **options: Any) -> httpx.Response:
    body = {"workspace_id": tenant.id, "contact": contact, **options}
    response: httpx.Response = client.post(
        "/api/contacts.upsert", headers=tenant.headers, json=body
    )
    return response


def test_upsert_reports_changed_fields(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    first = {"email": JANE, "first_name": "Jane", "custom_number_1": 1, "phone": None}
    response = upsert(client, tenant, first)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "email": JANE,
        "action": "create",
        "changed_fields": ["custom_number_1", "first_name"],
    }
    before = everything(engine)
    same = {"email": " Jane@example.com", "first_name": "Jane ", "custom_number_1": 1.0}
    response = upsert(client, tenant, same)
    assert response.json() == {"email": JANE, "action": "update", "changed_fields": []}
    assert everything(engine) == before  # not rewritten
    response = upsert(client, tenant, {"email": JANE, "first_name": None, "phone": "1"})
    assert response.json() == {
        "email": JANE,
        "action": "update",
        "changed_fields": ["first_name", "phone"],
    }


def test_upsert_with_fill_blanks(client: TestClient, tenant: Tenant) -> None:
    response = upsert(
        client, tenant, {"email": JANE, "first_name": "", "phone": "1"}, merge="fill_blanks"
    )
    assert response.json() == {
        "email": JANE,
        "action": "create",
        "changed_fields": ["first_name", "phone"],
    }
    sent = {"email": JANE, "first_name": "Jane", "phone": "2", "last_name": None}
    response = upsert(client, tenant, sent, merge="fill_blanks")
    assert response.json() == {"email": JANE, "action": "update", "changed_fields": ["first_name"]}
    contact = stored(client, tenant, JANE)
    assert (contact["first_name"], contact["phone"], contact["last_name"]) == ("Jane", "1", None)
    response = upsert(client, tenant, sent, merge="overwrite")
    assert response.json() == {"email": JANE, "action": "update", "changed_fields": ["phone"]}


@pytest.mark.parametrize("value", BAD_CHOICES)
def test_upsert_refuses_an_invalid_merge(
    client: TestClient, engine: Engine, tenant: Tenant, value: Any
) -> None:
    before = everything(engine)
    response = upsert(client, tenant, {"email": JANE}, merge=value)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": MERGE_ERROR}
    assert everything(engine) == before
