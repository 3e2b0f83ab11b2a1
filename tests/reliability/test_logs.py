"""What a real `audience serve` writes to its log: one access line per request (plain or JSON),
request ids, a short warning for a client that left, and never a key, an email, a query
string or a body, whatever the request's fate (success, 400, 401, 404, database busy, an
unexpected database error).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from audience.kit.crypto import parse_api_key
from audience.kit.server_process import ServerProcess
from tests.conftest import Tenant

pytestmark = pytest.mark.slow

PLAIN_ACCESS = re.compile(
    r"^\S+ \S+ INFO audience\.access: (?P<method>[A-Z]+) (?P<route>\S+) (?P<status>\d{3}) "
    r"(?P<ms>\d+\.\d)ms workspace=(?P<workspace>\S+) key=(?P<key>\S+) "
    r"request_id=(?P<request_id>\S+)$"
)
DISCONNECT_WARNING = "client disconnected before its request was read"
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """The server logs a request after answering it: give the line a moment to arrive."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the server's log")
        time.sleep(0.05)


def access_entries(log: str, log_format: str) -> list[dict[str, Any]]:
    """Every access-log line as a dict of its fields (both formats give the same keys)."""
    entries = []
    for line in log.splitlines():
        if log_format == "json":
            record = json.loads(line)
            if record["logger"] == "audience.access":
                entries.append(record)
            continue
        if " audience.access: " not in line:
            continue
        match = PLAIN_ACCESS.match(line)
        assert match, f"malformed access line: {line!r}"
        found = match.groupdict()
        entries.append(
            {
                "http_method": found["method"],
                "route": found["route"],
                "status": int(found["status"]),
                "duration_ms": float(found["ms"]),
                "workspace": None if found["workspace"] == "-" else found["workspace"],
                "key_id": None if found["key"] == "-" else found["key"],
                "request_id": found["request_id"],
            }
        )
    return entries


def by_request_id(server: ServerProcess, log_format: str, ids: set[str]) -> dict[str, Any]:
    """The one access entry of each request id (waiting until each has been written)."""

    def entries() -> list[dict[str, Any]]:
        return [e for e in access_entries(server.log(), log_format) if e["request_id"] in ids]

    wait_for(lambda: {e["request_id"] for e in entries()} == ids)
    found = entries()
    assert len(found) == len(ids), [e for e in found if sum(f is e for f in found) > 1]
    return {e["request_id"]: e for e in found}


def assert_no_traceback(log: str) -> None:
    assert "Traceback" not in log, log[-3000:]
    assert "Exception in ASGI application" not in log, log[-3000:]


# --- access log lines ---------------------------------------------------------------------------


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_one_access_line_per_request_with_its_fields(
    log_format: str, start_server: Callable[..., ServerProcess], tenant: Tenant
) -> None:
    server = start_server(workers=1, AUDIENCE_LOG_FORMAT=log_format)
    parsed = parse_api_key(tenant.key)
    assert parsed is not None
    key_id = parsed.key_id
    ws = tenant.id
    upsert = {"workspace_id": ws, "contact": {"email": "someone@example.com"}}
    # (method, path, params, json, authenticated) -> (route, status, workspace, key)
    requests: list[tuple[str, str, dict[str, str], Any, bool, tuple[str, int, bool]]] = [
        ("GET", "/healthz", {}, None, False, ("/healthz", 200, False)),
        (
            "GET",
            "/api/lists.list",
            {"workspace_id": ws},
            None,
            True,
            ("/api/lists.list", 200, True),
        ),
        ("POST", "/api/contacts.upsert", {}, upsert, True, ("/api/contacts.upsert", 200, True)),
        (
            "GET",
            "/api/contacts.getByEmail",
            {"workspace_id": ws, "email": "nobody@example.com"},
            None,
            True,
            ("/api/contacts.getByEmail", 404, True),
        ),
        (
            "POST",
            "/api/lists.create",
            {},
            {"workspace_id": ws},
            True,
            ("/api/lists.create", 400, True),
        ),
        (
            "GET",
            "/api/lists.list",
            {"workspace_id": ws},
            None,
            False,
            ("/api/lists.list", 401, False),
        ),
        ("GET", "/no/such/route", {"q": "1"}, None, False, ("(unmatched)", 404, False)),
    ]
    expected: dict[str, tuple[str, str, int, bool]] = {}
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for method, path, params, body, authenticated, (route, status, known) in requests:
            request_id = f"test-{uuid.uuid4().hex[:12]}"
            headers = {"X-Request-ID": request_id, **(tenant.headers if authenticated else {})}
            answer = client.request(method, path, params=params, json=body, headers=headers)
            assert answer.status_code == status, (path, answer.text)
            assert answer.headers["x-request-id"] == request_id
            expected[request_id] = (method, route, status, known)

    entries = by_request_id(server, log_format, set(expected))
    for request_id, (method, route, status, known) in expected.items():
        entry = entries[request_id]
        assert entry["http_method"] == method, entry
        assert entry["route"] == route, entry
        assert entry["status"] == status, entry
        assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] >= 0, entry
        assert entry["workspace"] == (ws if known else None), entry
        assert entry["key_id"] == (key_id if known else None), entry

    log = server.log()
    if log_format == "json":  # one JSON object a line, every line, not only access lines
        for line in log.splitlines():
            record = json.loads(line)
            assert {"time", "level", "logger", "message"} <= set(record), record
    assert tenant.key not in log
    assert "someone@example.com" not in log and "nobody@example.com" not in log
    assert "q=1" not in log and "workspace_id=" not in log
    assert_no_traceback(log)


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_request_ids_are_kept_when_sane_and_replaced_otherwise(
    log_format: str, start_server: Callable[..., ServerProcess]
) -> None:
    server = start_server(workers=1, AUDIENCE_LOG_FORMAT=log_format)
    sane = ["Client-1.2:3@4/5+6=7-8_9", "a", "x" * 128]
    insane = ["has space", "x" * 129, "semi;colon", "<script>", 'quote"d', "tab\there", ""]
    kept: set[str] = set()
    generated: dict[str, str] = {}
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for value in sane:
            answer = client.get("/healthz", headers={"X-Request-ID": value})
            assert answer.headers["x-request-id"] == value
            kept.add(value)
        for value in insane:
            answer = client.get("/healthz", headers={"X-Request-ID": value})
            replacement = answer.headers["x-request-id"]
            assert GENERATED_ID.fullmatch(replacement), (value, replacement)
            generated[value] = replacement
        plain = client.get("/healthz").headers["x-request-id"]  # none given: one generated
        assert GENERATED_ID.fullmatch(plain), plain
    assert len({*generated.values(), plain}) == len(insane) + 1  # a fresh id each time

    by_request_id(server, log_format, kept | set(generated.values()) | {plain})
    log = server.log()
    for value in insane:
        if value:
            assert value not in log, value
    assert_no_traceback(log)


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_a_client_gone_mid_body_is_one_short_warning(
    log_format: str, start_server: Callable[..., ServerProcess], tenant: Tenant
) -> None:
    server = start_server(workers=1, AUDIENCE_LOG_FORMAT=log_format)
    request_id = f"gone-{uuid.uuid4().hex[:12]}"
    head = (
        "POST /api/contacts.import HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {tenant.key}\r\nContent-Type: application/json\r\n"
        f"X-Request-ID: {request_id}\r\nContent-Length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head.encode() + b'{"workspace_id": "acme", "contacts": [{"email": "gone@')
        time.sleep(0.5)  # the app is reading the body
    wait_for(lambda: DISCONNECT_WARNING in server.log())
    lines = server.log().splitlines()
    warnings = [line for line in lines if DISCONNECT_WARNING in line]
    assert len(warnings) == 1, warnings
    assert request_id in warnings[0]
    assert "/api/contacts.import" in warnings[0]
    if log_format == "json":
        assert json.loads(warnings[0])["level"] == "WARNING"
    else:
        assert " WARNING " in warnings[0]
    # The next line, if any, is another log record, not the rest of a traceback.
    following = lines[lines.index(warnings[0]) + 1 :]
    assert all(not line.startswith((" ", "\t")) for line in following), following
    assert len(warnings[0]) < 300, warnings[0]
    assert "gone@" not in server.log()
    assert_no_traceback(server.log())


# --- nothing secret reaches the log -------------------------------------------------------------


@contextlib.contextmanager
def database_locked(engine: Engine, database_url: str) -> Iterator[None]:
    """The contacts table locked from outside the server, so that a write must wait."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
            conn.execute("ROLLBACK")
        finally:
            conn.close()
        return
    with engine.connect() as pg:
        pg.execute(text("LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE"))
        yield
        pg.rollback()


@contextlib.contextmanager
def insert_fails_on(engine: Engine, first_name: str) -> Iterator[None]:
    """Make inserting a contact named `first_name` fail with an unexpected database error
    (PostgreSQL's check_violation quotes the failing row, email included)."""
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER leak_probe BEFORE INSERT ON contacts "
                    f"WHEN NEW.first_name = '{first_name}' "
                    "BEGIN SELECT RAISE(ABORT, 'probe refused the row'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "ALTER TABLE contacts ADD CONSTRAINT leak_probe "
                    f"CHECK (first_name IS DISTINCT FROM '{first_name}')"
                )
            )
    try:
        yield
    finally:
        with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.execute(text("DROP TRIGGER leak_probe"))
            else:
                conn.execute(text("ALTER TABLE contacts DROP CONSTRAINT leak_probe"))


def test_keys_emails_query_strings_and_bodies_never_reach_the_log(
    start_server: Callable[..., ServerProcess],
    tenant: Tenant,
    engine: Engine,
    database_url: str,
) -> None:
    server = start_server(
        workers=1,
        AUDIENCE_DB_LOCK_TIMEOUT_SECONDS="1",
        AUDIENCE_SQLITE_BUSY_TIMEOUT_SECONDS="1",
    )
    token = uuid.uuid4().hex[:16]
    email = f"leak{token}@example.com"
    boom_email = f"boom{token}@example.com"
    boom_name = f"Boom{token}"
    query = f"q{token}"
    ws = tenant.id
    secret_part = tenant.key[-32:]
    wrong_key = tenant.key[:-1] + ("A" if tenant.key[-1] != "A" else "B")
    auth = tenant.headers
    imported = {"workspace_id": ws, "contacts": [{"email": email, "first_name": f"N{token}"}]}
    statuses: list[int] = []

    with httpx.Client(base_url=server.base_url, timeout=60) as client:

        def send(method: str, path: str, expect: int, **kwargs: Any) -> httpx.Response:
            answer = client.request(method, path, **kwargs)
            assert answer.status_code == expect, (path, answer.status_code, answer.text)
            statuses.append(expect)
            return answer

        send("POST", f"/api/contacts.import?tag={query}", 200, headers=auth, json=imported)
        upsert = {"workspace_id": ws, "contact": {"email": email, "last_name": f"L{token}"}}
        send("POST", "/api/contacts.upsert", 200, headers=auth, json=upsert)
        found = {"workspace_id": ws, "email": email, "tag": query}
        send("GET", "/api/contacts.getByEmail", 200, headers=auth, params=found)
        send(
            "GET",
            "/api/contacts.list",
            200,
            headers=auth,
            params={"workspace_id": ws, "email": email},
        )
        # 401: a wrong key, another workspace, no key; 400: invalid bodies; 404s.
        send(
            "POST",
            "/api/contacts.import",
            401,
            headers={"Authorization": f"Bearer {wrong_key}"},
            json=imported,
        )
        send(
            "POST",
            "/api/contacts.import",
            401,
            headers=auth,
            json={**imported, "workspace_id": "globex"},
        )
        send("GET", "/api/contacts.getByEmail", 401, params=found)
        send(
            "POST",
            "/api/contacts.import",
            400,
            headers={**auth, "Content-Type": "application/json"},
            content=f'{{"workspace_id": "{ws}", "contacts": [{{"email": "{email}"'.encode(),
        )
        send(
            "POST",
            "/api/contacts.upsert",
            400,
            headers=auth,
            json={"workspace_id": ws, "contact": {"email": f"{token}@"}},
        )
        bad_rows = {"workspace_id": ws, "contacts": [{"email": email, "custom_number_1": token}]}
        send("POST", "/api/contacts.import", 200, headers=auth, json=bad_rows)
        missing = {"workspace_id": ws, "email": f"missing{token}@example.com"}
        send("GET", "/api/contacts.getByEmail", 404, headers=auth, params=missing)
        send("GET", f"/api/{token}", 404, headers=auth, params={"email": email})
        # The database busy: a write that waits for a lock longer than allowed.
        with database_locked(engine, database_url):
            send("POST", "/api/contacts.import", 503, headers=auth, json=imported)
        # An unexpected database error, whose driver message quotes the row.
        with insert_fails_on(engine, boom_name):
            boom = {"workspace_id": ws, "contact": {"email": boom_email, "first_name": boom_name}}
            answer = send("POST", "/api/contacts.upsert", 500, headers=auth, json=boom)
            assert answer.json() == {"error": "internal server error"}
        # The log has caught up once the last request's access line is there.
        last = send("GET", "/healthz", 200).headers["x-request-id"]
    wait_for(lambda: last in server.log())

    log = server.log()
    assert "unexpected " in log  # the 500 was logged (without its message)...
    assert "probe refused the row" not in log and "leak_probe" not in log  # ...really without
    for secret in (tenant.key, secret_part, wrong_key, "Bearer", token, email, boom_email, query):
        assert secret not in log, f"{secret!r} in the server's log:\n{log[-3000:]}"
    access = [line for line in log.splitlines() if " audience.access: " in line]
    assert len(access) >= len(statuses)
    print(f"[logs] {len(statuses)} requests (statuses {sorted(set(statuses))}): nothing leaked")
