"""SQL of the import: merging a batch into the stored contacts, and its list memberships.

The one place that knows SQLite from PostgreSQL (its statements are in statements.py). On
PostgreSQL a batch reaches the server by binary COPY into a per-connection temporary table
(the default), or as binary arrays read by `unnest` (the `unnest` bulk-write mode, for
engines without temporary tables or binary COPY, such as CockroachDB); one statement then
merges it (statements.pg_upsert). On SQLite, one statement per contact, by the same rules
(statements.sqlite_upsert). What a write sends (the COPY's data, SQLite's parameters) is
made before it (`prepare`: on the import's checking thread), so that the thread that writes
only sends it.

Every write takes its row locks in one order: contacts by email (code point order), then
memberships by (email, list id).

The statements that join a batch to stored rows are never prepared (`prepare=False`):
psycopg would prepare them after a few runs, and PostgreSQL could then keep a generic plan
made while the tables were empty for as long as the connection lives. Planned afresh, they
always see the tables' current size (tests/db/test_plans.py).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import reduce
from itertools import repeat
from operator import or_
from typing import Any

import msgspec
from psycopg import Copy
from psycopg.adapt import PyFormat
from psycopg.copy import FileWriter
from sqlalchemy import Connection

from audience.contacts.schemas import ListOutcome
from audience.contacts.statements import (
    PG_ADD_MEMBERSHIPS,
    PG_MEMBERSHIPS,
    PG_SET_MEMBERSHIPS,
    PG_STAGE,
    PG_STORED_DIGESTS,
    PG_STORED_DIGESTS_AND_MEMBERSHIPS,
    PG_UNSTAGE,
    REWRITTEN,
    SQLITE_ADD_MEMBERSHIP,
    SQLITE_MEMBERSHIPS,
    SQLITE_SET_MEMBERSHIP,
    SQLITE_STORED_DIGESTS,
    pg_copy,
    pg_copy_types,
    pg_upsert,
    sqlite_insert,
    sqlite_stored,
    sqlite_timestamp,
    sqlite_upsert,
)
from audience.contacts.validation import ContactBatch
from audience.db.engine import BULK_WRITE
from audience.db.errors import translated
from audience.db.models import DATETIME_FIELDS, FIELDS, JSON_FIELDS
from audience.db.session import driver_connection
from audience.errors import RetryableDatabaseError

_DATETIMES = frozenset(FIELDS.index(n) for n in DATETIME_FIELDS)
_JSONS = frozenset(FIELDS.index(n) for n in JSON_FIELDS)


#: A field's bit in a mask is its place in FIELDS; in the *sorted* mask below, its place in
#: the names sorted. Each 11-bit slice of a mask maps, for every value of the slice, to its
#: bits in the sorted mask (_SORTED_BITS) and each slice of that to its names (_NAMES): the
#: names of a mask are then three lookups joined, already in order, without a sort.
_ORDER = sorted(range(len(FIELDS)), key=FIELDS.__getitem__)
_SLICE_STARTS = (0, 11, 22)
_SORTED_BITS = [
    [
        sum(1 << _ORDER.index(k) for k in range(start, start + 11) if value >> (k - start) & 1)
        for value in range(2048)
    ]
    for start in _SLICE_STARTS
]
_NAMES = [
    [
        tuple(
            FIELDS[_ORDER[j]]
            for j in range(start, min(start + 11, len(FIELDS)))
            if value >> (j - start) & 1
        )
        for value in range(2048)
    ]
    for start in _SLICE_STARTS
]
assert len(FIELDS) <= 33


def field_names(mask: int) -> tuple[str, ...]:
    """The sorted names of the fields whose bits are set."""
    low, middle, high = _SORTED_BITS
    bits = low[mask & 2047] | middle[mask >> 11 & 2047] | high[mask >> 22 & 2047]
    first, second, third = _NAMES
    return first[bits & 2047] + second[bits >> 11 & 2047] + third[bits >> 22 & 2047]


class Applied(msgspec.Struct, gc=False):
    """Per row of a batch: whether it was created, and the mask of the fields it changed
    (for a created row: the fields stored non-null)."""

    created: list[bool]
    changed: list[int]


@dataclass(slots=True)
class Prepared:
    """A batch as its write needs it, made without the connection (BulkWriter.prepare)."""

    batch: ContactBatch
    #: The indexes of the fields some contact of the batch gives (a value or a null).
    given: tuple[int, ...]
    #: PostgreSQL, COPY mode: the COPY's data (binary format) of the batch's rows.
    rows: bytes | None = None
    #: SQLite: the parameters of statements.sqlite_upsert, per row.
    params: list[tuple[Any, ...]] | None = None


class BulkWriter:
    """The import's writes into one workspace, in the caller's transaction."""

    def __init__(self, conn: Connection, workspace_id: str) -> None:
        self.conn = conn
        self.workspace_id = workspace_id
        self.is_sqlite = conn.dialect.name == "sqlite"
        #: The transaction in which the stage was last filled (it exists there).
        self._staged_in: object | None = None
        self._dumper: Any = None

    def prepare(self, batch: ContactBatch, now: datetime) -> Prepared:
        """What `apply` needs of the batch before the database: safe on any thread, as it
        touches no connection (the import prepares a part while the previous one is written)."""
        bits = reduce(or_, batch.nulls, 0)
        given = tuple(
            k
            for k, column in enumerate(batch.columns)
            if bits >> k & 1 or column.count(None) != len(column)
        )
        if self.is_sqlite:
            return Prepared(batch, given, params=self._sqlite_params(batch, given, now))
        if self._staged_mode():
            return Prepared(batch, given, self._copy_rows(batch, given))
        return Prepared(batch, given)

    def _copy_rows(self, batch: ContactBatch, given: tuple[int, ...]) -> bytes:
        """The batch's rows as the data of the COPY statements.pg_copy makes for these
        fields, in binary format, made by psycopg's own COPY (its rows formatted in C) into
        a buffer, on a cursor of its own that only lends its types (nothing is sent)."""
        if self._dumper is None:
            cursor = driver_connection(self.conn).cursor()
            # By its oid, bytea's binary dumper is dbapi20's (for Binary(), in Python: a call
            # per value); that of bytes (in C) takes the JSON values' buffers as they are.
            bytes_dumper = cursor.adapters.get_dumper(bytes, PyFormat.BINARY)
            cursor.adapters.register_dumper(bytes, bytes_dumper)
            self._dumper = cursor
        buffer = io.BytesIO()
        names = tuple(FIELDS[k] for k in given)
        columns = [batch.columns[k] for k in given]
        with Copy(self._dumper, binary=True, writer=FileWriter(buffer)) as copy:
            copy.set_types(pg_copy_types(names))
            for row in zip(batch.emails, *columns, batch.nulls, batch.digests, strict=True):
                copy.write_row(row)
        return buffer.getvalue()

    def apply(
        self,
        batch: ContactBatch | Prepared,
        *,
        merge: str,
        now: datetime,
        skip_unchanged: bool = False,
    ) -> Applied:
        """Merge the batch into the stored contacts; rows that change nothing are not written
        (with `skip_unchanged`, on PostgreSQL, not even locked: see statements.pg_upsert)."""
        prepared = batch if isinstance(batch, Prepared) else self.prepare(batch, now)
        if not prepared.batch:
            return Applied([], [])
        with translated():
            if self.is_sqlite:
                return self._apply_sqlite(prepared, merge)
            return self._apply_postgres(prepared, merge, now, skip_unchanged)

    def _staged_mode(self) -> bool:
        mode: str = self.conn.get_execution_options().get(BULK_WRITE, "copy")
        return mode != "unnest"

    # --- PostgreSQL ------------------------------------------------------------------------------

    def _apply_postgres(self, prepared: Prepared, merge: str, now: datetime, skip: bool) -> Applied:
        """The batch in one statement (statements.pg_upsert), carrying only the fields that
        some contact of the batch gives (a value or a null)."""
        batch, given = prepared.batch, prepared.given
        names = tuple(FIELDS[k] for k in given)
        params: dict[str, Any] = {"ws": self.workspace_id, "now": now}
        staged = prepared.rows is not None
        with driver_connection(self.conn).cursor() as cursor:
            if staged:
                assert prepared.rows is not None
                self._stage(cursor, prepared.rows, names)
            else:
                params |= {"email": batch.emails, "nulls": batch.nulls, "digest": batch.digests}
                params |= {FIELDS[k]: _unnest_column(batch, k) for k in given}
            upsert = pg_upsert(names, merge, staged=staged, skip_unchanged=skip)
            written = dict(cursor.execute(upsert, params, prepare=False).fetchall())
        return _applied(batch.emails, written)

    def _stage(self, cursor: Any, rows: bytes, names: tuple[str, ...]) -> None:
        transaction = self.conn.get_transaction()
        if transaction is not None and transaction is self._staged_in:
            cursor.execute(PG_UNSTAGE)  # a later part or round of the same transaction
        else:  # the stage may be new to this connection, or gone with a rollback
            cursor.execute(PG_STAGE)
        self._staged_in = transaction
        with cursor.copy(pg_copy(names)) as copy:
            copy.write(rows)

    # --- SQLite -----------------------------------------------------------------------------------

    def _sqlite_params(
        self, batch: ContactBatch, given: tuple[int, ...], now: datetime
    ) -> list[tuple[Any, ...]]:
        """Per row, the parameters of statements.sqlite_upsert for these fields: date-times
        and JSON as the text SQLite stores."""
        columns = [_sqlite_column(batch, k) for k in given]
        stamp = sqlite_timestamp(now)
        return list(
            zip(
                repeat(self.workspace_id),
                batch.emails,
                *columns,
                batch.nulls,
                batch.digests,
                repeat(stamp),
                repeat(stamp),
                strict=False,  # repeat() is endless
            )
        )

    def _apply_sqlite(self, prepared: Prepared, merge: str) -> Applied:
        """A batch of new contacts in one executemany INSERT; otherwise one upsert per contact,
        in email order (statements.sqlite_upsert), each answering its row. The transaction
        holds SQLite's one write lock (BEGIN IMMEDIATE): what is read below is what the
        writes find."""
        assert prepared.params is not None
        batch, given, params = prepared.batch, prepared.given, prepared.params
        names = tuple(FIELDS[k] for k in given)
        cursor = driver_connection(self.conn).cursor()
        jsons = [(2 + j, k) for j, k in enumerate(given) if k in _JSONS]
        stored = {
            row[0]: row[1:]
            for row in cursor.execute(
                sqlite_stored(tuple(FIELDS[k] for _, k in jsons)),
                (self.workspace_id, _json(batch.emails)),
            )
        }
        # A new row stores what is given: it changes each given field that has a value.
        new = [0] * len(batch)
        for k in given:
            bit = 1 << k
            new = [m if v is None else m | bit for m, v in zip(new, batch.columns[k], strict=True)]
        if not stored:
            cursor.executemany(sqlite_insert(names), params)
            return Applied([True] * len(batch), new)
        if jsons:
            params = _same_json_dropped(params, jsons, stored)
        upsert = sqlite_upsert(names, merge)
        execute = cursor.execute
        created: list[bool] = []
        changed: list[int] = []
        for row, mask in zip(params, new, strict=True):
            answer = execute(upsert, row).fetchone()
            if answer is None:  # a stored row left as it was
                created.append(False)
                changed.append(0)
            elif answer[0] >= REWRITTEN:
                created.append(False)
                changed.append(answer[0] - REWRITTEN)
            else:
                created.append(True)
                changed.append(mask)
        return Applied(created, changed)

    # --- contacts known by their input ---------------------------------------------------------

    def stored_digests(
        self, emails: Sequence[str], digests: Sequence[str | None]
    ) -> dict[str, bool]:
        """Of these emails, those stored, each with whether its contact was last written by
        an import of the input with this digest (validation.input_digest): importing that
        input again changes nothing. Read without a lock (see statements.pg_upsert,
        skip_unchanged)."""
        if not emails:
            return {}
        with translated():
            driver = driver_connection(self.conn)
            if self.is_sqlite:
                pairs = _json([[e, d] for e, d in zip(emails, digests, strict=True)])
                rows = driver.cursor().execute(SQLITE_STORED_DIGESTS, (pairs, self.workspace_id))
                return {email: bool(same) for email, same in rows}
            params = {"ws": self.workspace_id, "emails": emails, "digests": digests}
            with driver.cursor() as cursor:
                rows = cursor.execute(PG_STORED_DIGESTS, params, prepare=False)
                return {email: bool(same) for email, same in rows}

    def stored_memberships(
        self, emails: Sequence[str], digests: Sequence[str | None], list_ids: Sequence[str]
    ) -> tuple[dict[str, bool], dict[str, dict[str, str]]]:
        """What stored_digests tells, and the memberships of the lists (list id -> status)
        of each contact whose digest is the same, read in the same snapshot as its digest.
        Read without a lock (see statements.pg_upsert, skip_unchanged)."""
        if not emails:
            return {}, {}
        with translated():
            driver = driver_connection(self.conn)
            if self.is_sqlite:  # the transaction holds SQLite's write lock: one snapshot
                same = self.stored_digests(emails, digests)
                known: dict[str, dict[str, str]] = {e: {} for e, yes in same.items() if yes}
                args = (self.workspace_id, _json(list(list_ids)), _json(list(known)))
                for email, list_id, status in driver.cursor().execute(SQLITE_MEMBERSHIPS, args):
                    known[email][list_id] = status
                return same, known
            params = {
                "ws": self.workspace_id,
                "emails": emails,
                "digests": digests,
                "lists": list(list_ids),
            }
            same, known = {}, {}
            with driver.cursor() as cursor:
                rows = cursor.execute(PG_STORED_DIGESTS_AND_MEMBERSHIPS, params, prepare=False)
                for email, yes, list_id, status in rows:
                    same[email] = bool(yes)
                    if yes:
                        of_contact = known.setdefault(email, {})
                        if list_id is not None:
                            of_contact[list_id] = status
            return same, known

    # --- memberships ------------------------------------------------------------------------------

    def subscribe(
        self,
        emails: Sequence[str],
        targets: Sequence[str],
        lists: Mapping[str, bool],
        now: datetime,
    ) -> list[list[ListOutcome]]:
        """Apply `targets[i]` (a list_status) to emails[i]'s membership of every list (by the
        rules of list_status_after); per email, one outcome per list, in the lists' order."""
        list_ids = list(lists)
        with translated():
            previous = self._memberships(emails, list_ids)
            outcomes: list[list[ListOutcome]] = []
            added: list[tuple[str, str, str]] = []
            changed: list[tuple[str, str, str]] = []
            for email, target in zip(emails, targets, strict=True):
                row: list[ListOutcome] = []
                for list_id in list_ids:
                    before = previous.get((email, list_id))
                    after = list_status_after(before, target, double_optin=lists[list_id])
                    row.append(ListOutcome(list_id, after, before))
                    if before is None:
                        added.append((email, list_id, after))
                    elif after != before:
                        changed.append((email, list_id, after))
                outcomes.append(row)
            self._write_memberships(added, changed, now)
        return outcomes

    def _memberships(
        self, emails: Sequence[str], list_ids: list[str]
    ) -> dict[tuple[str, str], str]:
        """The memberships as they are, locked (email, list) order."""
        driver = driver_connection(self.conn)
        if self.is_sqlite:
            args = (self.workspace_id, _json(list_ids), _json(emails))
            rows = driver.cursor().execute(SQLITE_MEMBERSHIPS, args)
        else:
            ordered = sorted(list_ids)  # code point order: that of COLLATE "C"
            params = {
                "ws": self.workspace_id,
                "emails": [email for email in emails for _ in ordered],
                "lists": ordered * len(emails),
            }
            with driver.cursor() as cursor:
                rows = cursor.execute(PG_MEMBERSHIPS, params, prepare=False).fetchall()
        return {(email, list_id): status for email, list_id, status in rows}

    def _write_memberships(
        self, added: list[tuple[str, str, str]], changed: list[tuple[str, str, str]], now: datetime
    ) -> None:
        driver = driver_connection(self.conn)
        if self.is_sqlite:
            stamp = sqlite_timestamp(now)
            cursor = driver.cursor()
            ws = self.workspace_id
            cursor.executemany(
                SQLITE_ADD_MEMBERSHIP, ((ws, e, lid, s, stamp, stamp) for e, lid, s in added)
            )
            cursor.executemany(
                SQLITE_SET_MEMBERSHIP, ((s, stamp, ws, e, lid) for e, lid, s in changed)
            )
            return
        with driver.cursor() as cursor:
            if added:
                (count,) = cursor.execute(PG_ADD_MEMBERSHIPS, self._columns(added, now)).fetchone()
                if count != len(added):
                    raise RetryableDatabaseError()  # a concurrent import added one first
            if changed:
                cursor.execute(PG_SET_MEMBERSHIPS, self._columns(changed, now))

    def _columns(self, rows: list[tuple[str, str, str]], now: datetime) -> dict[str, Any]:
        emails, list_ids, statuses = (list(column) for column in zip(*rows, strict=True))
        return {
            "ws": self.workspace_id,
            "now": now,
            "emails": emails,
            "lists": list_ids,
            "statuses": statuses,
        }


def list_status_after(before: str | None, target: str, *, double_optin: bool) -> str:
    """A membership's status after an import (docs/import.md, Lists): `subscribed` adds a
    new membership (active, or pending on a double opt-in list) and changes none; `active`
    also confirms a pending one; `unsubscribed` records an opt-out of a new, active or
    pending one. An unsubscribed, bounced or complained membership never changes."""
    if before is None:
        if target == "subscribed":
            return "pending" if double_optin else "active"
        return target
    if target == "active" and before == "pending":
        return "active"
    if target == "unsubscribed" and before in ("active", "pending"):
        return "unsubscribed"
    return before


def _applied(emails: list[str], written: Mapping[str, int]) -> Applied:
    """What an upsert answered (email -> mask, see statements.pg_upsert) per row of the
    batch; a stored row not answered changed nothing."""
    created: list[bool] = []
    changed: list[int] = []
    for email in emails:
        mask = written.get(email, REWRITTEN)
        created.append(mask < REWRITTEN)
        changed.append(mask - REWRITTEN if mask >= REWRITTEN else mask)
    return Applied(created, changed)


def _same_json_dropped(
    params: list[tuple[Any, ...]],
    jsons: list[tuple[int, int]],
    stored: Mapping[str, tuple[Any, ...]],
) -> list[tuple[Any, ...]]:
    """The parameters without the JSON values (at params[i][at] for each (at, field) of
    `jsons`) that hold what the stored row holds (its JSON fields, by email) in other
    text: keys in another order, 1.0 for 1, ... Absent, they keep it, and the upsert can
    compare JSON as text."""
    dropped = params
    for i, row in enumerate(params):
        old = stored.get(row[1])
        if old is None:
            continue
        same = [
            at
            for (at, _), text in zip(jsons, old, strict=True)
            if row[at] is not None
            and text is not None
            and row[at] != text
            and json_equal(_exact(row[at]), _exact(text))
        ]
        if same:
            dropped = list(dropped) if dropped is params else dropped
            dropped[i] = tuple(None if at in same else v for at, v in enumerate(row))
    return dropped


def _exact(text: str) -> Any:
    """A JSON text decoded with its numbers exact (Decimal), as jsonb holds them: 1e20 and
    100000000000000000000.0 are equal, 0.1 and 0.10000000000000001 are not."""
    return _EXACT.decode(text)


_EXACT: msgspec.json.Decoder[Any] = msgspec.json.Decoder(float_hook=Decimal)


def json_equal(a: Any, b: Any) -> bool:
    """Equality of decoded JSON values that tells booleans from numbers (as jsonb compares
    them: objects in any key order, 1 and 1.0 alike, but true is not 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return (
            isinstance(b, dict) and a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
        )
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(json_equal, a, b))
    if isinstance(a, int | float | Decimal) and isinstance(b, int | float | Decimal):
        return a == b
    return type(a) is type(b) and a == b


def _sqlite_column(batch: ContactBatch, k: int) -> list[Any]:
    """Field k of the batch as SQLite stores it: date-times and JSON as their text."""
    column = batch.columns[k]
    if k in _DATETIMES:
        return [v if v is None else sqlite_timestamp(v) for v in column]
    if k in _JSONS:
        return [v if v is None else str(v, "utf-8") for v in column]
    return column


def _unnest_column(batch: ContactBatch, k: int) -> list[Any]:
    """Field k of the batch as a parameter of the unnest mode: JSON as bytes objects (psycopg
    sends a list of them as bytea[]; what validation keeps may be msgspec.Raw)."""
    column = batch.columns[k]
    if k in _JSONS:
        return [v if v is None else bytes(v) for v in column]
    return column


def _json(values: Sequence[Any]) -> str:
    return msgspec.json.encode(list(values)).decode()
