"""Citus: the schema distributed by workspace (docs/scaling.md).

On a Citus coordinator every table that leads with workspace_id is distributed by it, all
co-located with `contacts` (a workspace's rows of every table live in the same shard group,
so that each statement of one workspace runs on one node); the tables without a workspace
(`workspaces` itself, `console_login_attempts`) are reference tables, copied to every node.

Citus distributes a table only when every foreign key between it and the other tables is
distributable at that moment, which a schema of local tables referencing each other never is:
the foreign keys that touch a table still to distribute are dropped, the tables distributed,
and the keys added again, in one transaction. A table that holds rows already has them copied
to its shards (and the coordinator's local copy emptied). Idempotent: a table distributed
already is left as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, text

from audience.db.models import metadata

#: The tables with no workspace_id: copied to every node.
REFERENCE_TABLES = ("workspaces", "console_login_attempts")
#: The table every distributed table is co-located with.
ANCHOR = "contacts"

Progress = Callable[[str], None]


def is_citus(conn: Connection) -> bool:
    """True on a database with the Citus extension (a coordinator)."""
    if conn.dialect.name != "postgresql":
        return False
    found = conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'citus'")).first()
    return found is not None


_ON_CITUS: WeakKeyDictionary[Engine, bool] = WeakKeyDictionary()


def on_citus(conn: Connection) -> bool:
    """is_citus, asked once per engine (a database turned into a distributed one is served
    by processes started after `audience db distribute`: docs/scaling.md)."""
    engine = conn.engine
    known = _ON_CITUS.get(engine)
    if known is None:
        known = _ON_CITUS[engine] = is_citus(conn)
    return known


def distributed_tables(conn: Connection) -> dict[str, str]:
    """Each of the project's tables that Citus knows, with its kind: "reference" or
    "distributed" (by workspace_id)."""
    rows = conn.execute(
        text(
            "SELECT logicalrelid::regclass::text, partmethod FROM pg_dist_partition"
            " WHERE logicalrelid::regclass::text = ANY(:names)"
        ),
        {"names": [t.name for t in metadata.sorted_tables]},
    )
    return {name: "reference" if method == "n" else "distributed" for name, method in rows}


def distribute(conn: Connection, progress: Progress | None = None) -> list[str]:
    """Distribute every table of the schema not distributed yet (in the caller's
    transaction); the names of the tables it distributed, in order."""
    say = progress or (lambda _line: None)
    known = distributed_tables(conn)
    pending = [t.name for t in metadata.sorted_tables if t.name not in known]
    if not pending:
        return []
    # Reference tables first, then the anchor, then the rest co-located with it.
    pending.sort(key=lambda n: (n not in REFERENCE_TABLES, n != ANCHOR))
    # Moving a large table's rows to its shards may take longer than a request may.
    conn.execute(text("SET LOCAL statement_timeout = 0"))
    keys = _foreign_keys_touching(conn, pending)
    for table, name, _ in keys:
        conn.execute(text(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"'))
    for table in pending:
        started = time.monotonic()
        rows = conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()
        if table in REFERENCE_TABLES:
            conn.execute(text("SELECT create_reference_table(:t)"), {"t": table})
        else:
            colocate = "default" if table == ANCHOR else ANCHOR
            conn.execute(
                text("SELECT create_distributed_table(:t, 'workspace_id', colocate_with => :c)"),
                {"t": table, "c": colocate},
            )
        if rows:
            conn.execute(
                text("SELECT truncate_local_data_after_distributing_table(:t)"), {"t": table}
            )
        kind = "reference table" if table in REFERENCE_TABLES else "distributed by workspace_id"
        say(f"{table}: {kind}, {rows:,} rows, {time.monotonic() - started:.1f} s")
    for table, name, definition in keys:
        conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}'))
    return pending


def _foreign_keys_touching(conn: Connection, tables: list[str]) -> list[tuple[str, str, str]]:
    """(table, constraint, definition) of every foreign key from or to one of `tables`."""
    rows = conn.execute(
        text(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
            " FROM pg_constraint WHERE contype = 'f'"
            " AND (conrelid::regclass::text = ANY(:t) OR confrelid::regclass::text = ANY(:t))"
            " ORDER BY conrelid::regclass::text, conname"
        ),
        {"t": tables},
    )
    return [(table, name, definition) for table, name, definition in rows]
