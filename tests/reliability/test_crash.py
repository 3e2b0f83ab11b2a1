"""Crash safety: kill -9 the server in the middle of a 10,000-contact import, restart it on the
same database, and find the import applied wholly or not at all.

The kill is timed from the database, not from a clock: on PostgreSQL once the import's
transaction has written rows (it has a transaction id in pg_stat_activity), on SQLite once it
holds the write lock; then after a fraction of the time such an import holds it, so that
the kills land at different points of the write.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text

from audience.db.models import contact_lists, contacts
from tests.conftest import Tenant
from tests.reliability.conftest import ServerProcess

SIZE = 10_000
#: When to kill, as a fraction of how long a committed import of the same size held the
#: database (measured in the same test, just before).
KILL_POINTS = (0.0, 0.9)
WAIT = 120.0


def batch(tag: str) -> list[dict[str, Any]]:
    return [
        {
            "email": f"{tag}{i}@example.com",
            "first_name": "Crash",
            "custom_number_1": i,
            "custom_json_1": {"i": i},
        }
        for i in range(SIZE)
    ]


class WriteProbe:
    """Tells, from outside the server, whether an import transaction is writing right now."""

    def __init__(self, engine: Engine, database_url: str) -> None:
        self.engine = engine
        self.sqlite_path = (
            Path(database_url.removeprefix("sqlite:///"))
            if database_url.startswith("sqlite")
            else None
        )

    def writing(self) -> bool:
        if self.sqlite_path is not None:
            conn = sqlite3.connect(self.sqlite_path, timeout=0, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
                return False
            except sqlite3.OperationalError as exc:
                assert "locked" in str(exc), exc
                return True
            finally:
                conn.close()
        with self.engine.connect() as pg:
            found = pg.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
                )
            ).scalar_one()
            pg.rollback()
        return bool(found)

    def wait_until_writing(self, done: threading.Event) -> float:
        """The moment a write transaction was first seen (fails if the import ended first)."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and not done.is_set():
            if self.writing():
                return time.monotonic()
            time.sleep(0.002)
        raise AssertionError("the import finished or stalled before it was seen writing")


def send_in_thread(
    server: ServerProcess, tenant: Tenant, body: dict[str, Any]
) -> tuple[threading.Thread, threading.Event, dict[str, Any]]:
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def send() -> None:
        try:
            outcome["response"] = httpx.post(
                f"{server.base_url}/api/contacts.import",
                headers=tenant.headers,
                json=body,
                timeout=WAIT,
            )
        except httpx.HTTPError as exc:
            outcome["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=send)
    thread.start()
    return thread, done, outcome


def stored(engine: Engine, workspace_id: str, tag: str) -> tuple[int, int]:
    """(contacts, memberships) of the batch `tag`."""
    pattern = f"{tag}%"
    with engine.connect() as conn:
        people = conn.execute(
            select(func.count()).where(
                contacts.c.workspace_id == workspace_id, contacts.c.email.like(pattern)
            )
        ).scalar_one()
        members = conn.execute(
            select(func.count()).where(
                contact_lists.c.workspace_id == workspace_id, contact_lists.c.email.like(pattern)
            )
        ).scalar_one()
        conn.rollback()
    return int(people), int(members)


@pytest.mark.slow
def test_kill_9_during_an_import_applies_it_wholly_or_not_at_all(
    start_server: Callable[..., ServerProcess],
    tenant: Tenant,
    client: TestClient,
    engine: Engine,
    database_url: str,
    backend: str,
) -> None:
    news = {"workspace_id": tenant.id, "id": "news", "name": "News"}
    assert client.post("/api/lists.create", headers=tenant.headers, json=news).is_success
    probe = WriteProbe(engine, database_url)
    server = start_server(workers=1)

    # A committed import: it must survive every crash, and it times the kills.
    body: dict[str, Any] = {
        "workspace_id": tenant.id,
        "contacts": batch("kept"),
        "subscribe_to_lists": ["news"],
    }
    thread, done, outcome = send_in_thread(server, tenant, body)
    seen = probe.wait_until_writing(done)
    thread.join(WAIT)
    held = time.monotonic() - seen
    assert outcome["response"].status_code == 200, outcome
    assert stored(engine, tenant.id, "kept") == (SIZE, SIZE)

    results = []
    for round_number, fraction in enumerate(KILL_POINTS):
        tag = f"crash{round_number}x"
        body = {**body, "contacts": batch(tag)}
        thread, done, outcome = send_in_thread(server, tenant, body)
        probe.wait_until_writing(done)
        time.sleep(fraction * held)
        answered_before_kill = done.is_set()
        server.kill()
        thread.join(WAIT)
        server = start_server(workers=1)

        people, members = stored(engine, tenant.id, tag)
        assert (people, members) in ((0, 0), (SIZE, SIZE)), (fraction, people, members)
        if answered_before_kill and outcome.get("response") is not None:
            assert (people, members) == (SIZE, SIZE)
        assert stored(engine, tenant.id, "kept") == (SIZE, SIZE)
        results.append("none" if people == 0 else "all")

        # The restarted server takes the same import and completes it.
        response = httpx.post(
            f"{server.base_url}/api/contacts.import",
            headers=tenant.headers,
            json=body,
            timeout=WAIT,
        )
        assert response.status_code == 200, response.text[:300]
        assert stored(engine, tenant.id, tag) == (SIZE, SIZE)

    if probe.sqlite_path is not None:
        with sqlite3.connect(probe.sqlite_path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    print(
        f"[reliability] crash {backend}: {len(KILL_POINTS)} kills of a {SIZE}-contact import "
        f"at {KILL_POINTS} of the write time ({held:.2f}s): batch applied {results}"
    )
