"""Checking what a route stored: every field of every contact, and every membership."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from audience.db.models import DATETIME_FIELDS, FIELDS, JSON_FIELDS, NUMBER_FIELDS, TEXT_FIELDS
from bench import stored
from bench.server import LISTS, WORKSPACE
from bench.tables import Tables

Expected = Mapping[str, Mapping[str, Any]]
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
#: Wrong values kept for the report (all are counted): a broken route may get every one wrong.
KEPT = 100_000
_JSON_AT = [1 + FIELDS.index(name) for name in JSON_FIELDS]


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
    rows, pairs = stored.read(url, tables, WORKSPACE)
    check = Check(stored=len(rows), expected=len(expected))
    wanted = {email: _canonical([email, *(v[n] for n in FIELDS)]) for email, v in expected.items()}
    for row in rows:
        _compare(_canonical(list(row)), wanted, check)
    members = {(email, list_id) for email in expected for list_id in LISTS} if lists else set()
    if pairs != members:
        check.memberships.append(
            f"{len(pairs)} active memberships, {len(members)} expected, "
            f"{len(pairs - members)} unexpected, {len(members - pairs)} missing"
        )
    return check


def _canonical(row: list[Any]) -> list[Any]:
    """(email, *FIELDS) with JSON values as sorted compact JSON, so that `true` is not `1`
    nor `1` `1.0`; aware date-times compare as instants as they are."""
    for i in _JSON_AT:
        if row[i] is not None:
            row[i] = msgspec.json.encode(_no_negative_zero(row[i]), order="sorted")
    return row


def _no_negative_zero(value: Any) -> Any:
    """The value with -0.0 as 0.0: jsonb holds numbers as numeric, which has no negative
    zero (every route stores -0.0 as 0.0 on PostgreSQL; SQLite keeps the text as sent)."""
    if value.__class__ is float:
        return 0.0 if value == 0 else value
    if value.__class__ is dict:
        return {k: _no_negative_zero(v) for k, v in value.items()}
    if value.__class__ is list:
        return [_no_negative_zero(v) for v in value]
    return value


def _compare(row: list[Any], wanted: Mapping[str, list[Any]], check: Check) -> None:
    want = wanted.get(row[0])
    if want is None:
        check.unexpected.append(row[0])
        return
    check.matched += 1
    if row == want:
        return
    for i, name in enumerate(FIELDS, start=1):
        if row[i] != want[i]:
            check.wrong_count += 1
            if len(check.wrong) < KEPT:
                check.wrong.append((row[0], name, _shown(row[i]), _shown(want[i])))


def _shown(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


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
