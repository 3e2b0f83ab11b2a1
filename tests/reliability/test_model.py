"""Model-based test of docs/import.md rules 4-10: random imports, upserts and status changes.

A hypothesis state machine drives the HTTP API with random sequences of steps over a pool of
six emails, and after every step compares every contact (GET contacts.getByEmail), its list
memberships and timestamps, and every reported operation against a small pure-Python model.
Each example runs in a workspace of its own, so every example starts from an empty database.

The import's options are drawn too: merge (overwrite, fill_blanks), list_status (for the
request and per contact), dry_run (the same answer, with `"dry_run": true`, and the model
left as it was); every answer's `lists` entries and `summary` are checked against the model.
"""

from __future__ import annotations

import copy
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
from tests.conftest import POSTGRES_SERVERS, make_key, make_workspace
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
OPT_OUTS = ("unsubscribed", "bounced", "complained")
LIST_STATUSES = ("subscribed", "active", "unsubscribed")
#: Text fields among the modelled ones: "" is blank for fill_blanks, as null is for all.
MODELLED_TEXT = ("first_name", "last_name", "timezone")
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

EXAMPLES = 15
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
    # Blank and common values recur, so that merges meet blanks and equal values.
    common = padded(st.sampled_from(["", "", "Jane"]))
    sent = draw(padded(safe_text) | common | st.just("  " + "x" * 255 + " "))
    return sent, sent.strip()


def timezone_value() -> st.SearchStrategy[tuple[Any, Any]]:
    names = st.sampled_from(["Europe/Paris", "America/New_York", "UTC", "Asia/Kolkata"])
    return padded(names).map(lambda s: (s, s.strip()))


def number_value() -> st.SearchStrategy[tuple[Any, Any]]:
    numbers = st.integers(-(2**60), 2**60) | st.floats(allow_nan=False, allow_infinity=False)
    numbers |= st.sampled_from([0, 1, 1.0, -0.0])  # equal values in other spellings
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

#: Values equal by value but not by spelling, or the other way round (true is not 1).
TRICKY_JSON = st.sampled_from([{"a": 1, "b": [1]}, {"b": [1.0], "a": 1}, {"a": True, "b": [1]}])

VALID: dict[str, st.SearchStrategy[tuple[Any, Any]]] = {
    "first_name": text_value(),
    "last_name": text_value(),
    "timezone": timezone_value(),
    "custom_number_1": number_value(),
    "custom_datetime_1": datetime_value(),
    "custom_json_1": st.one_of(json_value, TRICKY_JSON, TRICKY_JSON).map(lambda v: (v, v)),
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
    list_status: str | None = None  # its own list_status (None: the request's)


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
    own = draw(st.sampled_from(OWN_LIST_STATUSES))
    if own is not ABSENT:
        body["list_status"] = own
        if own is not None and own not in LIST_STATUSES:
            problems.append("list_status: must be one of subscribed, active, unsubscribed")
    order = draw(st.permutations(list(body)))
    in_order: dict[str, Any] = {key: body[key] for key in order}
    report = raw_email.strip().lower() if isinstance(raw_email, str) else ""
    email = None if problems else report
    list_status = own if own in LIST_STATUSES else None
    return Contact(in_order, email, report, values, tuple(problems), list_status)


#: A contact's own list_status: mostly absent; null is the request's; some invalid.
OWN_LIST_STATUSES: list[Any] = [ABSENT] * 8 + [None, *LIST_STATUSES, "pending", 1]


@dataclass(frozen=True)
class Options:
    """The import's options as sent (`body`), and what they mean."""

    body: dict[str, Any]
    merge: str = "overwrite"
    list_status: str = "subscribed"
    dry_run: bool = False
    refusals: tuple[str, ...] = ()  # the request-level errors an invalid option may cause


MERGE_ERROR = "merge must be one of overwrite, fill_blanks"
LIST_STATUS_ERROR = "list_status must be one of subscribed, active, unsubscribed"


@st.composite
def import_options(draw: st.DrawFn) -> Options:
    body: dict[str, Any] = {}
    refusals: list[str] = []
    merge = draw(st.sampled_from([ABSENT] * 4 + ["overwrite", "fill_blanks", "fill_blanks"]))
    if draw(st.integers(0, 24)) == 0:
        merge = draw(st.sampled_from([None, "Fill_Blanks", "keep"]))
        refusals.append(MERGE_ERROR)
    list_status = draw(st.sampled_from([ABSENT] * 3 + list(LIST_STATUSES)))
    if draw(st.integers(0, 24)) == 0:
        list_status = draw(st.sampled_from([None, "pending", "bounced"]))
        refusals.append(LIST_STATUS_ERROR)
    dry_run = draw(st.sampled_from([ABSENT, ABSENT, ABSENT, False, True, True]))
    for name, value in (("merge", merge), ("list_status", list_status), ("dry_run", dry_run)):
        if value is not ABSENT:
            body[name] = value
    return Options(
        body,
        merge=merge if merge in ("overwrite", "fill_blanks") else "overwrite",
        list_status=list_status if list_status in LIST_STATUSES else "subscribed",
        dry_run=dry_run is True,
        refusals=tuple(refusals),
    )


def list_status_after(before: str | None, target: str, *, double_optin: bool) -> str:
    """What list_status does to a membership: opt-outs are never revived (and bounced or
    complained never changed); `subscribed` only adds a new membership (pending on a double
    opt-in list); `active` adds or confirms; `unsubscribed` opts out a new, active or pending
    one."""
    if before in OPT_OUTS:
        return before
    if target in ("active", "unsubscribed"):
        return target
    if before is None:
        return "pending" if double_optin else "active"
    return before


def merged(old: Any, new: Any, name: str, merge: str) -> Any:
    """A given value (None: null) merged into a stored one."""
    if merge == "overwrite":
        return new
    blank = old is None or (name in MODELLED_TEXT and old == "")
    return new if new is not None and blank else old


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
        #: Contacts whose memberships alone changed: updated_at may or may not move.
        self.loose: set[str] = set()
        STATS["examples"] = STATS.get("examples", 0) + 1

    # --- steps ------------------------------------------------------------------------------

    @rule(
        batch=st.lists(contact(), min_size=1, max_size=8),
        lists=st.sampled_from(SUBSCRIPTIONS),
        options=import_options(),
    )
    def import_batch(self, batch: list[Contact], lists: Any, options: Options) -> None:
        body: dict[str, Any] = {"workspace_id": self.workspace, "contacts": [c.sent for c in batch]}
        if lists is not ABSENT:
            body["subscribe_to_lists"] = lists
        body.update(options.body)
        response = self.client.post("/api/contacts.import", headers=self.headers, json=body)
        self.count("imports")
        self.count("contacts_sent", len(batch))
        self.count("dry_runs", options.dry_run)
        self.count("fill_blanks", options.merge == "fill_blanks")
        assert_no_traceback(response.text)
        requested = [] if lists is ABSENT or lists is None else list(dict.fromkeys(lists))
        refusals = [*options.refusals]
        unknown = [lid for lid in requested if lid not in LISTS]
        if unknown:
            refusals.append(f"list not found: {unknown[0]}")
        if refusals:
            # Rule 2: a rejected request writes nothing (whichever of its errors answers).
            assert response.status_code == 400, response.text
            assert response.json()["error"] in refusals, (refusals, response.text)
            self.count("refused")
            return
        assert response.status_code == 200, response.text
        answer = response.json()
        operations = answer["operations"]
        assert answer["error"] is None
        assert len(operations) == len(batch)
        # The request runs against copies: a dry run leaves the model as it was.
        contacts = copy.deepcopy(self.contacts)
        memberships = dict(self.memberships)
        touched: set[str] = set()
        loose: set[str] = set()
        summary = dict.fromkeys(("created", "updated", "unchanged", "errors"), 0)
        for index, (sent, op) in enumerate(zip(batch, operations, strict=True)):
            assert op["index"] == index, op
            if sent.problems:
                self.check_error(op, sent)
                summary["errors"] += 1
                continue
            assert sent.email is not None
            new = sent.email not in contacts
            changed = self.changes(contacts, sent, options.merge)
            expected: dict[str, Any] = {
                "index": index,
                "email": sent.email,
                "action": "create" if new else "update",
                "error": None,
                "changed_fields": changed,
            }
            target = sent.list_status or options.list_status
            outcomes = []
            for list_id in requested:
                before = memberships.get((sent.email, list_id))
                after = list_status_after(before, target, double_optin=LISTS[list_id])
                outcomes.append({"list_id": list_id, "status": after, "previous_status": before})
                memberships[sent.email, list_id] = after
            if requested:
                expected["lists"] = outcomes
            elif lists == [] and "lists" in op:
                expected["lists"] = []  # an empty subscribe_to_lists: no entry
            assert op == expected, (sent.sent, options, op)
            moved = any(o["status"] != o["previous_status"] for o in outcomes)
            summary["created" if new else "updated" if changed or moved else "unchanged"] += 1
            if self.apply(contacts, sent, options.merge):
                touched.add(sent.email)
            elif moved:
                loose.add(sent.email)
        assert answer["summary"] == summary, (answer["summary"], summary)
        assert sum(summary.values()) == len(batch)
        if options.dry_run:
            assert answer["dry_run"] is True
            return
        assert "dry_run" not in answer
        self.contacts, self.memberships = contacts, memberships
        self.touched |= touched
        self.loose |= loose - touched

    @rule(
        sent=contact().filter(lambda c: isinstance(c.sent, dict)),
        merge=st.sampled_from([ABSENT, ABSENT, "overwrite", "fill_blanks"]),
    )
    def upsert(self, sent: Contact, merge: Any) -> None:
        body = {"workspace_id": self.workspace, "contact": sent.sent}
        if merge is not ABSENT:
            body["merge"] = merge
        policy = "overwrite" if merge is ABSENT else merge
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
        changed = self.changes(self.contacts, sent, policy)
        expected = {"email": sent.email, "action": action, "changed_fields": changed}
        assert response.json() == expected, (sent.sent, policy)
        if self.apply(self.contacts, sent, policy):
            self.touched.add(sent.email)

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
        self.loose.clear()

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
            assert same_value(actual, expected), (email, name, actual, expected)
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
        elif email not in self.touched and email not in self.loose:
            assert updated == stored.updated_at, email
        assert parse_time(updated) >= parse_time(created)
        stored.updated_at = updated

    # --- helpers ------------------------------------------------------------------------------

    def check_error(self, op: dict[str, Any], sent: Contact) -> None:
        assert op["action"] == "error", (sent.sent, op)
        assert op["error"].startswith(sent.problems), (sent.sent, op)
        assert op["email"] == sent.report_email, (sent.sent, op)
        assert "changed_fields" not in op and "lists" not in op, op

    @staticmethod
    def changes(contacts: dict[str, Stored], sent: Contact, merge: str) -> list[str]:
        """The changed_fields an operation must report: for a new contact the fields it
        stores non-null, for an update the fields whose value the merge changes."""
        assert sent.email is not None
        stored = contacts.get(sent.email)
        if stored is None:
            return sorted(k for k, v in sent.values.items() if v is not None)
        return sorted(
            k
            for k, v in sent.values.items()
            if not same_value(stored.values[k], merged(stored.values[k], v, k, merge))
        )

    @staticmethod
    def apply(contacts: dict[str, Stored], sent: Contact, merge: str) -> bool:
        """Rule 7 (overwrite: absent keeps, null clears, a value replaces) or fill_blanks (a
        value fills a blank field only); a new contact is created as given under either.
        True when the contact is written (created, or a value changed): a write that changes
        no value leaves the contact untouched (updated_at kept)."""
        assert sent.email is not None
        new = sent.email not in contacts
        stored = contacts.setdefault(sent.email, Stored())
        changed = False
        for name, value in sent.values.items():
            after = merged(stored.values[name], value, name, merge)
            if not same_value(stored.values[name], after):
                stored.values[name] = after
                changed = True
        return new or changed

    def count(self, name: str, amount: int | bool = 1) -> None:
        STATS[name] = STATS.get(name, 0) + int(amount)


def test_random_sequences_follow_the_rules(
    client: TestClient, engine: Engine, backend: str
) -> None:
    _run_model(client, engine, backend)


@pytest.mark.parametrize("backend", POSTGRES_SERVERS)
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
