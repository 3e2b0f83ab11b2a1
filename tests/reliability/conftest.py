"""Shared pieces of the reliability suite: snapshots, body checks and a real server process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from audience.db.models import metadata, workspaces
from audience.kit.server_process import ServerProcess
from tests.conftest import SECRET

__all__ = ["ServerProcess", "start_server"]

#: Text that only a leaked traceback or driver error would put in a response body.
TRACEBACK_MARKERS = (
    "Traceback (most recent call last)",
    'File "/',
    "sqlalchemy",
    "psycopg",
    "sqlite3",
    "OperationalError",
    "IntegrityError",
    "DataError",
    "ProgrammingError",
)


def assert_no_traceback(body: str) -> None:
    leaked = [marker for marker in TRACEBACK_MARKERS if marker in body]
    assert not leaked, f"internal details {leaked} in a response body: {body[:500]}"


def assert_error_body(response: httpx.Response) -> str:
    """The `error` message of a 4xx answer, checking the envelope on the way."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str), body
    assert body["error"], body
    assert_no_traceback(response.text)
    return str(body["error"])


def snapshot(engine: Engine, workspace_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table that belongs to one workspace, in primary-key order."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table is not workspaces and "workspace_id" not in table.c:
                continue  # shared by every workspace (console_login_attempts: by address)
            column = workspaces.c.id if table is workspaces else table.c.workspace_id
            query = select(table).where(column == workspace_id)
            query = query.order_by(*table.primary_key.columns)
            tables[table.name] = [tuple(row) for row in conn.execute(query)]
        conn.rollback()
    return tables


# --- a real server ------------------------------------------------------------------------------


@pytest.fixture
def start_server(database_url: str, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start real servers on the test's database; each is stopped when the test ends."""
    started: list[ServerProcess] = []

    def start(workers: int, url: str | None = None, **env: str) -> ServerProcess:
        """`url`: another way to the test's database (e.g. through a relay)."""
        server = ServerProcess(
            database_url=url or database_url,
            log_path=tmp_path / "server.log",
            workers=workers,
            secret_key=SECRET,
            env={"AUDIENCE_AUTO_MIGRATE": "true", **env},
        )
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
