"""Fixtures: every storage test runs on SQLite, on PostgreSQL and on Citus, each test on a
clean database.

SQLite: the schema is migrated once into a template file, copied for each test.
PostgreSQL (when AUDIENCE_TEST_DATABASE_URL is set): one database per xdist worker, migrated
once, emptied after each test.
Citus (when AUDIENCE_TEST_CITUS_URL names a coordinator's database, e.g. the cluster of
`.ci/citus-cluster start`): the same, the database made on every node of the cluster and
distributed by `upgrade` as `audience db upgrade` does it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from audience.api_keys import service as api_keys
from audience.api_keys.schemas import ALL_PERMISSIONS, Permission
from audience.app import create_app
from audience.config import Settings
from audience.db.engine import build_engine
from audience.db.migrate import upgrade
from audience.db.models import metadata
from audience.db.session import transaction
from audience.workspaces import service as workspaces

SECRET = "test-secret-key-of-at-least-32-characters"
PG_URL = os.environ.get("AUDIENCE_TEST_DATABASE_URL", "")
REQUIRE_PG = os.environ.get("AUDIENCE_REQUIRE_POSTGRES") == "1"
CITUS_URL = os.environ.get("AUDIENCE_TEST_CITUS_URL", "")
REQUIRE_CITUS = os.environ.get("AUDIENCE_REQUIRE_CITUS") == "1"
#: The backends of the storage tests; SERVER_BACKENDS are the two of them kept by the tests
#: that run a whole server per backend for another purpose (the console in a browser).
BACKENDS = ["sqlite", "postgres", "citus"]
SERVER_BACKENDS = ["sqlite", "postgres"]
#: The backends that are a PostgreSQL server (its timeouts, locks and pools).
POSTGRES_SERVERS = ["postgres", "citus"]
#: Shards per distributed table in the test databases (the default, 32, makes every
#: clean-up of a test touch 32 shards of each table).
CITUS_TEST_SHARDS = 4
#: A test that left fewer contacts than this is cleaned up by DELETE, else TRUNCATE.
DELETE_BELOW = 2_000

# The tests build their own settings: an operator's AUDIENCE_* variables (a lower contact
# limit, another database) must not reach them. Only the test configuration itself stays.
for _name in [n for n in os.environ if n.startswith("AUDIENCE_")]:
    if not _name.startswith(("AUDIENCE_TEST_", "AUDIENCE_REQUIRE_")):
        del os.environ[_name]


PG_SKIPPED = (
    "PostgreSQL part of the suite skipped: set AUDIENCE_TEST_DATABASE_URL to run it "
    "(README, Tests and benchmarks)"
)
CITUS_SKIPPED = (
    "Citus part of the suite skipped: set AUDIENCE_TEST_CITUS_URL to run it "
    "(docs/scaling.md, Tests)"
)


def pytest_configure(config: pytest.Config) -> None:
    if REQUIRE_PG and not PG_URL:
        raise pytest.UsageError(
            "AUDIENCE_REQUIRE_POSTGRES=1 but AUDIENCE_TEST_DATABASE_URL is not set"
        )
    if REQUIRE_CITUS and not CITUS_URL:
        raise pytest.UsageError("AUDIENCE_REQUIRE_CITUS=1 but AUDIENCE_TEST_CITUS_URL is not set")


def _missing_backends() -> dict[str, str]:
    """The backends not configured, with the line that says so."""
    missing = {}
    if not PG_URL:
        missing["postgres"] = PG_SKIPPED
    if not CITUS_URL:
        missing["citus"] = CITUS_SKIPPED
    return missing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A backend not configured is left out quietly: one line says so, not one a test."""
    missing = _missing_backends()
    left_out = [item for item in items if _backend_of(item) in missing]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if _backend_of(item) not in missing]


def _backend_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return None if callspec is None else callspec.params.get("backend")


def pytest_report_header(config: pytest.Config) -> list[str]:
    return list(_missing_backends().values())


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    for line in _missing_backends().values():
        terminalreporter.write_line(line)


def _database_name() -> str:
    """Unique per test run and xdist worker, so concurrent runs never share a database."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", str(os.getpid()))[:12]
    return f"audience_test_{run}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = build_engine(Settings(database_url=f"sqlite:///{path}"))
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database of this xdist worker's own."""
    if not PG_URL:
        pytest.skip("PostgreSQL not configured (set AUDIENCE_TEST_DATABASE_URL)")
    admin_url = Settings(database_url=PG_URL).sqlalchemy_url
    name = _database_name()
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        if REQUIRE_PG:
            raise
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = build_engine(Settings(database_url=url))
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def citus_url() -> Iterator[str]:
    """A migrated, distributed database of this xdist worker's own on the Citus cluster."""
    if not CITUS_URL:
        pytest.skip("Citus not configured (set AUDIENCE_TEST_CITUS_URL)")
    name = _database_name()
    try:
        url = create_citus_database(name)
    except Exception as exc:
        if REQUIRE_CITUS:
            raise
        pytest.skip(f"Citus unreachable: {exc}")
    engine = build_engine(Settings(database_url=url))
    upgrade(engine)
    engine.dispose()
    yield url
    drop_citus_database(name)


def _citus_nodes() -> list[tuple[str, int, bool]]:
    """(host, port, is coordinator) of every node of the cluster AUDIENCE_TEST_CITUS_URL is on."""
    admin = create_engine(Settings(database_url=CITUS_URL).sqlalchemy_url)
    try:
        with admin.connect() as conn:
            rows = conn.execute(
                text("SELECT nodename, nodeport, groupid = 0 FROM pg_dist_node ORDER BY groupid")
            ).all()
    finally:
        admin.dispose()
    return [(host, port, coordinator) for host, port, coordinator in rows]


def _on_node(host: str, port: int, database: str) -> str:
    base = make_url(Settings(database_url=CITUS_URL).sqlalchemy_url)
    return base.set(host=host, port=port, database=database).render_as_string(hide_password=False)


def create_citus_database(name: str, *, coordinator_extension: bool = True) -> str:
    """A new database `name` on every node of the test cluster, with Citus in it and the
    workers registered (Citus propagates neither CREATE DATABASE nor the nodes); its URL on
    the coordinator. Without the schema: `upgrade` distributes it. Without
    `coordinator_extension` the coordinator's database is a plain PostgreSQL database (the
    workers' are ready: register_nodes after CREATE EXTENSION makes it a coordinator)."""
    nodes = _citus_nodes()
    maintenance = make_url(Settings(database_url=CITUS_URL).sqlalchemy_url).database or "postgres"
    for host, port, first in nodes:
        admin = create_engine(_on_node(host, port, maintenance), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            shards = f"citus.shard_count = {CITUS_TEST_SHARDS}"
            conn.execute(text(f'ALTER DATABASE "{name}" SET {shards}'))
        admin.dispose()
        if first and not coordinator_extension:
            continue
        node = create_engine(_on_node(host, port, name), isolation_level="AUTOCOMMIT")
        with node.connect() as conn:
            conn.execute(text("CREATE EXTENSION citus"))
        node.dispose()
    (coordinator,) = [(host, port) for host, port, first in nodes if first]
    url = _on_node(*coordinator, name)
    if coordinator_extension:
        register_nodes(url)
    return url


def register_nodes(url: str) -> None:
    """The test cluster's coordinator and workers registered in the database at `url` (on
    the coordinator, with the extension created)."""
    nodes = _citus_nodes()
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for host, port, first in nodes:
            if first:
                conn.execute(
                    text("SELECT citus_set_coordinator_host(:h, :p)"), {"h": host, "p": port}
                )
            else:
                conn.execute(text("SELECT citus_add_node(:h, :p)"), {"h": host, "p": port})
    engine.dispose()


def drop_citus_database(name: str) -> None:
    """Drop `name` on every node of the test cluster, the coordinator first."""
    maintenance = make_url(Settings(database_url=CITUS_URL).sqlalchemy_url).database or "postgres"
    for host, port, _ in _citus_nodes():
        admin = create_engine(_on_node(host, port, maintenance), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def server_database(backend: str, request: pytest.FixtureRequest) -> str:
    """The migrated database of this xdist worker on a server backend (postgres or citus)."""
    return str(request.getfixturevalue("citus_url" if backend == "citus" else "postgres_url"))


def empty_tables(url: str, backend: str) -> None:
    """Every table of the schema emptied (a server backend's database, after a test). When
    the test left few contacts, by deleting the workspaces, whose deletion cascades to every
    table keyed by one, and the sign-in attempts, the one table without a workspace: a
    TRUNCATE of every table took ~150 ms on PostgreSQL (new files for each table and index),
    ~6 times as long on Citus (every shard). After a large import the cascade would cost more
    than the TRUNCATE (24 s on Citus after a maximum one)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        if backend == "citus":  # DDL and reads of the shards in one transaction
            conn.execute(text("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"))
        few = conn.execute(
            text("SELECT count(*) < :n FROM (SELECT 1 FROM contacts LIMIT :n) AS c"),
            {"n": DELETE_BELOW},
        ).scalar_one()
        if few:
            conn.execute(text("DELETE FROM workspaces"))
            conn.execute(text("DELETE FROM console_login_attempts"))
        else:
            tables = ", ".join(t.name for t in metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with the migrated schema and no rows, for this test alone."""
    if backend == "sqlite":
        path = tmp_path / "audience.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = server_database(backend, request)
    yield url
    empty_tables(url, backend)


@pytest.fixture
def settings(database_url: str) -> Settings:
    # No import workers: the tests of import jobs start them where they want them.
    return Settings(
        database_url=database_url, secret_key=SECRET, auto_migrate=False, import_workers=0
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = build_engine(settings)
    yield engine
    engine.dispose()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@dataclass(frozen=True)
class Tenant:
    """A workspace and an API key with every permission."""

    id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def make_workspace(engine: Engine, workspace_id: str) -> None:
    with transaction(engine, write=True) as conn:
        workspaces.create_workspace(conn, workspace_id=workspace_id, name=workspace_id.title())


def make_key(
    engine: Engine, workspace_id: str, permissions: tuple[Permission, ...] = ALL_PERMISSIONS
) -> str:
    with transaction(engine, write=True) as conn:
        new = api_keys.create_key(
            conn,
            workspace_id=workspace_id,
            name="test",
            permissions=permissions,
            secret_key=SECRET,
        )
    return new.key


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    make_workspace(engine, "acme")
    return Tenant(id="acme", key=make_key(engine, "acme"))


@pytest.fixture
def other_tenant(engine: Engine) -> Tenant:
    make_workspace(engine, "globex")
    return Tenant(id="globex", key=make_key(engine, "globex"))
