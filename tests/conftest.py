"""Fixtures: every storage test runs on SQLite and on PostgreSQL, each test on a clean database.

SQLite: the schema is migrated once into a template file, copied for each test.
PostgreSQL (when AUDIENCE_TEST_DATABASE_URL is set): one database per xdist worker, migrated
once, emptied after each test.
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
BACKENDS = ["sqlite", "postgres"]

# The tests build their own settings: an operator's AUDIENCE_* variables (a lower contact
# limit, another database) must not reach them. Only the test configuration itself stays.
for _name in [n for n in os.environ if n.startswith("AUDIENCE_")]:
    if not _name.startswith(("AUDIENCE_TEST_", "AUDIENCE_REQUIRE_")):
        del os.environ[_name]


PG_SKIPPED = (
    "PostgreSQL half of the suite skipped: set AUDIENCE_TEST_DATABASE_URL to run it "
    "(README, Tests and benchmarks)"
)


def pytest_configure(config: pytest.Config) -> None:
    if REQUIRE_PG and not PG_URL:
        raise pytest.UsageError(
            "AUDIENCE_REQUIRE_POSTGRES=1 but AUDIENCE_TEST_DATABASE_URL is not set"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without PostgreSQL, its half is left out quietly: one line says so, not one a test."""
    if PG_URL:
        return
    on_postgres = [item for item in items if _backend_of(item) == "postgres"]
    if on_postgres:
        config.hook.pytest_deselected(items=on_postgres)
        items[:] = [item for item in items if _backend_of(item) != "postgres"]


def _backend_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return None if callspec is None else callspec.params.get("backend")


def pytest_report_header(config: pytest.Config) -> str | None:
    return None if PG_URL else PG_SKIPPED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not PG_URL:
        terminalreporter.write_line(PG_SKIPPED)


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
    url = request.getfixturevalue("postgres_url")
    yield url
    engine = create_engine(url)
    tables = ", ".join(t.name for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    engine.dispose()


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
