"""Shared pieces of the reliability suite: snapshots, body checks and a real server process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from audience.db.models import metadata, workspaces
from tests.conftest import SECRET

AUDIENCE = Path(sys.executable).with_name("audience")

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
            column = workspaces.c.id if table is workspaces else table.c.workspace_id
            query = select(table).where(column == workspace_id)
            query = query.order_by(*table.primary_key.columns)
            tables[table.name] = [tuple(row) for row in conn.execute(query)]
        conn.rollback()
    return tables


# --- a real server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """`audience serve` in its own process group, so kill -9 reaches every worker."""

    database_url: str
    workers: int
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    base_url: str = ""

    def start(self, timeout: float = 60.0) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "AUDIENCE_DATABASE_URL": self.database_url,
            "AUDIENCE_SECRET_KEY": SECRET,
            "AUDIENCE_AUTO_MIGRATE": "true",
            **self.extra_env,
        }
        command = [str(AUDIENCE), "serve", "--workers", str(self.workers), "--port", str(port)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy in {timeout}s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL to the whole process group: no cleanup, no rollback, no flush."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def start_server(database_url: str, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start real servers on the test's database; each is stopped when the test ends."""
    started: list[ServerProcess] = []

    def start(workers: int, **extra_env: str) -> ServerProcess:
        server = ServerProcess(
            database_url=database_url,
            workers=workers,
            log_path=tmp_path / "server.log",
            extra_env=extra_env,
        )
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
