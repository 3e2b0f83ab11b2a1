"""The Idempotency-Key header of contacts.import and contacts.upsert.

A request sent again with the same key and a byte-identical body gets the first answer
again, byte for byte, with `Idempotent-Replayed: true`, and writes nothing; another body is
a 422; the key belongs to its workspace, expires, and holds across processes. Two identical
requests at once with one key (against a real server with two workers) apply once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, insert, select, text

from audience.api_keys.schemas import Permission
from audience.contacts import service
from audience.db.engine import SQLITE_WRITE
from audience.db.models import api_keys, contact_lists, contacts, idempotency_keys, metadata
from audience.errors import ServiceUnavailable
from audience.idempotency.repository import IdempotencyRepository
from tests.conftest import POSTGRES_SERVERS, Tenant, make_key
from tests.contacts.conftest import MakeClient
from tests.contacts.helpers import create_list, get_contact
from tests.reliability import conftest as reliability
from tests.reliability.conftest import ServerProcess

start_server = reliability.start_server

JANE = "jane@example.com"
OTHER_BODY = {"error": "Idempotency-Key was already used with a different request body"}
BAD_KEY = {"error": "Idempotency-Key must be 1-255 visible ASCII characters"}
REPLAYED = "Idempotent-Replayed"


def import_bytes(workspace_id: str, items: list[Any], **options: Any) -> bytes:
    return json.dumps({"workspace_id": workspace_id, "contacts": items, **options}).encode()


def upsert_bytes(workspace_id: str, contact: Any, **options: Any) -> bytes:
    return json.dumps({"workspace_id": workspace_id, "contact": contact, **options}).encode()


def send(
    client: TestClient | httpx.Client,
    tenant: Tenant,
    body: bytes,
    key: str | bytes | None,
    route: str = "contacts.import",
) -> httpx.Response:
    headers: dict[str, Any] = {**tenant.headers, "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    response: httpx.Response = client.post(f"/api/{route}", headers=headers, content=body)
    return response


def everything(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (an API key's last_used_at, key bookkeeping, left out)."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            columns = [c for c in table.columns if c is not api_keys.c.last_used_at]
            query = select(*columns).order_by(*table.primary_key.columns)
            tables[table.name] = [tuple(row) for row in conn.execute(query)]
    return tables


def records(engine: Engine) -> list[tuple[str, str, int | None]]:
    """(workspace, key, stored status) of every idempotency record."""
    table = idempotency_keys.c
    query = select(table.workspace_id, table.key, table.status_code).order_by(
        table.workspace_id, table.key
    )
    with engine.connect() as conn:
        return [(row[0], row[1], row[2]) for row in conn.execute(query)]


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def assert_replay(first: httpx.Response, again: httpx.Response) -> None:
    assert REPLAYED not in first.headers
    assert again.headers.get(REPLAYED) == "true"
    assert again.status_code == first.status_code
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]


# --- replay ------------------------------------------------------------------------------------


def test_a_retry_gets_the_first_answer_byte_for_byte_and_writes_nothing(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    create_list(client, tenant, "news")
    body = import_bytes(
        tenant.id,
        [{"email": JANE, "first_name": "Jane"}, {"email": "bad"}],
        subscribe_to_lists=["news"],
    )
    first = send(client, tenant, body, "order-1")
    assert first.status_code == 200, first.text
    assert first.json()["operations"][0]["action"] == "create"
    assert records(engine) == [(tenant.id, "order-1", 200)]
    # The data changes meanwhile: the replay is still the first answer, and rewrites nothing.
    change = import_bytes(tenant.id, [{"email": JANE, "first_name": "Janet"}])
    assert send(client, tenant, change, None).status_code == 200
    before = everything(engine)
    for _ in range(2):
        again = send(client, tenant, body, "order-1")
        assert_replay(first, again)
    assert everything(engine) == before
    contact = get_contact(client, tenant, JANE)
    assert contact is not None and contact["first_name"] == "Janet"


def test_without_a_key_nothing_is_stored_and_nothing_replayed(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    body = import_bytes(tenant.id, [{"email": JANE}])
    first, second = send(client, tenant, body, None), send(client, tenant, body, None)
    assert REPLAYED not in first.headers and REPLAYED not in second.headers
    assert second.json()["operations"][0]["action"] == "update"
    assert records(engine) == []


def test_another_body_with_the_same_key_is_a_422(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    body = import_bytes(tenant.id, [{"email": JANE}])
    first = send(client, tenant, body, "k")
    assert first.status_code == 200
    before = everything(engine)
    others = [
        import_bytes(tenant.id, [{"email": "bob@example.com"}]),
        body + b" ",  # the same JSON, not the same bytes
        body.replace(b", ", b","),
        import_bytes(tenant.id, [{"email": JANE}], dry_run=True),
        upsert_bytes(tenant.id, {"email": JANE}),
    ]
    for other in others:
        route = "contacts.upsert" if b'"contact"' in other else "contacts.import"
        response = send(client, tenant, other, "k", route)
        assert response.status_code == 422, (other, response.text)
        assert response.json() == OTHER_BODY
        assert REPLAYED not in response.headers
    assert everything(engine) == before
    assert_replay(first, send(client, tenant, body, "k"))


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("k" * 256, id="256-chars"),
        pytest.param("a b", id="space"),
        pytest.param("a\tb", id="tab"),
        pytest.param("a\x7fb", id="DEL"),
        pytest.param("caf\xe9".encode("latin-1"), id="latin-1"),
        pytest.param("caf\u00e9".encode(), id="utf-8"),
    ],
)
@pytest.mark.parametrize("route", ["contacts.import", "contacts.upsert"])
def test_a_malformed_key_is_a_400(
    client: TestClient, engine: Engine, tenant: Tenant, key: str | bytes, route: str
) -> None:
    body = (
        upsert_bytes(tenant.id, {"email": JANE})
        if route == "contacts.upsert"
        else import_bytes(tenant.id, [{"email": JANE}])
    )
    before = everything(engine)
    response = send(client, tenant, body, key, route)
    assert response.status_code == 400, response.text
    assert response.json() == BAD_KEY
    assert everything(engine) == before


def test_keys_of_1_to_255_visible_characters_are_taken(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    visible = "".join(chr(c) for c in range(0x21, 0x7F))
    keys = ["x", "k" * 255, visible, visible[::-1]]
    for number, key in enumerate(keys):
        body = import_bytes(tenant.id, [{"email": f"c{number}@example.com"}])
        first = send(client, tenant, body, key)
        assert first.status_code == 200, (key, first.text)
        assert_replay(first, send(client, tenant, body, key))
    assert sorted(k for _, k, _ in records(engine)) == sorted(keys)


def test_a_key_belongs_to_its_workspace(
    client: TestClient, engine: Engine, tenant: Tenant, other_tenant: Tenant
) -> None:
    items = [{"email": JANE, "first_name": "Jane"}]
    mine = send(client, tenant, import_bytes(tenant.id, items), "shared")
    theirs = send(client, other_tenant, import_bytes(other_tenant.id, items), "shared")
    for response in (mine, theirs):
        assert response.status_code == 200, response.text
        assert REPLAYED not in response.headers
        assert response.json()["operations"][0]["action"] == "create"
    assert get_contact(client, other_tenant, JANE) is not None
    both = [(tenant.id, "shared", 200), (other_tenant.id, "shared", 200)]
    assert records(engine) == sorted(both)
    # A key used elsewhere is no reason for a 422 either.
    solo = upsert_bytes(other_tenant.id, {"email": "x@example.com"})
    upsert = send(client, other_tenant, solo, "solo", "contacts.upsert")
    assert upsert.status_code == 200, upsert.text
    mine = send(client, tenant, import_bytes(tenant.id, [{"email": "x@example.com"}]), "solo")
    assert mine.status_code == 200 and REPLAYED not in mine.headers


def test_the_record_is_in_the_database_for_every_process(
    make_client: MakeClient, engine: Engine, tenant: Tenant
) -> None:
    one, two = make_client(), make_client()
    body = import_bytes(tenant.id, [{"email": JANE}])
    first = send(one, tenant, body, "across")
    assert_replay(first, send(two, tenant, body, "across"))
    assert send(two, tenant, body + b"\n", "across").json() == OTHER_BODY


# --- dry runs ---------------------------------------------------------------------------------


def test_a_dry_run_with_a_key_stores_nothing(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    dry = import_bytes(tenant.id, [{"email": JANE}], dry_run=True)
    before = everything(engine)
    for _ in range(2):
        response = send(client, tenant, dry, "plan")
        assert response.status_code == 200
        assert response.json()["dry_run"] is True
        assert REPLAYED not in response.headers
    assert everything(engine) == before  # no record, no contact
    real = import_bytes(tenant.id, [{"email": JANE}])
    first = send(client, tenant, real, "plan")
    assert first.status_code == 200 and REPLAYED not in first.headers
    assert first.json()["operations"][0]["action"] == "create"
    assert_replay(first, send(client, tenant, real, "plan"))


def test_a_refused_dry_run_with_a_key_stores_nothing(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    dry = import_bytes(tenant.id, [{"email": JANE}], subscribe_to_lists=["news"], dry_run=True)
    response = send(client, tenant, dry, "plan")
    assert response.status_code == 400
    assert response.json() == {"error": "list not found: news"}
    assert records(engine) == []
    create_list(client, tenant, "news")
    real = import_bytes(tenant.id, [{"email": JANE}], subscribe_to_lists=["news"])
    response = send(client, tenant, real, "plan")
    assert response.status_code == 200, response.text


# --- what is stored, what is not ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(b'{"workspace_id": "acme", "contacts": [', None, id="invalid-json"),
        pytest.param(
            b'{"workspace_id": "acme", "contacts": []}',
            "contacts array cannot be empty",
            id="empty-contacts",
        ),
        pytest.param(
            b'{"workspace_id": "acme", "contacts": [{"email": "a@example.com"}],'
            b' "subscribe_to_lists": ["ghost"]}',
            "list not found: ghost",
            id="unknown-list",
        ),
        pytest.param(
            b'{"workspace_id": "acme", "contacts": [{}], "merge": "neither"}',
            "merge must be one of overwrite, fill_blanks",
            id="bad-merge",
        ),
    ],
)
def test_a_request_level_4xx_is_stored_and_replayed(
    client: TestClient, engine: Engine, tenant: Tenant, body: bytes, error: str | None
) -> None:
    first = send(client, tenant, body, "refused")
    assert first.status_code == 400, first.text
    if error is not None:
        assert first.json() == {"error": error}
    assert records(engine) == [(tenant.id, "refused", 400)]
    create_list(client, tenant, "ghost")  # would make the unknown-list request valid now
    before = everything(engine)
    assert_replay(first, send(client, tenant, body, "refused"))
    assert everything(engine) == before


def test_a_missing_permission_is_stored_like_any_request_error(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    reader = Tenant(tenant.id, make_key(engine, tenant.id, (Permission.CONTACTS_READ,)))
    body = import_bytes(tenant.id, [{"email": JANE}])
    first = send(client, reader, body, "perm")
    assert first.json() == {"error": "write access to contacts required"}
    assert_replay(first, send(client, reader, body, "perm"))


def test_a_401_is_not_stored(
    client: TestClient, engine: Engine, tenant: Tenant, other_tenant: Tenant
) -> None:
    body = import_bytes(other_tenant.id, [{"email": JANE}])  # not the key's workspace
    for _ in range(2):
        response = send(client, tenant, body, "who")
        assert response.status_code == 401
        assert REPLAYED not in response.headers
    assert records(engine) == []
    mine = import_bytes(tenant.id, [{"email": JANE}])
    response = send(client, tenant, mine, "who")
    assert response.status_code == 200 and REPLAYED not in response.headers


@pytest.mark.parametrize(
    ("failure", "status"),
    [(RuntimeError("boom"), 500), (ServiceUnavailable("database busy, retry later"), 503)],
)
def test_a_5xx_is_not_stored_and_a_retry_runs(
    client: TestClient,
    engine: Engine,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
    status: int,
) -> None:
    real_import = service.import_contacts
    calls: list[int] = []

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise failure
        return real_import(*args, **kwargs)

    monkeypatch.setattr(service, "import_contacts", failing_once)
    body = import_bytes(tenant.id, [{"email": JANE}])
    failed = send(client, tenant, body, "flaky")
    assert failed.status_code == status, failed.text
    assert records(engine) == []
    assert get_contact(client, tenant, JANE) is None
    retry = send(client, tenant, body, "flaky")
    assert retry.status_code == 200 and REPLAYED not in retry.headers
    assert retry.json()["operations"][0]["action"] == "create"
    assert len(calls) == 2
    assert_replay(retry, send(client, tenant, body, "flaky"))


@pytest.mark.parametrize("where", ["after-the-writes", "storing-the-answer"])
def test_the_writes_and_the_record_commit_together_or_not_at_all(
    client: TestClient,
    engine: Engine,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    failures: list[str] = []
    if where == "after-the-writes":
        real_import = service.import_contacts

        def writes_then_fails(*args: Any, **kwargs: Any) -> Any:
            real_import(*args, **kwargs)
            failures.append(where)
            raise RuntimeError("after the writes")

        monkeypatch.setattr(service, "import_contacts", writes_then_fails)
    else:

        def store_fails(*args: Any, **kwargs: Any) -> None:
            failures.append(where)
            raise RuntimeError("while storing the answer")

        monkeypatch.setattr(IdempotencyRepository, "store", store_fails)
    before = everything(engine)
    body = import_bytes(tenant.id, [{"email": JANE}, {"email": "bob@example.com"}])
    response = send(client, tenant, body, "atomic")
    assert response.status_code == 500, response.text
    assert failures == [where]
    assert everything(engine) == before  # neither the contacts nor the record
    monkeypatch.undo()
    retry = send(client, tenant, body, "atomic")
    assert retry.status_code == 200 and REPLAYED not in retry.headers
    assert count(engine, contacts) == 2


def test_the_answer_is_stored_with_the_writes(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    body = import_bytes(tenant.id, [{"email": JANE, "first_name": "Jane"}])
    first = send(client, tenant, body, "with")
    table = idempotency_keys.c
    with engine.connect() as conn:
        stored = conn.execute(
            select(table.status_code, table.body, table.created_at, table.expires_at)
        ).one()
    assert stored.status_code == 200
    assert bytes(stored.body) == first.content
    created, expires = _utc(stored.created_at), _utc(stored.expires_at)
    assert expires - created == timedelta(hours=24)
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=5)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- expiry -------------------------------------------------------------------------------------


def test_an_expired_key_runs_again(make_client: MakeClient, engine: Engine, tenant: Tenant) -> None:
    client = make_client(idempotency_ttl_seconds=0.5)
    body = import_bytes(tenant.id, [{"email": JANE}])
    first = send(client, tenant, body, "short")
    assert_replay(first, send(client, tenant, body, "short"))
    time.sleep(0.6)
    again = send(client, tenant, body, "short")
    assert again.status_code == 200 and REPLAYED not in again.headers
    assert again.json()["operations"][0]["action"] == "update"  # it ran
    other = send(client, tenant, import_bytes(tenant.id, [{"email": "b@example.com"}]), "short")
    assert other.json() == OTHER_BODY  # stored anew


def _expired_record(engine: Engine, workspace_id: str, key: str, status: int = 200) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(idempotency_keys).values(
                workspace_id=workspace_id,
                key=key,
                request_hash="0" * 64,
                status_code=status,
                body=b'{"error": "old"}',
                created_at=now - timedelta(days=2),
                expires_at=now - timedelta(days=1),
            )
        )


def test_expired_records_are_purged(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    _expired_record(engine, tenant.id, "old")
    _expired_record(engine, tenant.id, "older")
    body = import_bytes(tenant.id, [{"email": JANE}])
    response = send(client, tenant, body, "old")  # another body: no 422, the record expired
    assert response.status_code == 200, response.text
    assert REPLAYED not in response.headers
    assert response.json()["operations"][0]["action"] == "create"
    assert records(engine) == [(tenant.id, "old", 200)]  # "older" is gone too
    assert_replay(response, send(client, tenant, body, "old"))


# --- contacts.upsert ---------------------------------------------------------------------------


def test_upsert_with_a_key(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    body = upsert_bytes(tenant.id, {"email": JANE, "first_name": "Jane"}, merge="fill_blanks")
    first = send(client, tenant, body, "u1", "contacts.upsert")
    assert first.status_code == 200
    assert first.json() == {"email": JANE, "action": "create", "changed_fields": ["first_name"]}
    before = everything(engine)
    assert_replay(first, send(client, tenant, body, "u1", "contacts.upsert"))
    assert everything(engine) == before
    other = upsert_bytes(tenant.id, {"email": JANE, "first_name": "X"})
    response = send(client, tenant, other, "u1", "contacts.upsert")
    assert response.status_code == 422 and response.json() == OTHER_BODY
    # An invalid contact is the upsert's request-level 400: stored and replayed.
    bad = upsert_bytes(tenant.id, {"email": "nope"})
    refused = send(client, tenant, bad, "u2", "contacts.upsert")
    assert refused.status_code == 400 and refused.json() == {"error": "invalid email format"}
    assert_replay(refused, send(client, tenant, bad, "u2", "contacts.upsert"))
    assert records(engine) == [(tenant.id, "u1", 200), (tenant.id, "u2", 400)]


# --- concurrency --------------------------------------------------------------------------------


def _hold_the_write_path(engine: Engine, workspace_id: str) -> Iterator[None]:
    """While the generator is suspended, nobody can finish an import with lists: on
    PostgreSQL the list row is locked FOR UPDATE (imports take FOR KEY SHARE); on SQLite
    the database write lock is held."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn = conn.execution_options(**{SQLITE_WRITE: True})
            conn.execute(text("SELECT 1"))  # BEGIN IMMEDIATE
        else:
            conn.execute(
                text("SELECT 1 FROM lists WHERE workspace_id = :ws FOR UPDATE"),
                {"ws": workspace_id},
            )
        yield
        conn.rollback()


def test_a_second_request_waits_for_the_first_and_replays_it(
    make_client: MakeClient, engine: Engine, tenant: Tenant
) -> None:
    one, two = make_client(), make_client()
    create_list(one, tenant, "news")
    body = import_bytes(
        tenant.id,
        [{"email": f"c{i}@example.com", "first_name": "C"} for i in range(50)],
        subscribe_to_lists=["news"],
    )
    hold = _hold_the_write_path(engine, tenant.id)
    next(hold)
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(send, client, tenant, body, "race") for client in (one, two)]
        time.sleep(0.5)
        assert not any(f.done() for f in futures)  # both wait
        next(hold, None)
        answers = [f.result(timeout=60) for f in futures]
    replays = [a for a in answers if a.headers.get(REPLAYED) == "true"]
    firsts = [a for a in answers if REPLAYED not in a.headers]
    assert len(replays) == 1 and len(firsts) == 1, [a.headers for a in answers]
    assert_replay(firsts[0], replays[0])
    assert {op["action"] for op in firsts[0].json()["operations"]} == {"create"}
    assert count(engine, contacts) == 50
    assert count(engine, contact_lists) == 50


def test_another_body_sent_while_the_first_runs_waits_then_gets_the_422(
    make_client: MakeClient, engine: Engine, tenant: Tenant
) -> None:
    one, two = make_client(), make_client()
    create_list(one, tenant, "news")
    first = import_bytes(tenant.id, [{"email": JANE}], subscribe_to_lists=["news"])
    other = import_bytes(tenant.id, [{"email": "bob@example.com"}], subscribe_to_lists=["news"])
    hold = _hold_the_write_path(engine, tenant.id)
    next(hold)
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(send, one, tenant, first, "race")
        time.sleep(0.3)
        second = pool.submit(send, two, tenant, other, "race")
        time.sleep(0.3)
        assert not running.done() and not second.done()
        next(hold, None)
        answers = {running.result(timeout=60).status_code, second.result(timeout=60).status_code}
    # Whichever got the key first ran; the other body is refused.
    assert answers == {200, 422}, answers
    assert count(engine, contacts) == 1


@pytest.mark.parametrize("backend", POSTGRES_SERVERS)
def test_waiting_for_a_running_first_ends_at_the_lock_timeout(
    make_client: MakeClient, engine: Engine, tenant: Tenant
) -> None:
    client = make_client(db_lock_timeout_seconds=0.5)
    body = import_bytes(tenant.id, [{"email": JANE}])
    now = datetime.now(UTC)
    with engine.connect() as conn:  # a first request, still running, holds the key
        conn.execute(
            insert(idempotency_keys).values(
                workspace_id=tenant.id,
                key="busy",
                request_hash="0" * 64,
                created_at=now,
                expires_at=now + timedelta(hours=1),
            )
        )
        started = time.monotonic()
        response = send(client, tenant, body, "busy")
        waited = time.monotonic() - started
        conn.rollback()  # the first request fails: it stored nothing
    assert response.status_code == 503, response.text
    assert 0.4 < waited < 10, waited
    assert get_contact(client, tenant, JANE) is None
    retry = send(client, tenant, body, "busy")
    assert retry.status_code == 200 and REPLAYED not in retry.headers


@pytest.mark.slow
def test_identical_requests_at_once_apply_once_on_a_real_server(
    start_server: Callable[..., ServerProcess], client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    create_list(client, tenant, "news")
    server = start_server(workers=2)
    rounds, size = 3, 2000
    with httpx.Client(base_url=server.base_url, timeout=120) as http:
        for number in range(rounds):
            items = [
                {"email": f"r{number}c{i}@example.com", "custom_number_1": i} for i in range(size)
            ]
            body = import_bytes(tenant.id, items, subscribe_to_lists=["news"])
            answers, spans = _at_once(http, tenant, body, f"round-{number}")
            assert [a.status_code for a in answers] == [200, 200], [a.text[:200] for a in answers]
            flags = sorted(a.headers.get(REPLAYED, "") for a in answers)
            assert flags == ["", "true"], flags
            assert answers[0].content == answers[1].content
            operations = answers[0].json()["operations"]
            assert {op["action"] for op in operations} == {"create"}
            assert answers[0].json()["summary"]["created"] == size
            assert max(s for s, _ in spans) < min(e for _, e in spans)  # both ran at once
    assert count(engine, contacts) == rounds * size
    assert count(engine, contact_lists) == rounds * size
    assert [k for _, k, _ in records(engine)] == [f"round-{n}" for n in range(rounds)]


def _at_once(
    http: httpx.Client, tenant: Tenant, body: bytes, key: str
) -> tuple[list[httpx.Response], list[tuple[float, float]]]:
    """Two identical requests sent at the same moment, and when each was in flight."""
    barrier = threading.Barrier(2)
    spans: list[tuple[float, float]] = []

    def fire(_: int) -> httpx.Response:
        barrier.wait()
        started = time.monotonic()
        response = send(http, tenant, body, key)
        spans.append((started, time.monotonic()))
        return response

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(fire, range(2))), spans
