"""Concurrent imports against the real server: no 500, no deadlock, no lost or torn write.

8 client threads send 10 imports each, at once, to `audience serve` (4 workers on PostgreSQL,
2 on SQLite). Every batch holds 300 of the same 400 emails in its own random order and letter
case, and every contact carries the id of its request in several fields. Afterwards every
contact must hold, in all those fields, the values of one request that wrote it, and there
must be one serial order of all 80 requests, consistent with each thread's own order, in
which every contact's final request is the last one to touch it.
"""

from __future__ import annotations

import graphlib
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from audience.db.models import contact_lists, contacts
from tests.conftest import Tenant
from tests.reliability.conftest import ServerProcess

THREADS = 8
REQUESTS_PER_THREAD = 10
POOL = [f"overlap{i:03d}@example.com" for i in range(400)]
BATCH = 300
DEADLOCK_TIMEOUT = 240.0


def request_id(thread: int, number: int) -> str:
    return f"t{thread}r{number}"


def plan_requests(seed: int) -> dict[str, list[dict[str, Any]]]:
    """Each request's batch: BATCH pool emails in random order and case, tagged with its id."""
    rng = random.Random(seed)
    plan: dict[str, list[dict[str, Any]]] = {}
    for thread in range(THREADS):
        for number in range(REQUESTS_PER_THREAD):
            rid = request_id(thread, number)
            batch = []
            for email in rng.sample(POOL, BATCH):
                cased = "".join(c.upper() if rng.random() < 0.3 else c for c in email)
                batch.append(
                    {
                        "email": rng.choice(["", " ", "\u00a0"]) + cased,
                        "first_name": rid,
                        "custom_string_1": rid,
                        "custom_number_1": thread * 1000 + number,
                        # an explicit null half of the time: the clearing UPDATE runs too
                        "last_name": rid if rng.random() < 0.5 else None,
                    }
                )
            plan[rid] = batch
    return plan


def expected_last_name(plan: dict[str, list[dict[str, Any]]], rid: str, email: str) -> Any:
    for item in plan[rid]:
        if item["email"].strip().lower() == email:
            return item["last_name"]
    raise AssertionError(f"{rid} never wrote {email}")


@pytest.mark.slow
def test_concurrent_overlapping_imports(
    start_server: Callable[..., ServerProcess],
    tenant: Tenant,
    client: TestClient,
    engine: Engine,
    backend: str,
) -> None:
    body = {"workspace_id": tenant.id, "id": "news", "name": "News"}
    assert client.post("/api/lists.create", headers=tenant.headers, json=body).is_success
    workers = 4 if backend == "postgres" else 2
    server = start_server(workers=workers)
    plan = plan_requests(seed=6)
    results: dict[str, httpx.Response | BaseException] = {}
    spans: list[tuple[float, float]] = []
    start = threading.Barrier(THREADS)

    def client_thread(thread: int) -> None:
        with httpx.Client(base_url=server.base_url, timeout=DEADLOCK_TIMEOUT) as http:
            start.wait()
            for number in range(REQUESTS_PER_THREAD):
                rid = request_id(thread, number)
                body = {
                    "workspace_id": tenant.id,
                    "contacts": plan[rid],
                    "subscribe_to_lists": ["news"],
                }
                sent = time.monotonic()
                try:
                    results[rid] = http.post(
                        "/api/contacts.import", headers=tenant.headers, json=body
                    )
                except httpx.HTTPError as exc:
                    results[rid] = exc
                spans.append((sent, time.monotonic()))

    began = time.monotonic()
    threads = [threading.Thread(target=client_thread, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DEADLOCK_TIMEOUT)
    elapsed = time.monotonic() - began
    assert not any(t.is_alive() for t in threads), "requests still waiting: a deadlock"
    assert len(results) == len(plan)

    # Every request answered 200 with one clean operation per contact, in order.
    creates: Counter[str] = Counter()
    touched_by: dict[str, set[str]] = defaultdict(set)
    for rid, response in results.items():
        assert isinstance(response, httpx.Response), f"{rid}: {response!r}"
        assert response.status_code == 200, f"{rid}: {response.status_code} {response.text}"
        operations = response.json()["operations"]
        for sent, op in zip(plan[rid], operations, strict=True):
            email = sent["email"].strip().lower()
            assert op["email"] == email and op["error"] is None, op
            assert op["action"] in ("create", "update"), op
            creates[email] += op["action"] == "create"
            touched_by[email].add(rid)
    assert set(creates) == set(touched_by)
    assert {e for e, n in creates.items() if n != 1} == set(), "created twice, or never"

    # No lost, duplicated or torn contact; one serial order explains every final state.
    order: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for t in range(THREADS):
        for number in range(1, REQUESTS_PER_THREAD):
            order.add(request_id(t, number), request_id(t, number - 1))
    with engine.connect() as conn:
        rows = conn.execute(select(contacts).where(contacts.c.workspace_id == tenant.id)).all()
        memberships = conn.execute(
            select(contact_lists.c.status, func.count())
            .where(contact_lists.c.workspace_id == tenant.id)
            .group_by(contact_lists.c.status)
        ).all()
    assert len(rows) == len(touched_by) == len({r.email for r in rows})
    for row in rows:
        winner = row.first_name
        assert winner in touched_by[row.email], (row.email, winner)
        assert row.custom_string_1 == winner, ("torn write", row.email)
        t, number = (int(x) for x in winner[1:].split("r"))
        assert row.custom_number_1 == t * 1000 + number, ("torn write", row.email)
        assert row.last_name == expected_last_name(plan, winner, row.email), row.email
        for other in touched_by[row.email] - {winner}:
            order.add(winner, other)  # `other` must come before the last writer
    try:
        serial = list(order.static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"no serial order explains the final states: {exc.args[1]}")
    assert len(serial) == len(plan)
    assert dict(memberships) == {"active": len(touched_by)}

    log = server.log()
    assert "database is locked" not in log
    assert "Traceback" not in log, log[-3000:]
    written = sum(len(batch) for batch in plan.values())
    overlap = max_in_flight(spans)
    assert overlap >= 2, "the requests never overlapped: nothing concurrent was tested"
    print(
        f"[reliability] concurrency {backend}: {THREADS} clients x {REQUESTS_PER_THREAD} "
        f"imports, {workers} workers, up to {overlap} in flight, {written} contacts written, "
        f"{len(rows)} checked, {elapsed:.1f}s"
    )


def max_in_flight(spans: list[tuple[float, float]]) -> int:
    """The most requests that were waiting for an answer at the same moment."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak
