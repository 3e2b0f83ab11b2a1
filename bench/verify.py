"""Checking what a route stored: every field of every contact, and every membership."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from audience.config import Settings
from audience.db.engine import build_engine
from audience.db.models import DATETIME_FIELDS, FIELDS, JSON_FIELDS, NUMBER_FIELDS, TEXT_FIELDS
from audience.kit.clock import as_utc
from bench.server import LISTS, SECRET_KEY, WORKSPACE
from bench.tables import Tables, schema

Expected = Mapping[str, Mapping[str, Any]]
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
#: Wrong values kept for the report (all are counted): a broken route may get every one wrong.
KEPT = 100_000


@dataclass
class Check:
    """How the stored rows differ from the expected ones."""

    stored: int = 0
    expected: int = 0
    #: Stored contacts that are expected (whatever their values).
    matched: int = 0
    unexpected: list[str] = field(default_factory=list)
    #: (email, field, stored, expected) of the values that differ (the first KEPT of them).
    wrong: list[tuple[str, str, Any, Any]] = field(default_factory=list)
    wrong_count: int = 0
    memberships: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return self.expected - self.matched

    def problems(self, what: str) -> list[str]:
        out = []
        if self.missing or self.unexpected:
            out.append(
                f"{what}: {self.stored} contacts stored, {self.expected} expected, "
                f"{self.missing} missing, {len(self.unexpected)} unexpected "
                f"(e.g. {self.unexpected[:2]})"
            )
        if self.wrong_count:
            some = "; ".join(
                f"{e} {n}: stored {s!r}, expected {x!r}" for e, n, s, x in self.wrong[:3]
            )
            out.append(f"{what}: {self.wrong_count} wrong values, e.g. {some}")
        out += [f"{what}: {m}" for m in self.memberships]
        return out


def check_stored(url: str, tables: Tables, expected: Expected, lists: bool) -> Check:
    """Compare every stored contact (and, with lists, every active membership) to `expected`."""
    engine = build_engine(Settings(database_url=url, secret_key=SECRET_KEY))
    contacts, memberships = schema(tables)
    check = Check(expected=len(expected))
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(contacts).where(contacts.c.workspace_id == WORKSPACE))
            for row in rows:
                check.stored += 1
                _compare(row._mapping, expected, check)
            pairs = conn.execute(
                select(memberships.c.email, memberships.c.list_id).where(
                    memberships.c.workspace_id == WORKSPACE, memberships.c.status == "active"
                )
            )
            stored = {(email, list_id) for email, list_id in pairs}
    finally:
        engine.dispose()
    wanted = {(email, list_id) for email in expected for list_id in LISTS} if lists else set()
    if stored != wanted:
        check.memberships.append(
            f"{len(stored)} active memberships, {len(wanted)} expected, "
            f"{len(stored - wanted)} unexpected, {len(wanted - stored)} missing"
        )
    return check


def _compare(values: Mapping[Any, Any], expected: Expected, check: Check) -> None:
    want = expected.get(values["email"])
    if want is None:
        check.unexpected.append(values["email"])
        return
    check.matched += 1
    for name in FIELDS:
        if not same(name, values[name], want[name]):
            check.wrong_count += 1
            if len(check.wrong) < KEPT:
                check.wrong.append((values["email"], name, values[name], want[name]))


def same(name: str, stored: Any, expected: Any) -> bool:
    """Equal as the database means it: date-times as instants, everything else exactly."""
    if stored is None or expected is None:
        return stored is None and expected is None
    if name in DATETIME_FIELDS:
        return bool(as_utc(stored) == as_utc(expected))
    return bool(stored == expected)


def self_test(url: str, tables: Tables, expected: Expected) -> list[str]:
    """Problems unless a wrong expectation is caught: a changed value of each kind of field,
    a contact left out, a contact that was never written."""
    left_out, changed, *_ = expected
    tampered = {email: dict(values) for email, values in expected.items() if email != left_out}
    names = [kind[0] for kind in (TEXT_FIELDS, NUMBER_FIELDS, DATETIME_FIELDS, JSON_FIELDS)]
    for name in names:
        tampered[changed][name] = _other(name, tampered[changed][name])
    tampered["never.written@example.com"] = dict.fromkeys(FIELDS)
    check = check_stored(url, tables, tampered, lists=False)
    caught = {name for email, name, _, _ in check.wrong if email == changed}
    if caught >= set(names) and left_out in check.unexpected and check.missing >= 1:
        return []
    return [f"verification self-test on {tables.contacts}: the wrong data was not all caught"]


def _other(name: str, value: Any) -> Any:
    """A value of the same kind that differs from `value`."""
    if name in DATETIME_FIELDS:
        return (value or _EPOCH) + timedelta(microseconds=1)
    if name in NUMBER_FIELDS:
        return (value or 0.0) + 0.5
    if name in JSON_FIELDS:
        return {"tampered": value}
    return f"{value or ''}~"
