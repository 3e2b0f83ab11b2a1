"""Every pair of write routes, raced on the same rows against a real 2-worker server.

The write routes are contacts.import (subscribing to the list), contacts.upsert,
contacts.delete, contactLists.updateStatus, lists.create, lists.update and lists.delete. For
each pair (a route with itself included: 28 pairs), 3 client threads per route send their
request over and over for RACE_SECONDS (longer, until each route has succeeded once), all on
the same three contacts and the same list.
Where the pair destroys what the other needs (a delete) a helper thread puts the list and the
contacts back every few milliseconds; where it only creates the list, the helper deletes it,
so that the creates race each other rather than all find it present.

Checked: no answer is 5xx (no 503 either: at these loads nothing should wait anywhere near a
limit, and a deadlock must be cured by the one retry), every answer is one the route documents
for the state it may have met, and afterwards the data is consistent: no membership without
its contact or its list, and contacts.count equals the rows stored.

One server per backend serves every pair of the module; each pair has its own workspace.
"""

from __future__ import annotations

import itertools
import random
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from audience.config import Settings
from audience.db.engine import build_engine
from audience.db.models import contact_lists, contacts, lists
from tests.conftest import (
    BACKENDS,
    SECRET,
    empty_tables,
    make_key,
    make_workspace,
    server_database,
)
from tests.reliability.conftest import ServerProcess, assert_no_traceback

pytestmark = pytest.mark.slow

#: The server's lock timeout: far above any wait at these loads (milliseconds), short enough
#: that a request stuck behind a lock answers within the pair's time.
LOCK_TIMEOUT = 3.0
RACE_SECONDS = 0.5
#: A race goes on past RACE_SECONDS until every route of the pair has succeeded once (on a
#: loaded machine, a slow backend such as Citus can spend the whole second on a few requests).
RACE_MAX_SECONDS = 8.0
THREADS_PER_ROUTE = 3
RACE_ATTEMPTS = 3
LIST = "news"
POOL = ("a@example.com", "b@example.com", "c@example.com")
STATUSES = ("active", "pending", "unsubscribed", "bounced", "complained")

ROUTES = (
    "contacts.import",
    "contacts.upsert",
    "contacts.delete",
    "contactLists.updateStatus",
    "lists.create",
    "lists.update",
    "lists.delete",
)
PAIRS = list(itertools.combinations_with_replacement(ROUTES, 2))
DELETES = {"contacts.delete", "lists.delete"}
#: The pause of a deleting thread between its requests, so that the other route of its pair
#: meets the rows the helper put back rather than only their absence.
DELETE_PAUSE = 0.05

#: What each route may answer in this race: {status: the messages allowed (None: any body)}.
NOT_FOUND_CONTACT = {f"contact not found: {email}" for email in POOL}
ALLOWED: dict[str, dict[int, set[str] | None]] = {
    "contacts.import": {200: None, 400: {f"list not found: {LIST}"}},
    "contacts.upsert": {200: None},
    "contacts.delete": {200: None, 404: NOT_FOUND_CONTACT},
    "contactLists.updateStatus": {
        200: None,
        404: NOT_FOUND_CONTACT
        | {f"list not found: {LIST}"}
        | {f"contact {email} is not in list {LIST}" for email in POOL},
    },
    "lists.create": {201: None, 400: {f"list already exists: {LIST}"}},
    "lists.update": {200: None, 404: {f"list not found: {LIST}"}},
    "lists.delete": {200: None, 404: {f"list not found: {LIST}"}},
}


def request_for(route: str, workspace_id: str, rng: random.Random) -> dict[str, Any]:
    """One request of the route on the shared rows."""
    email = rng.choice(POOL)
    if route == "contacts.import":
        return {
            "workspace_id": workspace_id,
            "contacts": [
                {"email": e, "first_name": f"i{rng.random()}"} for e in rng.sample(POOL, 3)
            ],
            "subscribe_to_lists": [LIST],
        }
    if route == "contacts.upsert":
        return {"workspace_id": workspace_id, "contact": {"email": email, "last_name": "u"}}
    if route == "contacts.delete":
        return {"workspace_id": workspace_id, "email": email}
    if route == "contactLists.updateStatus":
        status = rng.choice(STATUSES)
        return {"workspace_id": workspace_id, "email": email, "list_id": LIST, "status": status}
    if route == "lists.create":
        return {"workspace_id": workspace_id, "id": LIST, "name": "News", "is_double_optin": True}
    if route == "lists.update":
        return {"workspace_id": workspace_id, "id": LIST, "name": f"n{rng.random()}"}
    assert route == "lists.delete", route
    return {"workspace_id": workspace_id, "id": LIST}


# --- one server per backend for the whole module -------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """This module's own backend parameter: module-scoped, so that its server is shared."""
    return str(request.param)


@dataclass
class RaceServer:
    server: ServerProcess
    engine: Engine
    workspaces: Iterator[int]


@pytest.fixture(scope="module")
def race_server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RaceServer]:
    directory = tmp_path_factory.mktemp(f"races-{backend}")
    if backend == "sqlite":
        path = directory / "audience.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = server_database(backend, request)
    engine = build_engine(Settings(database_url=url, secret_key=SECRET, auto_migrate=False))
    server = ServerProcess(
        database_url=url,
        log_path=Path(directory) / "server.log",
        workers=2,
        secret_key=SECRET,
        env={
            "AUDIENCE_AUTO_MIGRATE": "false",
            "AUDIENCE_DB_LOCK_TIMEOUT_SECONDS": str(LOCK_TIMEOUT),
        },
    )
    server.start()
    try:
        yield RaceServer(server, engine, itertools.count())
    finally:
        server.stop()
        engine.dispose()
        if backend != "sqlite":  # the next test of this xdist worker expects empty tables
            empty_tables(url, backend)


# --- the race ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    statuses: Counter[tuple[str, int]]
    unexpected: list[str]
    sent: int
    #: (route, body, seconds) of every 503.
    busy: list[tuple[str, str, float]]


def race(
    base_url: str,
    headers: dict[str, str],
    workspace_id: str,
    senders: list[str],
    helper: Callable[[httpx.Client], list[tuple[str, httpx.Response]]] | None,
) -> Outcome:
    statuses: Counter[tuple[str, int]] = Counter()
    unexpected: list[str] = []
    busy: list[tuple[str, str, float]] = []
    lock = threading.Lock()
    stop = threading.Event()
    started = threading.Barrier(len(senders) + (helper is not None) + 1)

    def record(route: str, response: httpx.Response) -> None:
        problem = judge(route, response)
        with lock:
            statuses[(route, response.status_code)] += 1
            if response.status_code == 503:
                busy.append((route, response.text, response.elapsed.total_seconds()))
            elif problem:
                unexpected.append(problem)

    def sender(route: str, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
            started.wait()
            while not stop.is_set():
                try:
                    response = http.post(
                        f"/api/{route}", json=request_for(route, workspace_id, rng)
                    )
                except httpx.HTTPError as exc:
                    with lock:
                        unexpected.append(f"{route}: {exc!r}")
                    time.sleep(0.1)
                    continue
                record(route, response)
                if route in DELETES:
                    time.sleep(DELETE_PAUSE)  # what the helper puts back lives a little

    def helping() -> None:
        assert helper is not None
        with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
            started.wait()
            while not stop.is_set():
                for route, response in helper(http):
                    record(f"helper {route}", response)
                time.sleep(0.02)

    threads = [threading.Thread(target=sender, args=(r, i)) for i, r in enumerate(senders)]
    if helper is not None:
        threads.append(threading.Thread(target=helping))
    for thread in threads:
        thread.start()
    started.wait(60)  # every client is ready: the race begins now
    begun = time.monotonic()
    time.sleep(RACE_SECONDS)
    while time.monotonic() - begun < RACE_MAX_SECONDS:
        with lock:
            waiting = [r for r in set(senders) if not statuses[(r, 200)] + statuses[(r, 201)]]
        if not waiting:
            break
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(90)
    assert not any(t.is_alive() for t in threads), "a request never answered: a hang"
    return Outcome(statuses, unexpected, sum(statuses.values()), busy)


def judge(route: str, response: httpx.Response) -> str | None:
    """Why this answer is not one the route may give here, or None."""
    name = route.removeprefix("helper ")
    status = response.status_code
    assert_no_traceback(response.text)
    allowed = ALLOWED[name]
    if status not in allowed:
        return f"{route}: {status} {response.text[:300]}"
    messages = allowed[status]
    body = response.json()
    if messages is not None and body.get("error") not in messages:
        return f"{route}: {status} {response.text[:300]}"
    clean = status != 200 or name != "contacts.import"
    if not clean and (body["error"] is not None or any(op["error"] for op in body["operations"])):
        return f"{route}: 200 with errors {response.text[:300]}"
    return None


def helper_for(
    pair: set[str], workspace_id: str
) -> Callable[[httpx.Client], list[tuple[str, httpx.Response]]] | None:
    """What keeps the pair racing: the list deleted again where the pair only creates it, put
    back where the pair only deletes it; then the contacts and their memberships put back
    (by an import) where the pair deletes anything or recreates the list."""
    steps: list[tuple[str, dict[str, Any]]] = []
    if "lists.create" in pair and "lists.delete" not in pair:
        steps.append(("lists.delete", {"workspace_id": workspace_id, "id": LIST}))
    if "lists.delete" in pair and "lists.create" not in pair:
        steps.append(("lists.create", {"workspace_id": workspace_id, "id": LIST, "name": "News"}))
    if steps or pair & DELETES:
        steps.append(("contacts.import", seed_import(workspace_id)))
    if not steps:
        return None

    def run(http: httpx.Client) -> list[tuple[str, httpx.Response]]:
        answers = []
        for route, body in steps:
            answers.append((route, http.post(f"/api/{route}", json=body)))
            if route == "lists.delete":
                time.sleep(0.01)  # the pair's lists.create recreates it meanwhile
        return answers

    return run


def _seeded(race_server: RaceServer) -> tuple[str, dict[str, str]]:
    """A new workspace with its list and the pool's contacts in it; its key's headers."""
    engine, server = race_server.engine, race_server.server
    workspace_id = f"race{next(race_server.workspaces)}"
    make_workspace(engine, workspace_id)
    headers = {"Authorization": f"Bearer {make_key(engine, workspace_id)}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as http:
        body = {"workspace_id": workspace_id, "id": LIST, "name": "News"}
        assert http.post("/api/lists.create", json=body).status_code == 201
        response = http.post("/api/contacts.import", json=seed_import(workspace_id))
        assert response.status_code == 200, response.text
    return workspace_id, headers


def seed_import(workspace_id: str) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "contacts": [{"email": e} for e in POOL],
        "subscribe_to_lists": [LIST],
    }


def consistency(engine: Engine, workspace_id: str) -> tuple[int, int, int, int]:
    """(contacts, memberships, memberships without their contact, ... without their list)."""
    in_ws = contact_lists.c.workspace_id == workspace_id
    no_contact = (
        select(func.count())
        .select_from(
            contact_lists.outerjoin(
                contacts,
                (contacts.c.workspace_id == contact_lists.c.workspace_id)
                & (contacts.c.email == contact_lists.c.email),
            )
        )
        .where(in_ws, contacts.c.email.is_(None))
    )
    no_list = (
        select(func.count())
        .select_from(
            contact_lists.outerjoin(
                lists,
                (lists.c.workspace_id == contact_lists.c.workspace_id)
                & (lists.c.id == contact_lists.c.list_id),
            )
        )
        .where(in_ws, lists.c.id.is_(None))
    )
    with engine.connect() as conn:
        stored = conn.execute(
            select(func.count()).where(contacts.c.workspace_id == workspace_id)
        ).scalar_one()
        memberships = conn.execute(select(func.count()).where(in_ws)).scalar_one()
        orphans_c = conn.execute(no_contact).scalar_one()
        orphans_l = conn.execute(no_list).scalar_one()
        conn.rollback()
    return int(stored), int(memberships), int(orphans_c), int(orphans_l)


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}+{b}" for a, b in PAIRS])
def test_write_pair_race(first: str, second: str, race_server: RaceServer, backend: str) -> None:
    engine, server = race_server.engine, race_server.server
    pair = {first, second}
    busy: list[tuple[str, str, float]] = []
    # A race in which one route never succeeded raced nothing (on a loaded machine every
    # updateStatus can come after the list's delete): it is run again, in a new workspace.
    for _attempt in range(RACE_ATTEMPTS):
        workspace_id, headers = _seeded(race_server)
        helper = helper_for(pair, workspace_id)
        senders = [first] * THREADS_PER_ROUTE + [second] * THREADS_PER_ROUTE
        outcome = race(server.base_url, headers, workspace_id, senders, helper)
        busy += outcome.busy

        failures = {k: n for k, n in outcome.statuses.items() if k[1] >= 500 and k[1] != 503}
        assert not failures, (failures, outcome.statuses, outcome.unexpected[:5])
        assert not outcome.unexpected, outcome.unexpected[:10]
        raced = [r for r in pair if outcome.statuses[(r, 200)] + outcome.statuses[(r, 201)] == 0]
        if not raced:
            break
    else:
        pytest.fail(f"{raced} never succeeded in {RACE_ATTEMPTS} races: {outcome.statuses}")

    stored, memberships, without_contact, without_list = consistency(engine, workspace_id)
    assert (without_contact, without_list) == (0, 0), "memberships left without their rows"
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as http:
        counted = http.get("/api/contacts.count", params={"workspace_id": workspace_id})
    assert counted.status_code == 200, counted.text
    assert counted.json()["total_contacts"] == stored
    assert stored <= len(POOL) and memberships <= len(POOL)

    log = server.log()  # the module's server: every pair so far
    assert "Traceback" not in log and "unexpected" not in log, log[-3000:]
    summary = ", ".join(f"{r} {s}: {n}" for (r, s), n in sorted(outcome.statuses.items()))
    print(f"\n[reliability] race {backend} {first} + {second}: {outcome.sent} answers ({summary})")

    if busy:
        pytest.fail(f"503 at a load far below every limit: {busy[:5]}")
