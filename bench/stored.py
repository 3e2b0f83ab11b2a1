"""What a route stored, read back with the database's own driver as Python values.

No SQLAlchemy here: the check reads every row of every route, and the plain drivers are
several times faster. PostgreSQL hands back aware date-times and decoded JSON; SQLite keeps
what SQLAlchemy's types wrote (UTC wall-clock text, JSON text), decoded here.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

import msgspec
import psycopg

from audience.db.models import DATETIME_FIELDS, FIELDS, JSON_FIELDS, MembershipStatus
from audience.kit.clock import as_utc
from bench.floor import COLUMNS
from bench.tables import Tables

_DATETIME_AT = [1 + FIELDS.index(name) for name in DATETIME_FIELDS]
_JSON_AT = [1 + FIELDS.index(name) for name in JSON_FIELDS]
_SQLITE = "sqlite:///"

Rows = list[tuple[Any, ...]]


def read(url: str, tables: Tables, workspace_id: str) -> tuple[Rows, set[tuple[str, str]]]:
    """(email, *FIELDS) of every contact of the workspace, and its active (email, list_id)."""
    contacts = f"SELECT email, {COLUMNS} FROM {tables.contacts} WHERE workspace_id = {{}}"
    members = (
        f"SELECT email, list_id FROM {tables.memberships} "
        "WHERE workspace_id = {} AND status = {}"
    )
    active = (workspace_id, MembershipStatus.ACTIVE.value)
    if url.startswith(_SQLITE):
        conn = sqlite3.connect(url.removeprefix(_SQLITE))
        try:
            found = conn.execute(contacts.format("?"), (workspace_id,))
            rows = [_decoded(row) for row in found]
            pairs = set(conn.execute(members.format("?", "?"), active))
        finally:
            conn.close()
        return rows, pairs
    with psycopg.connect(url) as pg:
        rows = pg.execute(contacts.format("%s"), (workspace_id,)).fetchall()
        pairs = set(pg.execute(members.format("%s", "%s"), active).fetchall())
    return rows, pairs


def _decoded(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A SQLite row with its date-times aware and its JSON decoded."""
    values = list(row)
    for i in _DATETIME_AT:
        if values[i] is not None:
            values[i] = as_utc(datetime.fromisoformat(values[i]))
    for i in _JSON_AT:
        if values[i] is not None:
            values[i] = msgspec.json.decode(values[i])
    return tuple(values)
