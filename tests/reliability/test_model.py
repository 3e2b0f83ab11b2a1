"""Model-based test of docs/import.md rules 4-10: random imports, upserts and status changes.

A hypothesis state machine drives the HTTP API with random sequences of steps over a pool of
six emails, and after every step compares every contact (GET contacts.getByEmail), its list
memberships and timestamps, and every reported operation against a small pure-Python model.
Each example runs in a workspace of its own, so every example starts from an empty database.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import Engine

from audience.app import create_app
from audience.config import Settings
from audience.db.models import FIELDS
from tests.conftest import make_key, make_workspace
from tests.reliability.conftest import assert_no_traceback

POOL = (
    "alice@example.com",
    "bob@example.org",
    "carol.d@example.net",
    "dan+tag@mail.example.com",
    "eve@example.co.uk",
    "frank_o@example.io",
)
#: list id -> is double opt-in
LISTS = {"news": False, "vip": True}
STATUSES = ("active", "pending", "unsubscribed", "bounced", "complained")
MODELLED = (
    "first_name",
    "last_name",
    "timezone",
    "custom_number_1",
    "custom_datetime_1",
    "custom_json_1",
)


def same_value(a: Any, b: Any) -> bool:
    """Values a re-import leaves alone: equal numbers (1 and 1.0), JSON objects in any key
    order, but never a boolean for a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same_value, a, b))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()
#: What str.strip() removes and the server must too (ASCII, NBSP, em space, ideographic space).
PADDING = ("", "", " ", "\t", "\u00a0", "\n ", "\u2003", "\u3000")

EXAMPLES = 25
STEPS = 10
#: Figures of the last run of each backend, printed for docs/reliability.md.
STATS: dict[str, int] = {}


# --- generated values ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    """One field of one generated contact: what is sent and what the model expects of it."""

    kind: str  # absent | null | valid | invalid
    sent: Any = ABSENT
    stored: Any = None


safe_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)


@st.composite
def padded(draw: st.DrawFn, core: st.SearchStrategy[str]) -> str:
    return draw(st.sampled_from(PADDING)) + draw(core) + draw(st.sampled_from(PADDING))


@st.composite
def text_value(draw: st.DrawFn) -> tuple[Any, Any]:
    sent = draw(padded(safe_text) | st.just("  " + "x" * 255 + " "))
    return sent, sent.strip()


def timezone_value() -> st.SearchStrategy[tuple[Any, Any]]:
    names = st.sampled_from(["Europe/Paris", "America/New_York", "UTC", "Asia/Kolkata"])
    return padded(names).map(lambda s: (s, s.strip()))


def number_value() -> st.SearchStrategy[tuple[Any, Any]]:
    numbers = st.integers(-(2**60), 2**60) | st.floats(allow_nan=False, allow_infinity=False)
    return numbers.map(lambda n: (n, float(n)))


@st.composite
def datetime_value(draw: st.DrawFn) -> tuple[Any, Any]:
    zone = draw(
        st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
        )
    )
    moment = draw(
        st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1))
    ).replace(tzinfo=zone)
    sent = moment.isoformat()
    if zone is UTC and draw(st.booleans()):
        sent = sent.removesuffix("+00:00") + "Z"
    return sent, moment.astimezone(UTC)


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.sampled_from([0.5, -2.25, 1e-3])
    | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=4),
            inner,
            max_size=3,
        )
    ),
    max_leaves=6,
).filter(lambda v: isinstance(v, dict | list))

VALID: dict[str, st.SearchStrategy[tuple[Any, Any]]] = {
    "first_name": text_value(),
    "last_name": text_value(),
    "timezone": timezone_value(),
    "custom_number_1": number_value(),
    "custom_datetime_1": datetime_value(),
    "custom_json_1": json_value.map(lambda v: (v, v)),
}
INVALID: dict[str, list[Any]] = {
    "first_name": [5, "x" * 256, "a\x00b", ["x"]],
    "last_name": [True, {"a": 1}],
    "timezone": ["Mars/Base", "europe/paris", 3],
    "custom_number_1": ["42", True, [1], {"n": 1}],
    "custom_datetime_1": ["2024-01-01T00:00:00", "yesterday", 20240101],
    "custom_json_1": [5, "text", True],
}
KINDS = ["absent"] * 9 + ["null"] * 3 + ["valid"] * 7 + ["invalid"]


@st.composite
def field_value(draw: st.DrawFn, name: str) -> Value:
    kind = draw(st.sampled_from(KINDS))
    if kind == "absent":
        return Value("absent")
    if kind == "null":
        return Value("null", None, None)
    if kind == "invalid":
        return Value("invalid", draw(st.sampled_from(INVALID[name])))
    sent, stored = draw(VALID[name])
    return Value("valid", sent, stored)


@st.composite
def pool_email(draw: st.DrawFn) -> str:
    """A pool address in random letter case with random Unicode whitespace around it."""
    email = draw(st.sampled_from(POOL))
    upper = draw(st.lists(st.booleans(), min_size=len(email), max_size=len(email)))
    cased = "".join(c.upper() if u else c for c, u in zip(email, upper, strict=True))
    return draw(st.sampled_from(PADDING)) + cased + draw(st.sampled_from(PADDING))


BAD_EMAILS = {
    "": "email is required",
    "   ": "email is required",
    None: "email is required",
    "not-an-email": "invalid email format",
    "a@b": "invalid email format",
    "two@@example.com": "invalid email format",
    42: "invalid email format",
}


@dataclass(frozen=True)
class Contact:
    """A generated element of `contacts`, and what the rules make of it."""

    sent: Any
    email: str | None  # the normalised email, when the contact is valid
    report_email: str  # what an error operation must echo
    values: dict[str, Any]  # modelled fields given: name -> stored value (None clears)
    problems: tuple[str, ...]  # accepted prefixes of the error message; empty when valid


@st.composite
def contact(draw: st.DrawFn) -> Contact:
    if draw(st.integers(0, 24)) == 0:
        sent = draw(st.sampled_from(["not an object", 7, [], None, [{"email": POOL[0]}]]))
        return Contact(sent, None, "", {}, ("contact must be a JSON object",))
    body: dict[str, Any] = {}
    problems: list[str] = []
    choice = draw(st.integers(0, 11))
    if choice == 0:
        raw_email: Any = ABSENT
        problems.append("email is required")
    elif choice == 1:
        raw_email = draw(st.sampled_from(list(BAD_EMAILS)))
        problems.append(BAD_EMAILS[raw_email])
    else:
        raw_email = draw(pool_email())
    if raw_email is not ABSENT:
        body["email"] = raw_email
    values: dict[str, Any] = {}
    for name in MODELLED:
        value = draw(field_value(name))
        if value.kind == "absent":
            continue
        body[name] = value.sent
        if value.kind == "invalid":
            problems.append(f"{name}:")
        else:
            values[name] = value.stored
    if draw(st.integers(0, 9)) == 0:
        body["unknown_field"] = draw(st.sampled_from([1, "x", {"nested": [1]}]))
    order = draw(st.permutations(list(body)))
    in_order: dict[str, Any] = {key: body[key] for key in order}
    report = raw_email.strip().lower() if isinstance(raw_email, str) else ""
    email = None if problems else report
    return Contact(in_order, email, report, values, tuple(problems))


SUBSCRIPTIONS: list[Any] = [
    ABSENT,
    ABSENT,
    None,
    [],
    ["news"],
    ["vip"],
    ["news", "vip"],
    ["vip", "news", "vip"],
    ["ghost"],
    ["news", "ghost"],
]


# --- the model --------------------------------------------------------------------------------


@dataclass
class Stored:
    values: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(MODELLED))
    created_at: str | None = None
    updated_at: str | None = None


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


_workspaces = itertools.count()


class ImportModel(RuleBasedStateMachine):
    """The API of one fresh workspace against the rules of docs/import.md, step by step."""

    client: TestClient
    engine: Engine
    backend: str

    def __init__(self) -> None:
        super().__init__()
        self.workspace = f"model_{self.backend[:2]}_{next(_workspaces)}"
        make_workspace(self.engine, self.workspace)
        self.headers = {"Authorization": f"Bearer {make_key(self.engine, self.workspace)}"}
        for list_id, double_optin in LISTS.items():
            body = {
                "workspace_id": self.workspace,
                "id": list_id,
                "name": list_id.title(),
                "is_double_optin": double_optin,
            }
            response = self.client.post("/api/lists.create", headers=self.headers, json=body)
            assert response.status_code == 201, response.text
        self.contacts: dict[str, Stored] = {}
        self.memberships: dict[tuple[str, str], str] = {}
        self.touched: set[str] = set()
        STATS["examples"] = STATS.get("examples", 0) + 1

    # --- steps ------------------------------------------------------------------------------

    @rule(batch=st.lists(contact(), min_size=1, max_size=8), lists=st.sampled_from(SUBSCRIPTIONS))
    def import_batch(self, batch: list[Contact], lists: Any) -> None:
        body: dict[str, Any] = {"workspace_id": self.workspace, "contacts": [c.sent for c in batch]}
        if lists is not ABSENT:
            body["subscribe_to_lists"] = lists
        response = self.client.post("/api/contacts.import", headers=self.headers, json=body)
        self.count("imports")
        self.count("contacts_sent", len(batch))
        assert_no_traceback(response.text)
        requested = [] if lists is ABSENT or lists is None else lists
        unknown = [lid for lid in requested if lid not in LISTS]
        if unknown:
            # Rule 2: a rejected request writes nothing.
            assert response.status_code == 400, response.text
            assert response.json() == {"error": f"list not found: {unknown[0]}"}
            return
        assert response.status_code == 200, response.text
        operations = response.json()["operations"]
        assert response.json()["error"] is None
        assert len(operations) == len(batch)
        seen: set[str] = set()
        for index, (sent, op) in enumerate(zip(batch, operations, strict=True)):
            assert op["index"] == index, op
            if sent.problems:
                self.check_error(op, sent)
                continue
            assert sent.email is not None
            new = sent.email not in self.contacts and sent.email not in seen
            assert op == {
                "index": index,
                "email": sent.email,
                "action": "create" if new else "update",
                "error": None,
                "changed_fields": self.changes(sent),
                **({"lists": op["lists"]} if "lists" in op else {}),
            }, (sent.sent, op)
            seen.add(sent.email)
            self.apply(sent)
        for email in seen:
            for list_id in dict.fromkeys(requested):
                default = "pending" if LISTS[list_id] else "active"
                self.memberships.setdefault((email, list_id), default)

    @rule(sent=contact().filter(lambda c: isinstance(c.sent, dict)))
    def upsert(self, sent: Contact) -> None:
        body = {"workspace_id": self.workspace, "contact": sent.sent}
        response = self.client.post("/api/contacts.upsert", headers=self.headers, json=body)
        self.count("upserts")
        assert_no_traceback(response.text)
        if sent.problems:
            assert response.status_code == 400, (sent.sent, response.text)
            error = response.json()["error"]
            assert error.startswith(sent.problems), (sent.sent, error)
            return
        assert sent.email is not None
        action = "update" if sent.email in self.contacts else "create"
        assert response.status_code == 200, response.text
        expected = {"email": sent.email, "action": action, "changed_fields": self.changes(sent)}
        assert response.json() == expected, sent.sent
        self.apply(sent)

    @rule(
        email=pool_email(),
        list_id=st.sampled_from([*LISTS, "ghost"]),
        status=st.sampled_from(STATUSES),
    )
    def update_status(self, email: str, list_id: str, status: str) -> None:
        body = {"workspace_id": self.workspace, "email": email, "list_id": list_id}
        response = self.client.post(
            "/api/contactLists.updateStatus", headers=self.headers, json={**body, "status": status}
        )
        self.count("status_changes")
        assert_no_traceback(response.text)
        normalized = email.strip().lower()
        if normalized not in self.contacts:
            expected = f"contact not found: {normalized}"
        elif list_id not in LISTS:
            expected = f"list not found: {list_id}"
        elif (normalized, list_id) not in self.memberships:
            expected = f"contact {normalized} is not in list {list_id}"
        else:
            assert response.status_code == 200, response.text
            assert response.json() == {"success": True}
            self.memberships[normalized, list_id] = status
            return
        assert response.status_code == 404, response.text
        assert response.json() == {"error": expected}

    # --- the comparison after every step -------------------------------------------------------

    @invariant()
    def every_contact_matches_the_model(self) -> None:
        for email in POOL:
            self.check_contact(email)
        response = self.client.get(
            "/api/contacts.count", headers=self.headers, params={"workspace_id": self.workspace}
        )
        assert response.json() == {"total_contacts": len(self.contacts)}
        self.touched.clear()

    def check_contact(self, email: str) -> None:
        params = {"workspace_id": self.workspace, "email": email}
        response = self.client.get("/api/contacts.getByEmail", headers=self.headers, params=params)
        self.count("contacts_checked")
        stored = self.contacts.get(email)
        if stored is None:
            assert response.status_code == 404, response.text
            assert response.json() == {"error": f"contact not found: {email}"}
            return
        assert response.status_code == 200, response.text
        got = response.json()["contact"]
        assert got["email"] == email
        for name in FIELDS:
            expected = stored.values.get(name)
            actual = got[name]
            if name == "custom_datetime_1" and actual is not None:
                actual = parse_time(actual)
            assert actual == expected, (email, name, actual, expected)
        memberships = {m["list_id"]: m["status"] for m in got["contact_lists"]}
        expected_lists = {lid: s for (e, lid), s in self.memberships.items() if e == email}
        assert memberships == expected_lists, email
        self.check_timestamps(email, stored, got["created_at"], got["updated_at"])

    def check_timestamps(self, email: str, stored: Stored, created: str, updated: str) -> None:
        """Rule 7: created_at never changes; updated_at changes with every write that changes
        a value, only then."""
        if stored.created_at is None:
            assert created == updated, (email, created, updated)
            stored.created_at = created
        assert created == stored.created_at, email
        if email in self.touched and stored.updated_at is not None:
            assert parse_time(updated) > parse_time(stored.updated_at), email
        elif email not in self.touched:
            assert updated == stored.updated_at, email
        assert parse_time(updated) >= parse_time(created)
        stored.updated_at = updated

    # --- helpers ------------------------------------------------------------------------------

    def check_error(self, op: dict[str, Any], sent: Contact) -> None:
        assert op["action"] == "error", (sent.sent, op)
        assert op["error"].startswith(sent.problems), (sent.sent, op)
        assert op["email"] == sent.report_email, (sent.sent, op)

    def changes(self, sent: Contact) -> list[str]:
        """The changed_fields an operation must report: for a new contact the fields it
        stores non-null, for an update the fields whose value it changes."""
        assert sent.email is not None
        stored = self.contacts.get(sent.email)
        if stored is None:
            return sorted(k for k, v in sent.values.items() if v is not None)
        return sorted(k for k, v in sent.values.items() if not same_value(stored.values.get(k), v))

    def apply(self, sent: Contact) -> None:
        """Rule 7: absent keeps, null clears, a value replaces; a write that changes no value
        leaves the contact untouched (updated_at kept)."""
        assert sent.email is not None
        new = sent.email not in self.contacts
        stored = self.contacts.setdefault(sent.email, Stored())
        changed = [k for k, v in sent.values.items() if not same_value(stored.values.get(k), v)]
        stored.values.update(sent.values)
        if new or changed:
            self.touched.add(sent.email)

    def count(self, name: str, amount: int = 1) -> None:
        STATS[name] = STATS.get(name, 0) + amount


def test_random_sequences_follow_the_rules(
    client: TestClient, engine: Engine, backend: str
) -> None:
    _run_model(client, engine, backend)


@pytest.mark.parametrize("backend", ["postgres"])
def test_the_unnest_bulk_write_mode_follows_the_same_rules(
    settings: Settings, engine: Engine, backend: str
) -> None:
    """AUDIENCE_BULK_WRITE=unnest (for engines without temporary tables) on PostgreSQL."""
    app = create_app(settings.model_copy(update={"bulk_write": "unnest"}))
    with TestClient(app, raise_server_exceptions=False) as client:
        _run_model(client, engine, backend)


def _run_model(client: TestClient, engine: Engine, backend: str) -> None:
    machine = type(
        "ImportModelOn" + backend.title(),
        (ImportModel,),
        {"client": client, "engine": engine, "backend": backend},
    )
    STATS.clear()
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    print(f"[reliability] model {backend}: {STATS}")
    assert STATS["examples"] >= EXAMPLES


@pytest.mark.parametrize("padding", ["\u00a0", "\u2003", "\u3000", "\t\n"])
def test_unicode_whitespace_around_emails_is_trimmed(
    client: TestClient, engine: Engine, padding: str
) -> None:
    """The model relies on str.strip(); pin the same behaviour on a single request."""
    make_workspace(engine, "trim")
    headers = {"Authorization": f"Bearer {make_key(engine, 'trim')}"}
    body = {"workspace_id": "trim", "contacts": [{"email": f"{padding}Jo@Example.COM{padding}"}]}
    response = client.post("/api/contacts.import", headers=headers, json=body)
    assert response.json()["operations"][0]["email"] == "jo@example.com"
