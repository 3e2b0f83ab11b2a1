"""Fixtures of the `audience import` tests: a real server on a free port, on both databases."""

from __future__ import annotations

import csv
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from audience.app import create_app
from audience.config import Settings
from audience.file_client.options import Options, Outcome, Ui
from audience.file_client.progress import ProgressView, Tally
from audience.file_client.run import run_import
from tests.conftest import Tenant


@dataclass(frozen=True)
class Live:
    """A running server and the tenant's key for it."""

    url: str
    tenant: Tenant

    def get(self, email: str) -> dict[str, Any] | None:
        """The contact as `contacts.getByEmail` returns it, or None when unknown."""
        response = httpx.get(
            f"{self.url}/api/contacts.getByEmail",
            params={"workspace_id": self.tenant.id, "email": email},
            headers=self.tenant.headers,
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        contact: dict[str, Any] = response.json()["contact"]
        return contact

    def count(self) -> int:
        response = httpx.get(
            f"{self.url}/api/contacts.count",
            params={"workspace_id": self.tenant.id},
            headers=self.tenant.headers,
        )
        response.raise_for_status()
        return int(response.json()["total_contacts"])

    def create_list(self, list_id: str) -> None:
        response = httpx.post(
            f"{self.url}/api/lists.create",
            json={"workspace_id": self.tenant.id, "id": list_id, "name": list_id.title()},
            headers=self.tenant.headers,
        )
        response.raise_for_status()


@pytest.fixture
def live(settings: Settings, tenant: Tenant) -> Iterator[Live]:
    """The app served by uvicorn in a thread, on the test's database."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield Live(f"http://127.0.0.1:{port}", tenant)
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@dataclass
class Captured:
    """A Ui that keeps what a run says."""

    out: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    done: list[int] = field(default_factory=list)
    totals: list[int] = field(default_factory=list)

    def ui(self) -> Ui:
        captured = self

        class View:
            def update(self, done: int, tally: Tally, total: int | None = None) -> None:
                captured.done.append(done)
                if total is not None:
                    captured.totals.append(total)

            def close(self) -> None:
                pass

        def progress(total: int | None, start: int) -> ProgressView:
            return View()

        return Ui(out=self.out.append, note=self.notes.append, progress=progress)


def run(
    live: Live,
    path: Path,
    captured: Captured | None = None,
    http: httpx.Client | None = None,
    **options: Any,
) -> Outcome:
    """`audience import` in-process, against the live server, without back-off waits."""
    settings: dict[str, Any] = {
        "workspace": live.tenant.id,
        "url": live.url,
        "key": live.tenant.key,
        "backoff": 0.0,
        **options,
    }
    return run_import(Options(path=path, **settings), (captured or Captured()).ui(), http)


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))
