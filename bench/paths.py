"""The routes a batch takes: the import over HTTP, a floor straight to the database, naive."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import msgspec

from bench.backends import Backend, Postgres, Sqlite
from bench.cases import Case, Resync, Route
from bench.datasets import Contact, Dataset, batches
from bench.floor import Floor
from bench.floor_postgres import PostgresFloor
from bench.floor_sqlite import SqliteFloor
from bench.results import Run
from bench.server import LISTS, STATUSES, WORKSPACE
from bench.tables import PK_ONLY, PROJECT

Bodies = list[tuple[bytes, int]]
_JSON = {"Content-Type": "application/json"}


def source(dataset: Dataset, case: Case) -> list[Contact]:
    return dataset.creates if case.kind == "create" else dataset.updates


def encode(contacts: Sequence[Contact], batch: int, lists: bool) -> Bodies:
    """Request bodies and their contact counts, encoded before any timing starts."""
    bodies = []
    for chunk in batches(contacts, batch):
        body: dict[str, Any] = {"workspace_id": WORKSPACE, "contacts": [c.wire() for c in chunk]}
        if lists:
            body["subscribe_to_lists"] = list(LISTS)
        bodies.append((msgspec.json.encode(body), len(chunk)))
    return bodies


class _Operations(msgspec.Struct):
    operations: list[dict[str, Any]]


class _Answer(_Operations):
    summary: dict[str, int]


def _status(response: httpx.Response, what: str) -> list[str]:
    if response.status_code == 200:
        return []
    return [f"{what}: contacts.import answered {response.status_code}: {response.text[:300]}"]


def check_answer(response: httpx.Response, count: int, kind: str, what: str) -> list[str]:
    """Problems with one import answer: not 200, or not one `kind` operation per contact."""
    if problems := _status(response, what):
        return problems
    operations = msgspec.json.decode(response.content, type=_Operations).operations
    wrong = [op for op in operations if op.get("action") != kind]
    if len(operations) != count or wrong:
        return [
            f"{what}: {len(operations)} operations for {count} contacts, "
            f"{len(wrong)} not {kind!r}, e.g. {wrong[:2]}"
        ]
    return []


def _changed(operation: dict[str, Any]) -> bool:
    """Whether an operation is anything but an update that changed no field nor membership."""
    lists = operation.get("lists", [])
    return (
        operation.get("action") != "update"
        or operation.get("changed_fields", []) != []
        or any(o.get("status") != o.get("previous_status") for o in lists)
    )


def check_unchanged(response: httpx.Response, count: int, what: str) -> list[str]:
    """Problems with one re-sync answer: not 200, or not one update per contact that changed
    nothing (empty changed_fields, every list as it was), summed up as unchanged."""
    if problems := _status(response, what):
        return problems
    answer = msgspec.json.decode(response.content, type=_Answer)
    wrong = [op for op in answer.operations if _changed(op)]
    unchanged = answer.summary.get("unchanged")
    if len(answer.operations) != count or wrong or unchanged != count:
        return [
            f"{what}: {len(answer.operations)} operations for {count} contacts, "
            f"{len(wrong)} not an unchanged update, summary {answer.summary}, e.g. {wrong[:2]}"
        ]
    return []


def _send(
    client: httpx.Client, bodies: Bodies, check: Callable[[httpx.Response, int], list[str]]
) -> Run:
    """POST every body, one at a time; the time of each request, and what `check` finds."""
    run = Run()
    for body, count in bodies:
        start = time.perf_counter()
        response = client.post("/api/contacts.import", content=body, headers=_JSON)
        run.seconds.append(time.perf_counter() - start)
        run.contacts += count
        problems = check(response, count)
        if problems and response.status_code != 200:
            raise RuntimeError(problems[0])
        run.problems += problems
    return run


def import_case(client: httpx.Client, case: Case, bodies: Bodies) -> Run:
    """POST every body, one at a time; the time of each request."""
    what = f"import {case.label}"
    return _send(client, bodies, lambda response, n: check_answer(response, n, case.kind, what))


def resync_case(client: httpx.Client, resync: Resync, bodies: Bodies) -> Run:
    """POST the update case's bodies again, one at a time, each answered all unchanged."""
    what = f"import {resync.label}"
    return _send(client, bodies, lambda response, n: check_unchanged(response, n, what))


def floor_case(floor: Floor, route: Route, dataset: Dataset, case: Case) -> Run:
    """Apply every batch by the floor, one transaction at a time; the time of each."""
    run = Run()
    for batch in batches(source(dataset, case), case.batch):
        start = time.perf_counter()
        created = floor.apply(batch, STATUSES if case.lists else {})
        run.seconds.append(time.perf_counter() - start)
        run.contacts += len(batch)
        if created != (len(batch) if case.kind == "create" else 0):
            run.problems.append(f"{route.label} {case.label}: {created} created")
    return run


def open_floors(backend: Backend, variants: Sequence[str], pk_only: bool) -> dict[Route, Floor]:
    """A floor (its own connection) per variant, and the PK-only reference floor."""
    floors: dict[Route, Floor] = {}
    if isinstance(backend, Postgres):
        for variant in variants:
            floors[Route("floor", variant)] = PostgresFloor(backend.url, WORKSPACE, variant)
        if pk_only:
            floors[Route("floor", "copy", pk_only=True)] = PostgresFloor(
                backend.url, WORKSPACE, "copy", PK_ONLY
            )
    elif isinstance(backend, Sqlite):
        path = str(backend.path)
        floors[Route("floor", SqliteFloor.name)] = SqliteFloor(path, WORKSPACE, PROJECT)
        if pk_only:
            floors[Route("floor", SqliteFloor.name, pk_only=True)] = SqliteFloor(
                path, WORKSPACE, PK_ONLY
            )
    return floors


def naive_rate(client: httpx.Client, sample: Sequence[Contact]) -> float:
    """Contacts per second, one contacts.upsert request each over one keep-alive connection."""
    bodies = [msgspec.json.encode({"workspace_id": WORKSPACE, "contact": c.wire()}) for c in sample]
    start = time.perf_counter()
    for body in bodies:
        response = client.post("/api/contacts.upsert", content=body, headers=_JSON)
        if response.status_code != 200:
            raise RuntimeError(
                f"contacts.upsert answered {response.status_code}: {response.text[:300]}"
            )
    return len(bodies) / (time.perf_counter() - start)
