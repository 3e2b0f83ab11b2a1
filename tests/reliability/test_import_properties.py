"""Properties of the import options, over random data (hypothesis), on both backends.

(a) A dry run answers exactly what the same request answers when it runs next (apart from
    `"dry_run": true`), and changes no row.
(b) merge=fill_blanks never clears a stored value, and never changes one that is not blank
    (null, or "" for text).
(c) list_status never revives an opt-out: over every (previous status, list_status, double
    opt-in), request-level or per contact, the outcome follows the specification's table.

Each example runs in a workspace of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, insert, select

from audience.db.models import (
    FIELDS,
    TEXT_FIELDS,
    api_keys,
    contact_lists,
    metadata,
    workspaces,
)
from tests.conftest import make_key, make_workspace
from tests.reliability.conftest import assert_no_traceback

EXAMPLES = 40
POOL = ("ann@example.com", "ben@example.org", "cat@example.net", "dee@example.io")
#: list id -> is double opt-in
LISTS = {"news": False, "vip": True}
PREVIOUS: tuple[str | None, ...] = (
    None,
    "active",
    "pending",
    "unsubscribed",
    "bounced",
    "complained",
)
OPT_OUTS = ("unsubscribed", "bounced", "complained")
LIST_STATUSES = ("subscribed", "active", "unsubscribed")
ABSENT: Any = object()

_workspaces = itertools.count()


def expected_after(before: str | None, target: str, *, double_optin: bool) -> str:
    """The specification's table of list_status."""
    if before in OPT_OUTS:
        return before  # never revived; bounced and complained never changed
    if target == "unsubscribed":
        return "unsubscribed"
    if target == "active":
        return "active"
    if before is None:
        return "pending" if double_optin else "active"
    return before


# --- generated data ----------------------------------------------------------------------------

TEXTS = st.sampled_from(["", "  ", "Jane", " Jane ", "jane", "X", "\u00a0X"]) | st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"), max_size=4
)
NUMBERS = st.sampled_from([0, -0.0, 1, 1.0, 1e2, 100, 2.5, -7])
DATETIMES = st.sampled_from(
    [
        "2024-05-01T08:00:00Z",
        "2024-05-01T10:00:00+02:00",
        "2024-05-01T03:00:00.000-05:00",
        "2024-05-01T08:00:01Z",
        "1999-12-31T23:59:59+00:00",
    ]
)
JSONS = st.sampled_from(
    [
        *([{}, [], [1], [True], [1.0], {"a": 1}, {"a": 1.0}, {"a": True}]),
        *({"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}),
        *({"a": {"y": None, "x": ""}}, {"a": {"x": "", "y": None}}),
    ]
)
#: The fields generated, by kind (text, timezone, number, date-time, JSON).
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "first_name": TEXTS,
    "last_name": TEXTS,
    "timezone": st.sampled_from(["UTC", " Europe/Paris ", "Europe/Paris", "Asia/Kolkata"]),
    "custom_number_1": NUMBERS,
    "custom_datetime_1": DATETIMES,
    "custom_json_1": JSONS,
}
OWN_STATUSES: list[Any] = [ABSENT, ABSENT, ABSENT, None, *LIST_STATUSES]


@st.composite
def email(draw: st.DrawFn) -> str:
    address = draw(st.sampled_from(POOL))
    return draw(st.sampled_from(["", " ", "\u00a0"])) + (
        address.upper() if draw(st.booleans()) else address
    )


@st.composite
def contact(draw: st.DrawFn, *, invalid: bool = True, own_status: bool = True) -> Any:
    """A contact: pool email, some fields absent, null or valued; sometimes invalid."""
    if invalid and draw(st.integers(0, 14)) == 0:
        return draw(
            st.sampled_from(
                [
                    {"email": "nope"},
                    {"email": POOL[0], "custom_number_1": "1"},
                    {"email": POOL[1], "list_status": "pending"},
                    "not an object",
                ]
            )
        )
    item: dict[str, Any] = {"email": draw(email())}
    for name, values in VALUES.items():
        kind = draw(st.sampled_from(["absent", "absent", "null", "value", "value"]))
        if kind == "null":
            item[name] = None
        elif kind == "value":
            item[name] = draw(values)
    status = draw(st.sampled_from(OWN_STATUSES)) if own_status else ABSENT
    if status is not ABSENT:
        item["list_status"] = status
    return item


def option(values: list[Any]) -> st.SearchStrategy[Any]:
    return st.sampled_from([ABSENT, *values])


SUBSCRIPTIONS: list[Any] = [[], ["news"], ["vip", "news"], ["news", "vip"]]


@st.composite
def initial_state(draw: st.DrawFn) -> tuple[list[Any], dict[tuple[str, str], str | None]]:
    """Stored contacts and, per (email, list), a membership status (None: none)."""
    seeded = draw(st.lists(contact(invalid=False, own_status=False), max_size=4))
    emails = {str(c["email"]).strip().lower() for c in seeded}
    states = {
        (e, list_id): draw(st.sampled_from(PREVIOUS)) for e in sorted(emails) for list_id in LISTS
    }
    return seeded, states


# --- the workspace of one example ---------------------------------------------------------------


class Workspace:
    """A fresh workspace with the lists `news` and `vip` (double opt-in)."""

    def __init__(self, client: TestClient, engine: Engine, prefix: str) -> None:
        self.client, self.engine = client, engine
        self.id = f"prop_{prefix}_{next(_workspaces)}"
        make_workspace(engine, self.id)
        self.headers = {"Authorization": f"Bearer {make_key(engine, self.id)}"}
        for list_id, double_optin in LISTS.items():
            body = {
                "workspace_id": self.id,
                "id": list_id,
                "name": list_id,
                "is_double_optin": double_optin,
            }
            response = client.post("/api/lists.create", headers=self.headers, json=body)
            assert response.status_code == 201, response.text

    def post(self, items: list[Any], **options: Any) -> Any:
        body = {"workspace_id": self.id, "contacts": items}
        body.update({k: v for k, v in options.items() if v is not ABSENT})
        response = self.client.post("/api/contacts.import", headers=self.headers, json=body)
        assert_no_traceback(response.text)
        return response

    def seed(self, items: list[Any], states: dict[tuple[str, str], str | None]) -> None:
        if items:
            response = self.post(items)
            assert response.status_code == 200, response.text
            assert all(op["action"] != "error" for op in response.json()["operations"])
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(delete(contact_lists).where(contact_lists.c.workspace_id == self.id))
            for (address, list_id), status in states.items():
                if status is not None:
                    conn.execute(
                        insert(contact_lists).values(
                            workspace_id=self.id,
                            email=address,
                            list_id=list_id,
                            status=status,
                            created_at=now,
                            updated_at=now,
                        )
                    )

    def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of the workspace in every table (a key's last_used_at left out; a table
        of no workspace, whole)."""
        tables: dict[str, list[tuple[Any, ...]]] = {}
        with self.engine.connect() as conn:
            for table in metadata.sorted_tables:
                columns = [c for c in table.columns if c is not api_keys.c.last_used_at]
                query = select(*columns).order_by(*table.primary_key.columns)
                if table is workspaces:
                    query = query.where(workspaces.c.id == self.id)
                elif "workspace_id" in table.c:
                    query = query.where(table.c.workspace_id == self.id)
                tables[table.name] = [tuple(row) for row in conn.execute(query)]
        return tables

    def contacts(self) -> dict[str, dict[str, Any]]:
        """Every contact as contacts.list shows it (with its memberships), by email."""
        params = {"workspace_id": self.id, "limit": 100, "with_contact_lists": True}
        response = self.client.get("/api/contacts.list", headers=self.headers, params=params)
        assert response.status_code == 200, response.text
        return {c["email"]: c for c in response.json()["contacts"]}

    def memberships(self) -> dict[tuple[str, str], str]:
        query = select(contact_lists.c.email, contact_lists.c.list_id, contact_lists.c.status)
        with self.engine.connect() as conn:
            rows = conn.execute(query.where(contact_lists.c.workspace_id == self.id))
            return {(e, lid): s for e, lid, s in rows}


def run_property(test: Callable[..., None], *strategies: st.SearchStrategy[Any]) -> None:
    given(*strategies)(
        settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )(test)
    )()


# --- (a) a dry run is the request's answer, and writes nothing ----------------------------------


def test_a_dry_run_answers_what_the_request_answers_and_changes_no_row(
    client: TestClient, engine: Engine, backend: str
) -> None:
    def check(
        state: tuple[list[Any], dict[tuple[str, str], str | None]],
        batch: list[Any],
        lists: Any,
        merge: Any,
        list_status: Any,
        unknown_list: bool,
    ) -> None:
        space = Workspace(client, engine, backend[:2])
        space.seed(*state)
        if unknown_list and lists is not ABSENT:
            lists = [*lists, "ghost"]
        options = {"subscribe_to_lists": lists, "merge": merge, "list_status": list_status}
        before = space.rows()
        planned = space.post(batch, dry_run=True, **options)
        assert space.rows() == before
        done = space.post(batch, **options)
        assert planned.status_code == done.status_code, (planned.text, done.text)
        if done.status_code != 200:
            assert planned.json() == done.json() == {"error": "list not found: ghost"}
            assert space.rows() == before
            return
        answer = planned.json()
        assert answer.pop("dry_run") is True
        assert "dry_run" not in done.json()
        assert answer == done.json()

    run_property(
        check,
        initial_state(),
        st.lists(contact(), min_size=1, max_size=6),
        option(SUBSCRIPTIONS),
        option(["overwrite", "fill_blanks"]),
        option(list(LIST_STATUSES)),
        st.integers(0, 9).map(lambda n: n == 0),
    )


# --- (b) fill_blanks never clears, never overwrites ----------------------------------------------


def is_blank(name: str, value: Any) -> bool:
    """Null, or "" for a text field: what fill_blanks may fill."""
    return value is None or (name in TEXT_FIELDS and value == "")


def test_fill_blanks_never_clears_nor_overwrites_a_stored_value(
    client: TestClient, engine: Engine, backend: str
) -> None:
    def check(seeded: list[Any], batch: list[Any]) -> None:
        space = Workspace(client, engine, backend[:2])
        space.seed(seeded, {})
        before = space.contacts()
        response = space.post(batch, merge="fill_blanks")
        assert response.status_code == 200, response.text
        after = space.contacts()
        for address, old in before.items():
            new = after[address]
            for name in FIELDS:
                if old[name] is not None:
                    assert new[name] is not None, (address, name, old[name])
                if not is_blank(name, old[name]):
                    assert new[name] == old[name], (address, name, old[name], new[name])
            if old == new:
                assert all(  # written only where a field changed
                    op["changed_fields"] == []
                    for op in response.json()["operations"]
                    if op["email"] == address and op["action"] != "error"
                )
        for op in response.json()["operations"]:
            if op["action"] == "error":
                continue
            old_contact = before.get(op["email"])
            for name in op["changed_fields"]:  # only what was blank before the request
                assert old_contact is None or is_blank(name, old_contact[name]), (op, name)

    run_property(
        check,
        st.lists(contact(invalid=False, own_status=False), min_size=1, max_size=4),
        st.lists(contact(), min_size=1, max_size=6),
    )


# --- (c) list_status never revives an opt-out ----------------------------------------------------


def test_list_status_follows_the_table_and_never_revives_an_opt_out(
    client: TestClient, engine: Engine, backend: str
) -> None:
    def check(
        states: list[tuple[str | None, str | None]],
        owns: list[Any],
        request_status: Any,
        lists: list[str],
    ) -> None:
        space = Workspace(client, engine, backend[:2])
        emails = [f"m{i}@example.com" for i in range(len(states))]
        memberships = {
            (address, list_id): state
            for address, pair in zip(emails, states, strict=True)
            for list_id, state in zip(LISTS, pair, strict=True)
        }
        space.seed([{"email": address} for address in emails], memberships)
        batch: list[Any] = []
        for k, own in enumerate(owns):
            item: dict[str, Any] = {"email": emails[k % len(emails)]}
            if own is not ABSENT:
                item["list_status"] = own
            batch.append(item)
        response = space.post(batch, subscribe_to_lists=lists, list_status=request_status)
        assert response.status_code == 200, response.text
        model = dict(memberships)
        default = "subscribed" if request_status is ABSENT else request_status
        for item, op in zip(batch, response.json()["operations"], strict=True):
            target = item.get("list_status") or default
            expected = []
            for list_id in lists:
                before = model[item["email"], list_id]
                after = expected_after(before, target, double_optin=LISTS[list_id])
                if before in OPT_OUTS:
                    assert after == before
                expected.append({"list_id": list_id, "status": after, "previous_status": before})
                model[item["email"], list_id] = after
            assert op["lists"] == expected, (item, default, op)
        stored = {key: status for key, status in model.items() if status is not None}
        assert space.memberships() == stored

    states = st.lists(
        st.tuples(st.sampled_from(PREVIOUS), st.sampled_from(PREVIOUS)), min_size=1, max_size=6
    )
    run_property(
        check,
        states,
        st.lists(st.sampled_from(OWN_STATUSES), min_size=1, max_size=8),
        option(list(LIST_STATUSES)),
        st.sampled_from(SUBSCRIPTIONS[1:]),
    )


@pytest.mark.parametrize("double_optin", [False, True])
def test_the_table_is_the_specification(double_optin: bool) -> None:
    """The table these properties hold the server to, spelled out."""
    table = {
        (before, target): expected_after(before, target, double_optin=double_optin)
        for before in PREVIOUS
        for target in LIST_STATUSES
    }
    new = "pending" if double_optin else "active"
    expected: dict[tuple[str | None, str], str] = {
        (None, "subscribed"): new,
        (None, "active"): "active",
        (None, "unsubscribed"): "unsubscribed",
        ("active", "subscribed"): "active",
        ("active", "active"): "active",
        ("active", "unsubscribed"): "unsubscribed",
        ("pending", "subscribed"): "pending",
        ("pending", "active"): "active",
        ("pending", "unsubscribed"): "unsubscribed",
        **{(s, t): s for s in OPT_OUTS for t in LIST_STATUSES},
    }
    assert table == expected
