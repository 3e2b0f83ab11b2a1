"""No plan cliffs: every statement that joins an import's batch to stored rows looks them up
by an index, and by primary key once the table holds rows: on an empty table, on one never
analysed, and on a 1M-row workspace before and after its statistics are refreshed
(db/statistics.py) — on both databases.

On an empty PostgreSQL table every plan costs the same, and the planner may take the index
on (workspace_id, list_id, status) for the memberships: harmless there, and never carried
over to a grown table, as the import's statements are never prepared (contacts/bulk.py)
and so are planned again on every run (test_the_import_never_prepares_its_statements).

Each test has a database of its own, with autovacuum off on PostgreSQL: what the planner
knows is only what the test did.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from audience.config import Settings
from audience.contacts import statements
from audience.db import statistics
from audience.db.engine import build_engine
from audience.db.migrate import upgrade
from audience.db.models import JSON_FIELDS
from audience.db.session import driver_connection
from tests.conftest import SERVER_BACKENDS

# Citus plans are distributed plans, checked by tests/db/test_citus.py.
pytestmark = pytest.mark.parametrize("backend", SERVER_BACKENDS)

WS = "plans"
BATCH = 2_000
STORED = 1_000_000
GROWN = 20_000
LISTS = ["news", "offers"]


@pytest.fixture
def engine(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated database of this test's own (PostgreSQL: autovacuum off on its tables)."""
    if backend == "sqlite":
        path = tmp_path / "plans.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        engine = build_engine(Settings(database_url=f"sqlite:///{path}"))
        yield engine
        engine.dispose()
        return
    base = request.getfixturevalue("postgres_url")
    name = f"audience_plans_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"
    admin = create_engine(make_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    engine = build_engine(Settings(database_url=url))
    upgrade(engine)
    with engine.begin() as conn:
        for table in ("contacts", "contact_lists"):
            conn.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _seed(engine: Engine, rows: int) -> None:
    """`rows` contacts in the workspace, each in the first list (and a workspace beside it)."""
    with engine.begin() as conn:
        for ws in (WS, "other"):
            conn.execute(
                text("INSERT INTO workspaces (id, name, created_at) VALUES (:id, :id, :now)"),
                {"id": ws, "now": "2026-01-01 00:00:00"},
            )
        for list_id in LISTS:
            conn.execute(
                text(
                    "INSERT INTO lists (workspace_id, id, name, is_double_optin, is_public, "
                    "created_at, updated_at) VALUES (:ws, :id, :id, false, false, :now, :now)"
                ),
                {"ws": WS, "id": list_id, "now": "2026-01-01 00:00:00"},
            )
    _grow(engine, rows)


# --- PostgreSQL: EXPLAIN (FORMAT JSON) of the statements as the import sends them ------------


def _pg_plans(engine: Engine) -> dict[str, list[tuple[str, str, str, str]]]:
    """(node type, relation) of every node that reads a stored table, per statement."""
    emails = [f"c{i}@example.com" for i in range(1, BATCH + 1)]
    params: dict[str, Any] = {"ws": WS, "now": datetime(2026, 6, 1, tzinfo=UTC)}
    plans: dict[str, list[tuple[str, str, str, str]]] = {}
    with engine.connect() as conn:
        cursor = driver_connection(conn).cursor()
        cursor.execute(statements.PG_STAGE)
        cursor.execute(
            "INSERT INTO import_stage (email, first_name, nulls) "
            "SELECT e, 'Bo', 0 FROM unnest(%(e)s::text[]) AS e",
            {"e": emails},
        )
        # The upsert's only read of a stored table is that of skip_unchanged (its ON CONFLICT
        # arbiter is always the primary key).
        given = ("first_name",)
        for merge in ("overwrite", "fill_blanks"):
            upsert = statements.pg_upsert(given, merge, staged=True, skip_unchanged=True)
            cursor.execute("EXPLAIN (FORMAT JSON) " + upsert, params)
            plans[f"upsert staged {merge}"] = _reads(cursor.fetchone()[0])
        arrays = {"first_name": ["Bo"] * BATCH, "email": emails, "nulls": [0] * BATCH}
        arrays["digest"] = [None] * BATCH
        upsert = statements.pg_upsert(given, "overwrite", staged=False, skip_unchanged=True)
        cursor.execute("EXPLAIN (FORMAT JSON) " + upsert, params | arrays)
        plans["upsert arrays"] = _reads(cursor.fetchone()[0])
        known = {"ws": WS, "emails": emails, "digests": ["0" * 32] * BATCH}
        cursor.execute("EXPLAIN (FORMAT JSON) " + statements.PG_STORED_DIGESTS, known)
        plans["stored digests"] = _reads(cursor.fetchone()[0])
        known["lists"] = LISTS
        cursor.execute(
            "EXPLAIN (FORMAT JSON) " + statements.PG_STORED_DIGESTS_AND_MEMBERSHIPS, known
        )
        plans["stored digests and memberships"] = _reads(cursor.fetchone()[0])
        cursor.execute(
            "EXPLAIN (FORMAT JSON) " + statements.PG_MEMBERSHIPS,
            {"ws": WS, "emails": [e for e in emails for _ in LISTS], "lists": LISTS * BATCH},
        )
        plans["memberships"] = _reads(cursor.fetchone()[0])
        conn.rollback()
    return plans


def _reads(document: Any) -> list[tuple[str, str, str, str]]:
    """(node type, relation, index, index condition) of every node that reads contacts or
    contact_lists (a bitmap heap scan with the index and condition of the bitmap index scan
    under it)."""
    plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
    found: list[tuple[str, str, str, str]] = []

    def walk(node: dict[str, Any]) -> None:
        relation = node.get("Relation Name")
        if relation in ("contacts", "contact_lists") and node["Node Type"] != "ModifyTable":
            children = node.get("Plans", [])
            index = node.get("Index Name") or ",".join(c.get("Index Name", "") for c in children)
            cond = node.get("Index Cond") or ",".join(c.get("Index Cond", "") for c in children)
            found.append((node["Node Type"], relation, index, cond))
        for child in node.get("Plans", []):
            walk(child)

    walk(plan)
    return found


def _assert_by_primary_key(
    plans: dict[str, list[tuple[str, str, str, str]]], *, empty: bool = False
) -> None:
    """Every read of a stored table is an index probe of one contact's key by the primary
    key: its email in the index condition (an index scan on the workspace alone would read
    every contact of the workspace; one on (workspace, list) every member of the list). A
    membership's list is then a filter of the contact's few (statements._MEMBERSHIP_OF)."""
    for statement, reads in plans.items():
        assert reads, f"{statement}: reads no stored table?"
        for node_type, relation, index, cond in reads:
            assert node_type in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan"), (
                statement,
                node_type,
                relation,
            )
            if not (empty and relation == "contact_lists"):
                assert index == f"pk_{relation}", (statement, node_type, relation, index)
                assert re.search(r"\bemail\)?(::\w+)? = ", cond), (statement, cond)


# --- SQLite: EXPLAIN QUERY PLAN -------------------------------------------------------------


def _sqlite_plans(engine: Engine) -> dict[str, list[str]]:
    emails = json.dumps([f"c{i}@example.com" for i in range(1, BATCH + 1)])
    queries = {
        "stored": (statements.sqlite_stored(JSON_FIELDS), (WS, emails)),
        "stored digests": (
            statements.SQLITE_STORED_DIGESTS,
            (json.dumps([[e, "0" * 32] for e in json.loads(emails)]), WS),
        ),
        "memberships": (statements.SQLITE_MEMBERSHIPS, (WS, json.dumps(LISTS), emails)),
        "set membership": (
            statements.SQLITE_SET_MEMBERSHIP,
            ("active", "2026-06-01", WS, "c1@example.com", "news"),
        ),
    }
    plans: dict[str, list[str]] = {}
    with engine.connect() as conn:
        cursor = driver_connection(conn).cursor()
        for name, (sql, args) in queries.items():
            cursor.execute("EXPLAIN QUERY PLAN " + sql, args)
            plans[name] = [
                row[3]
                for row in cursor.fetchall()
                if " contacts" in row[3] or "contact_lists" in row[3]
            ]
        conn.rollback()
    return plans


def _assert_sqlite_by_primary_key(plans: dict[str, list[str]]) -> None:
    for statement, details in plans.items():
        assert details, f"{statement}: reads no stored table?"
        for detail in details:
            assert detail.startswith("SEARCH"), (statement, detail)
            assert "INDEX" in detail or "PRIMARY KEY" in detail, (statement, detail)


def _assert_plans(engine: Engine, *, empty: bool = False) -> None:
    if engine.dialect.name == "postgresql":
        _assert_by_primary_key(_pg_plans(engine), empty=empty)
    else:
        _assert_sqlite_by_primary_key(_sqlite_plans(engine))


# --- the cases ------------------------------------------------------------------------------


def test_an_empty_never_analysed_table_is_read_by_an_index(engine: Engine) -> None:
    _seed(engine, 0)
    _assert_plans(engine, empty=True)


def test_a_million_row_workspace_is_read_by_primary_key_before_and_after_analysis(
    engine: Engine,
) -> None:
    _seed(engine, STORED)
    _assert_plans(engine)  # never analysed: the planner knows only the table's size
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    _assert_plans(engine)


def test_a_workspace_one_import_grew_is_read_by_primary_key_before_its_analysis(
    engine: Engine,
) -> None:
    """The first seconds after an import of 10k contacts with lists, before the statistics
    keeper's check: with the row estimates of a never-analysed table, every index on the
    workspace looks as cheap as the primary key, and a probe by the other index of the
    memberships (workspace, list, status) would read every member of the list."""
    _seed(engine, GROWN)
    _assert_plans(engine)


def test_statistics_taken_when_empty_do_not_mislead_after_a_large_import(engine: Engine) -> None:
    """Analysed while empty, then grown to 1M rows in one go: still by primary key, and the
    statistics keeper analyses the grown tables once (and not again without growth)."""
    _seed(engine, 0)
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    _grow(engine, STORED)
    _assert_plans(engine)
    if engine.dialect.name != "postgresql":
        assert statistics.refresh(engine) == []  # SQLite's planner keeps no row counts
        return
    assert _pg_stat(engine, "n_mod_since_analyze") >= STORED  # the counters have caught up
    assert statistics.refresh(engine) == ["contact_lists", "contacts"]
    assert _reltuples(engine) == pytest.approx(STORED, rel=0.05)
    assert statistics.refresh(engine) == []
    _assert_plans(engine)


def _grow(engine: Engine, rows: int) -> None:
    """`rows` more contacts in the workspace (none if 0), each in the first list."""
    if not rows:
        return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # no foreign-key check per membership row
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        series = (
            "generate_series(1, :n) AS g(i)"
            if engine.dialect.name == "postgresql"
            else "(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n) "
            "SELECT i FROM s) AS g"
        )
        email = "'c' || g.i || '@example.com'"
        conn.execute(
            text(
                "INSERT INTO contacts (workspace_id, email, first_name, created_at, updated_at) "
                f"SELECT :ws, {email}, 'Ann', :now, :now FROM {series}"
            ),
            {"ws": WS, "n": rows, "now": "2026-01-01 00:00:00"},
        )
        conn.execute(  # every contact in the first list (a list of the whole workspace)
            text(
                "INSERT INTO contact_lists (workspace_id, email, list_id, status, "
                f"created_at, updated_at) SELECT :ws, {email}, :list, 'active', :now, :now "
                f"FROM {series}"
            ),
            {"ws": WS, "n": rows, "list": LISTS[0], "now": "2026-01-01 00:00:00"},
        )


def _pg_stat(engine: Engine, column: str) -> int:
    """The smallest value of a pg_stat_user_tables counter over the two tables, once the
    cumulative statistics have been flushed (they are, at the latest, within a second)."""
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_force_next_flush()"))
        conn.commit()
    with engine.connect() as conn:
        value = conn.execute(
            text(
                f"SELECT min({column}) FROM pg_stat_user_tables "
                "WHERE relname IN ('contacts', 'contact_lists')"
            )
        ).scalar_one()
    return int(value)


def _reltuples(engine: Engine) -> float:
    with engine.connect() as conn:
        return float(
            conn.execute(
                text("SELECT reltuples FROM pg_class WHERE relname = 'contacts'")
            ).scalar_one()
        )


def test_the_import_never_prepares_its_statements(engine: Engine) -> None:
    """Ten imports on one connection (psycopg prepares a statement at its fifth run): not
    one of the statements that read stored rows is prepared."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server-side prepared statements")
    _seed(engine, 0)
    from audience.contacts.bulk import BulkWriter
    from audience.contacts.validation import validate_batch

    with engine.connect() as conn:
        for round_ in range(10):
            contacts = [
                msgspec.json.encode({"email": f"p{round_}-{i}@example.com"}) for i in range(3)
            ]
            (batch,) = validate_batch(contacts).rounds
            writer = BulkWriter(conn, WS)
            writer.apply(batch, merge="overwrite", now=datetime(2026, 6, 1, tzinfo=UTC))
            writer.subscribe(batch.emails, ["active"] * 3, {"news": False}, datetime.now(UTC))
        prepared = conn.execute(text("SELECT statement FROM pg_prepared_statements")).scalars()
        reading = [sql for sql in prepared if "FROM contacts" in sql or "FROM contact_lists" in sql]
        conn.rollback()
    assert reading == []
