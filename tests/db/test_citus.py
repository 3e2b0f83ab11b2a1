"""Citus (docs/scaling.md): the schema distributes itself, an existing database is turned into
a distributed one by `audience db distribute`, and every statement of one workspace runs on
the one node that holds the workspace, checked on Citus's own plans (EXPLAIN).

The statements are those the application really sends: every one executed while a tenant
goes through the API, the console and an import job is captured and explained, and a plan
that reaches more than one shard fails the test unless it is one of the few statements that
are cross-workspace by nature (named below, each with its reason).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from audience.app import create_app
from audience.cli import app as cli
from audience.config import Settings
from audience.contacts import statements
from audience.db.distribute import REFERENCE_TABLES, distributed_tables
from audience.db.engine import build_engine
from audience.db.migrate import upgrade
from audience.db.models import contacts, metadata
from audience.db.session import driver_connection
from tests.conftest import (
    SECRET,
    Tenant,
    create_citus_database,
    drop_citus_database,
    make_key,
    register_nodes,
)
from tests.conftest import make_workspace as make_tenant_workspace
from tests.console.support import sign_in
from tests.import_jobs.support import Jobs, csv_bytes

pytestmark = pytest.mark.parametrize("backend", ["citus"])

#: Statements that read or write more than one workspace's shards, and why that is right.
CROSS_WORKSPACE = {
    # The import workers' queue is every workspace's: they look for a job to take, or an
    # expired lease to take over, across all of them; the job is then claimed by its key.
    r"FROM import_jobs\s+WHERE \(?import_jobs\.status": "the job queue (import workers)",
}


def test_the_schema_is_distributed_by_workspace_and_co_located(engine: Engine) -> None:
    with engine.connect() as conn:
        kinds = distributed_tables(conn)
        rows = conn.execute(
            text("SELECT table_name::text, distribution_column, colocation_id FROM citus_tables")
        ).all()
    assert kinds == {
        t.name: "reference" if t.name in REFERENCE_TABLES else "distributed"
        for t in metadata.sorted_tables
    }
    distributed = [r for r in rows if r[0] not in REFERENCE_TABLES]
    assert {r[1] for r in distributed} == {"workspace_id"}
    assert len({r[2] for r in distributed}) == 1, rows  # one co-location group


def test_db_upgrade_on_a_fresh_coordinator_distributes_with_a_line_per_table(
    backend: str, citus_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"audience_upgrade_{threading.get_ident() % 10**6}"
    url = create_citus_database(name)
    try:
        monkeypatch.setenv("AUDIENCE_DATABASE_URL", url)
        monkeypatch.setenv("AUDIENCE_SECRET_KEY", SECRET)
        done = CliRunner().invoke(cli, ["db", "upgrade"])
        assert done.exit_code == 0, done.output
        lines = done.output.splitlines()
        assert lines[-1] == "database schema is up to date"
        assert lines[:2] == [
            "console_login_attempts: reference table, 0 rows, " + lines[0].rsplit(", ", 1)[1],
            "workspaces: reference table, 0 rows, " + lines[1].rsplit(", ", 1)[1],
        ]
        assert lines[2].startswith("contacts: distributed by workspace_id, 0 rows, ")
        assert len(lines) == len(metadata.sorted_tables) + 1
        again = CliRunner().invoke(cli, ["db", "upgrade"])
        assert again.output.splitlines() == ["database schema is up to date"]
    finally:
        drop_citus_database(name)


def test_upgrade_on_a_distributed_database_changes_nothing(engine: Engine) -> None:
    assert upgrade(engine) == []
    with engine.connect() as conn:
        keys = conn.execute(
            text("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conname LIKE 'fk_%'")
        ).scalar_one()
    assert keys == 10  # every foreign key of the schema is there, once


@pytest.fixture
def plain_database(backend: str, citus_url: str) -> Iterator[str]:
    """A database on the cluster's nodes whose coordinator has no Citus yet: a plain
    PostgreSQL database, as an installation has it before it grows."""
    name = f"audience_plain_{threading.get_ident() % 10**6}"
    url = create_citus_database(name, coordinator_extension=False)
    try:
        yield url
    finally:
        drop_citus_database(name)


def test_db_distribute_turns_a_postgres_database_with_rows_into_a_distributed_one(
    plain_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = build_engine(Settings(database_url=plain_database))
    assert upgrade(engine) == []  # no Citus: a plain schema
    make_tenant_workspace(engine, "acme")
    key = make_key(engine, "acme")
    settings = Settings(database_url=plain_database, secret_key=SECRET, auto_migrate=False)
    people = [{"email": f"p{i}@example.com", "first_name": f"P{i}"} for i in range(250)]
    with TestClient(create_app(settings)) as client:
        body = {"workspace_id": "acme", "contacts": people, "subscribe_to_lists": []}
        answer = client.post("/api/contacts.import", json=body, headers=_auth(key))
        assert answer.status_code == 200, answer.text

    monkeypatch.setenv("AUDIENCE_DATABASE_URL", plain_database)
    monkeypatch.setenv("AUDIENCE_SECRET_KEY", SECRET)
    refused = CliRunner().invoke(cli, ["db", "distribute"])
    assert refused.exit_code == 2
    assert "the database has no Citus extension" in refused.output

    _make_coordinator(plain_database)
    done = CliRunner().invoke(cli, ["db", "distribute"])
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert lines[-1] == "every table is distributed"
    assert sorted(line.split(":")[0] for line in lines[:-1]) == sorted(
        t.name for t in metadata.sorted_tables
    )
    assert "contacts: distributed by workspace_id, 250 rows" in done.output

    again = CliRunner().invoke(cli, ["db", "distribute"])
    assert again.exit_code == 0, again.output
    assert again.output.splitlines() == ["every table is distributed (it was already)"]

    with engine.connect() as conn:
        assert len(distributed_tables(conn)) == len(metadata.sorted_tables)
        # The coordinator's own copy of the rows was emptied (its shell table has no pages).
        local = conn.execute(text("SELECT pg_relation_size('contacts')")).scalar_one()
        assert local == 0
        stored = conn.execute(select(func.count()).select_from(contacts)).scalar_one()
        assert stored == 250
    with TestClient(create_app(settings)) as client:
        found = client.get(
            "/api/contacts.getByEmail",
            params={"workspace_id": "acme", "email": "p7@example.com"},
            headers=_auth(key),
        )
        assert found.status_code == 200, found.text
        assert found.json()["contact"]["first_name"] == "P7"
    engine.dispose()


def _make_coordinator(url: str) -> None:
    """What an operator does to a database before `db distribute`: the extension, and the
    cluster's workers registered in it (the workers of the test cluster)."""
    coordinator = make_url(url)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("CREATE EXTENSION citus"))
    admin.dispose()
    register_nodes(coordinator.render_as_string(hide_password=False))


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- every statement of a workspace is routed to one shard ---------------------------------------


class Captured:
    """The statements an engine's connections execute (SQLAlchemy's cursor events)."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.statements: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if conn.engine.url.database != self.database:
            return
        if not re.match(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", statement, re.IGNORECASE):
            return
        if isinstance(params, list):  # executemany: the plan of one row stands for all
            params = params[0] if params else None
        with self.lock:
            self.statements.append((statement, params))


@pytest.fixture
def captured(settings: Settings) -> Iterator[Captured]:
    database = make_url(settings.database_url).database
    assert database
    capture = Captured(database)
    event.listen(Engine, "before_cursor_execute", capture)
    try:
        yield capture
    finally:
        event.remove(Engine, "before_cursor_execute", capture)


def test_every_statement_of_a_workspace_runs_on_one_shard(
    settings: Settings, engine: Engine, tenant: Tenant, captured: Captured
) -> None:
    _go_through_everything(settings, tenant)
    plans = _explain(engine, captured.statements)
    assert len(plans) > 40, "too few statements captured for the test to mean anything"
    spread = {
        statement: plan
        for statement, plan in plans.items()
        if _tasks(plan) > 1 and not any(re.search(p, statement) for p in CROSS_WORKSPACE)
    }
    assert not spread, "\n\n".join(f"{s}\n{p}" for s, p in spread.items())
    # Every distributed statement is planned by the router, or fast-path router: no
    # statement needs the coordinator to merge shards' results or to repartition.
    for statement, plan in plans.items():
        if "Citus" in plan and not any(re.search(p, statement) for p in CROSS_WORKSPACE):
            assert "Task Count: 1" in plan, f"{statement}\n{plan}"


def _go_through_everything(settings: Settings, tenant: Tenant) -> None:
    """A tenant's day: every API route, the console's pages, an import job."""
    worker_settings = settings.model_copy(update={"import_workers": 1, "import_poll_seconds": 0.05})
    ws = tenant.id
    h = tenant.headers
    with TestClient(create_app(worker_settings), raise_server_exceptions=False) as client:

        def ok(response: Any, *codes: int) -> Any:
            assert response.status_code in (codes or (200,)), response.text
            return response

        ok(client.post("/api/lists.create", headers=h, json=_list(ws, "news")), 201)
        ok(client.post("/api/lists.create", headers=h, json=_list(ws, "offers")), 201)
        people = [
            {"email": f"c{i}@example.com", "external_id": f"x{i}", "first_name": "C"}
            for i in range(30)
        ]
        body = {"workspace_id": ws, "contacts": people, "subscribe_to_lists": ["news"]}
        ok(client.post("/api/contacts.import", headers=h, json=body))
        keyed = {**h, "Idempotency-Key": "day-1"}
        ok(client.post("/api/contacts.import", headers=keyed, json=body))
        ok(client.post("/api/contacts.import", headers=keyed, json=body))  # the replay
        one = {"workspace_id": ws, "contact": {"email": "u@example.com", "last_name": "U"}}
        ok(client.post("/api/contacts.upsert", headers=h, json=one))
        q = {"workspace_id": ws}
        ok(
            client.get(
                "/api/contacts.getByEmail", headers=h, params=q | {"email": "c1@example.com"}
            )
        )
        ok(client.get("/api/contacts.getByExternalID", headers=h, params=q | {"external_id": "x2"}))
        page = ok(client.get("/api/contacts.list", headers=h, params=q | {"limit": 10})).json()
        cursor = page.get("next_cursor")
        if cursor:
            ok(client.get("/api/contacts.list", headers=h, params=q | {"cursor": cursor}))
        ok(client.get("/api/contacts.list", headers=h, params=q | {"list_id": "news"}))
        ok(client.get("/api/contacts.count", headers=h, params=q))
        status = {"workspace_id": ws, "email": "c3@example.com", "list_id": "news"}
        ok(
            client.post(
                "/api/contactLists.updateStatus",
                headers=h,
                json=status | {"status": "unsubscribed"},
            )
        )
        ok(
            client.post(
                "/api/contacts.delete",
                headers=h,
                json={"workspace_id": ws, "email": "c4@example.com"},
            )
        )
        ok(client.get("/api/lists.list", headers=h, params=q))
        ok(client.get("/api/lists.get", headers=h, params=q | {"id": "news"}))
        ok(
            client.post(
                "/api/lists.update", headers=h, json=_list(ws, "offers") | {"name": "Deals"}
            )
        )
        ok(client.post("/api/lists.delete", headers=h, json={"workspace_id": ws, "id": "offers"}))

        jobs = Jobs(client, tenant)
        rows = [["email", "first_name"], *([f"j{i}@example.com", "J"] for i in range(20))]
        rows.append(["not-an-email", "Bad"])
        job = jobs.run(csv_bytes(rows), options={"subscribe_to_lists": ["news"]})
        assert job["status"] == "completed", job
        ok(client.get("/api/imports.list", headers=h, params=q))
        errors = client.get("/api/imports.errors", headers=h, params=q | {"id": job["id"]})
        assert errors.status_code in (200, 404), errors.text
        queued = jobs.create(csv_bytes([["email"], ["late@example.com"]]))
        jobs.cancel(queued["id"])

        csrf = sign_in(client, tenant.key)
        for path in ("/console/contacts", "/console/lists", "/console/imports"):
            ok(client.get(path))
        ok(client.get("/console/contact", params={"email": "c5@example.com"}))
        ok(client.get("/console/lists/news"))
        ok(client.post("/console/logout", data={"csrf_token": csrf}, follow_redirects=False), 303)


def _list(ws: str, list_id: str) -> dict[str, Any]:
    return {"workspace_id": ws, "id": list_id, "name": list_id.title()}


def _explain(engine: Engine, captured: list[tuple[str, Any]]) -> dict[str, str]:
    """EXPLAIN of each distinct captured statement with its parameters (nothing runs)."""
    plans: dict[str, str] = {}
    with engine.connect() as conn:
        cursor = driver_connection(conn).cursor()
        for statement, params in captured:
            if statement in plans or "alembic_version" in statement:
                continue
            rows = cursor.execute("EXPLAIN " + statement, params).fetchall()
            plans[statement] = "\n".join(str(row[0]) for row in rows)
        conn.rollback()
    return plans


def _tasks(plan: str) -> int:
    counts = [int(n) for n in re.findall(r"Task Count: (\d+)", plan)]
    return max(counts, default=1)


# --- the import's own statements -----------------------------------------------------------------


def test_the_import_statements_reach_only_the_workspaces_shard(engine: Engine) -> None:
    """The bulk statements (sent by the driver directly, so not captured above): the
    memberships are routed; the staged merge is planned "pull to coordinator" (the stage is
    the coordinator's temporary table), and its insert still reaches one shard."""
    ws = {"ws": "acme", "now": None}
    with engine.connect() as conn:
        cursor = driver_connection(conn).cursor()
        cursor.execute(statements.PG_STAGE)
        pairs = {"ws": "acme", "emails": ["a@example.com"], "lists": ["news"]}
        routed = _plan(cursor, statements.PG_MEMBERSHIPS, pairs)
        assert _tasks(routed) == 1, routed
        for skip in (False, True):
            sql = statements.pg_upsert(
                ("first_name",), "overwrite", staged=True, skip_unchanged=skip
            )
            plan = _plan(cursor, sql, ws)
            assert "pull to coordinator" in plan or _tasks(plan) == 1, f"skip {skip}\n{plan}"
        conn.rollback()


def _plan(cursor: Any, sql: str, params: dict[str, Any]) -> str:
    """EXPLAIN with the values inlined (Citus cannot EXPLAIN the merge's CTE with its
    parameters unbound; executed, they are bound first)."""
    inline = psycopg.ClientCursor(cursor.connection)
    query = re.sub(r"%\((\w+)\)b", r"%(\1)s", "EXPLAIN " + sql)
    rows = inline.execute(query, params).fetchall()
    return "\n".join(str(row[0]) for row in rows)
