"""The HTTP edge of a real `audience serve`: request heads bounded in size and count, heads and
bodies bounded in time, idle connections closed, concurrent requests and imports bounded per
worker, and a graceful shutdown that finishes what is in flight and drops what is stalled.

Every test talks to the server through raw sockets, so that it can send what no HTTP client
would: a head that never ends, one byte every few hundred milliseconds, a body shorter than its
Content-Length. The limits are configured short (seconds) and the bounds asserted are several
times the configured value: the machine is shared.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select

from audience.config import Settings
from audience.db.engine import build_engine
from audience.db.migrate import upgrade
from audience.db.models import contacts
from audience.kit.server_process import ServerProcess, memory_kib
from tests.conftest import SECRET, Tenant, make_key, make_workspace

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 2
BODY_TIMEOUT = 3
KEEPALIVE_TIMEOUT = 1
MAX_CONCURRENT = 2
#: Bounds on when a deadline is seen to fire: never early, late by a few seconds at most.
EARLY = 0.75
MARGIN = 6.0

MiB = 1 << 20


# --- raw HTTP ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def connect(server: ServerProcess, timeout: float = 30.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_answer(sock: socket.socket, pending: bytearray | None = None) -> Answer:
    """One HTTP response from the socket (its body by Content-Length); what follows it is
    left in `pending` when one is given."""
    buffer = pending if pending is not None else bytearray()
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before an answer: {bytes(buffer)!r}")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = bytearray(rest)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    buffer[:] = body[length:]
    return Answer(int(status_line.split()[1]), headers, bytes(body[:length]))


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server still sends until it closes the connection (a reset is a close)."""
    data = bytearray()
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return bytes(data)


def head(method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def import_head(key: str, length: int) -> bytes:
    return head(
        "POST",
        "/api/contacts.import",
        {
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "Content-Length": str(length),
        },
    )


def import_body(workspace_id: str, count: int, tag: str) -> bytes:
    people = [{"email": f"{tag}{i}@example.com", "first_name": "Edge"} for i in range(count)]
    return json.dumps({"workspace_id": workspace_id, "contacts": people}).encode()


def assert_refused(answer: Answer, status: int, message: str) -> None:
    assert answer.status == status, answer
    assert answer.json() == {"error": message}, answer
    assert answer.headers.get("connection") == "close", answer.headers


# --- one server for the protocol tests --------------------------------------------------------


@dataclass(frozen=True)
class Edge:
    server: ServerProcess
    tenant: Tenant


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    """A one-worker server with short limits, on a SQLite database of its own (the limits
    under test live in front of the database)."""
    folder = tmp_path_factory.mktemp("edge")
    url = f"sqlite:///{folder / 'edge.db'}"
    engine: Engine = build_engine(Settings(database_url=url, secret_key=SECRET))
    upgrade(engine)
    make_workspace(engine, "acme")
    tenant = Tenant(id="acme", key=make_key(engine, "acme"))
    engine.dispose()
    server = ServerProcess(
        database_url=url,
        log_path=folder / "server.log",
        workers=1,
        secret_key=SECRET,
        env={
            "AUDIENCE_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
            "AUDIENCE_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
            "AUDIENCE_KEEPALIVE_TIMEOUT_SECONDS": str(KEEPALIVE_TIMEOUT),
            "AUDIENCE_MAX_CONCURRENT_REQUESTS": str(MAX_CONCURRENT),
        },
    )
    with server:
        yield Edge(server, tenant)


def healthy(server: ServerProcess) -> int:
    return httpx.get(f"{server.base_url}/healthz", timeout=30).status_code


# --- request heads: size and count ---------------------------------------------------------------


def test_a_200_mib_header_is_refused_early_and_never_buffered(edge: Edge) -> None:
    server = edge.server
    [worker] = server.worker_pids()
    # Warm up: the largest head that fits is served, so its buffers exist already.
    with connect(server) as sock:
        sock.sendall(head("GET", "/healthz", {"X-Big": "a" * 60_000}))
        assert read_answer(sock).status == 200
    before = memory_kib(worker)

    sent = 0
    started = time.monotonic()
    with connect(server) as sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
            chunk = b"a" * MiB
            while sent < 200 * MiB:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        elapsed = time.monotonic() - started
        answer = read_answer(sock)
    after = memory_kib(worker)

    assert_refused(answer, 431, "request headers too large")
    assert sent < 32 * MiB, f"the server read {sent / MiB:.0f} MiB of a head before refusing it"
    assert elapsed < 10, elapsed
    grown = {k: (after[k] - before[k]) / 1024 for k in ("VmRSS", "VmHWM")}
    assert all(mib < 20 for mib in grown.values()), f"worker memory grew (MiB): {grown}"
    assert healthy(server) == 200
    print(
        f"[edge] 200 MiB header: refused after {sent / MiB:.0f} MiB sent, {elapsed:.2f}s; "
        f"worker RSS {grown['VmRSS']:+.1f} MiB, peak {grown['VmHWM']:+.1f} MiB"
    )


def test_a_head_just_under_the_size_limit_is_served(edge: Edge) -> None:
    with connect(edge.server) as sock:
        sock.sendall(head("GET", "/healthz", {"X-Big": "b" * 64_000}))
        assert read_answer(sock).status == 200


def extra_headers(count: int) -> dict[str, str]:
    return {f"X-Header-{i}": "v" for i in range(count)}


def test_100_headers_are_served_and_101_refused(edge: Edge) -> None:
    with connect(edge.server) as sock:  # Host and 99 more
        sock.sendall(head("GET", "/healthz", extra_headers(99)))
        assert read_answer(sock).status == 200
    with connect(edge.server) as sock:  # Host and 100 more
        sock.sendall(head("GET", "/healthz", extra_headers(100)))
        assert_refused(read_answer(sock), 431, "too many request headers")
        assert read_until_closed(sock) == b""
    with connect(edge.server) as sock:
        sock.sendall(head("GET", "/healthz", extra_headers(5000)))
        answer = read_answer(sock)
        assert answer.status == 431, answer
        assert answer.json() in (
            {"error": "too many request headers"},
            {"error": "request headers too large"},
        )


# --- deadlines ----------------------------------------------------------------------------------


def test_a_silent_connection_gets_408_and_is_closed(edge: Edge) -> None:
    started = time.monotonic()
    with connect(edge.server) as sock:
        answer = read_answer(sock)
        leftover = read_until_closed(sock)
    elapsed = time.monotonic() - started
    assert_refused(answer, 408, "request headers not received in time")
    assert leftover == b""
    assert HEADER_TIMEOUT * EARLY <= elapsed <= HEADER_TIMEOUT + MARGIN, elapsed


def test_a_trickling_head_gets_408_within_the_header_timeout(edge: Edge) -> None:
    """One byte every 0.3 s keeps the connection busy but does not buy time."""
    started = time.monotonic()
    received = bytearray()
    with connect(edge.server, timeout=0.3) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        while time.monotonic() - started < HEADER_TIMEOUT + MARGIN:
            try:
                sock.sendall(b"z")
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
        elapsed = time.monotonic() - started
        sock.settimeout(10)
        answer = read_answer(sock, received)
    assert_refused(answer, 408, "request headers not received in time")
    assert HEADER_TIMEOUT * EARLY <= elapsed <= HEADER_TIMEOUT + MARGIN, elapsed


def test_a_body_shorter_than_its_content_length_gets_408(edge: Edge) -> None:
    body = import_body(edge.tenant.id, 1, "short")
    started = time.monotonic()
    with connect(edge.server) as sock:
        sock.sendall(import_head(edge.tenant.key, len(body) + 100) + body)
        answer = read_answer(sock)
        leftover = read_until_closed(sock)
    elapsed = time.monotonic() - started
    assert_refused(answer, 408, "request body not received in time")
    assert leftover == b""
    assert BODY_TIMEOUT * EARLY <= elapsed <= BODY_TIMEOUT + MARGIN, elapsed
    assert healthy(edge.server) == 200


def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout(edge: Edge) -> None:
    with connect(edge.server) as sock:
        sock.sendall(head("GET", "/healthz"))
        assert read_answer(sock).status == 200
        sock.sendall(head("GET", "/healthz"))  # the connection is kept alive
        assert read_answer(sock).status == 200
        answered = time.monotonic()
        leftover = read_until_closed(sock)
        elapsed = time.monotonic() - answered
    assert leftover == b"", leftover  # closed quietly: no answer to a request never made
    assert KEEPALIVE_TIMEOUT * EARLY <= elapsed <= KEEPALIVE_TIMEOUT + MARGIN, elapsed


def test_a_fractional_keepalive_timeout_keeps_connections_alive(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keepalive.db'}"
    env = {"AUDIENCE_KEEPALIVE_TIMEOUT_SECONDS": "0.5"}
    server = ServerProcess(url, tmp_path / "server.log", secret_key=SECRET, env=env)
    with server, connect(server, timeout=5) as sock:
        sock.sendall(head("GET", "/healthz"))
        assert read_answer(sock).status == 200
        time.sleep(0.05)  # well within the half second the connection may stay idle
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head("GET", "/healthz"))
        second = read_until_closed(sock)
    assert second.startswith(b"HTTP/1.1 200 "), second[:200]


def test_an_answer_given_before_the_body_was_read_is_the_only_answer(edge: Edge) -> None:
    """A POST with a wrong key is answered 401 before its body is read (bodies are read after
    authentication); the rest of its body is not a request head and must not be answered."""
    body = b'{"workspace_id": "acme", "contacts": [' + b" " * 300_000 + b"]}"
    with connect(edge.server, timeout=5) as sock:
        sock.sendall(import_head("aud_acme_wrongwrongwrong", len(body)))
        pending = bytearray()
        first = read_answer(sock, pending)
        assert first.status == 401, first
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(body)
        try:
            after = bytes(pending) + read_until_closed(sock)
        except TimeoutError:  # kept alive and quiet: as it should be
            after = bytes(pending)
    assert b"HTTP/1.1" not in after, after[:300]


# --- concurrency --------------------------------------------------------------------------------


def test_requests_over_the_concurrency_limit_get_503_but_health_answers(edge: Edge) -> None:
    server, tenant = edge.server, edge.tenant
    body = import_body(tenant.id, 3, "busy")
    held: list[socket.socket] = []
    try:
        for _ in range(MAX_CONCURRENT):  # uploads that stall mid-body hold their slots
            sock = connect(server)
            held.append(sock)
            sock.sendall(import_head(tenant.key, len(body)) + body[:10])
        deadline = time.monotonic() + 10
        with httpx.Client(base_url=server.base_url, headers=edge.tenant.headers) as client:
            while True:  # the held requests reach the app a moment after their heads
                refused = client.get("/api/lists.list", params={"workspace_id": tenant.id})
                if refused.status_code == 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            assert refused.status_code == 503, refused.text
            assert refused.json() == {"error": "server busy, retry later"}
            assert refused.headers["retry-after"].isdigit(), refused.headers
            assert client.get("/healthz").status_code == 200  # exempt from the limit
            # The held uploads complete normally once their bodies arrive.
            for sock in held:
                sock.sendall(body[10:])
            for sock in held:
                answer = read_answer(sock)
                assert answer.status == 200, answer
            # ...and their slots are free again.
            listed = client.get("/api/lists.list", params={"workspace_id": tenant.id})
            assert listed.status_code == 200, listed.text
    finally:
        for sock in held:
            sock.close()


IMPORT_WAIT = 3


def test_imports_over_the_import_slots_wait_their_turn_then_get_503(
    start_server: Callable[..., ServerProcess], tenant: Tenant, engine: Engine
) -> None:
    """AUDIENCE_MAX_CONCURRENT_IMPORTS bodies are read and decoded at once per worker; another
    import waits up to AUDIENCE_IMPORT_WAIT_SECONDS for a slot: it is served if one frees in
    time, refused with 503 (and Retry-After) if none does. Other routes are not held."""
    server = start_server(
        workers=1,
        AUDIENCE_MAX_CONCURRENT_IMPORTS="1",
        AUDIENCE_IMPORT_WAIT_SECONDS=str(IMPORT_WAIT),
        AUDIENCE_BODY_TIMEOUT_SECONDS="60",
    )
    held_body = import_body(tenant.id, 3, "held")
    with (
        connect(server) as held,
        httpx.Client(base_url=server.base_url, headers=tenant.headers, timeout=60) as client,
    ):
        # An upload that stalls mid-body holds the worker's one import slot.
        held.sendall(import_head(tenant.key, len(held_body)) + held_body[:10])

        def post(tag: str) -> tuple[httpx.Response, float]:
            started = time.monotonic()
            answer = client.post("/api/contacts.import", content=import_body(tenant.id, 2, tag))
            return answer, time.monotonic() - started

        deadline = time.monotonic() + 30
        while True:  # the held upload takes its slot a moment after its head arrives
            refused, waited = post("early")
            if refused.status_code == 503 or time.monotonic() > deadline:
                break
        assert refused.status_code == 503, refused.text
        assert refused.json() == {"error": "too many imports in progress, retry later"}
        assert refused.headers["retry-after"] == "1", refused.headers
        assert waited >= IMPORT_WAIT * EARLY, f"refused after {waited:.2f}s, not after waiting"
        assert waited < IMPORT_WAIT + MARGIN, waited
        # Other routes are not held by the import slots.
        listed = client.get("/api/lists.list", params={"workspace_id": tenant.id})
        assert listed.status_code == 200, listed.text

        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(post, "waiting")
            time.sleep(1.0)  # well inside its wait: it is still waiting for the slot
            assert not waiting.done(), waiting.result()[0].text
            held.sendall(held_body[10:])  # the held upload completes and frees the slot
            assert read_answer(held).status == 200
            served, _ = waiting.result(timeout=60)
        assert served.status_code == 200, served.text
        assert served.json()["summary"]["created"] == 2
    assert stored(engine, tenant.id, "held") == 3
    assert stored(engine, tenant.id, "waiting") == 2


# --- graceful shutdown --------------------------------------------------------------------------

SHUTDOWN_TIMEOUT = 3


def stored(engine: Engine, workspace_id: str, tag: str) -> int:
    with engine.connect() as conn:
        found = conn.execute(
            select(func.count()).where(
                contacts.c.workspace_id == workspace_id, contacts.c.email.like(f"{tag}%")
            )
        ).scalar_one()
        conn.rollback()
    return int(found)


def test_sigterm_finishes_the_request_in_flight_and_drops_the_stalled_one(
    start_server: Callable[..., ServerProcess],
    tenant: Tenant,
    engine: Engine,
) -> None:
    server = start_server(
        workers=1,
        AUDIENCE_SHUTDOWN_TIMEOUT_SECONDS=str(SHUTDOWN_TIMEOUT),
        AUDIENCE_BODY_TIMEOUT_SECONDS="60",
    )
    assert server.proc is not None
    stalled_body = import_body(tenant.id, 1, "stalled")
    in_flight_body = import_body(tenant.id, 2000, "inflight")
    with connect(server) as stalled, connect(server) as in_flight:
        stalled.sendall(import_head(tenant.key, len(stalled_body)) + stalled_body[:10])
        in_flight.sendall(import_head(tenant.key, len(in_flight_body)) + in_flight_body[:-1])
        time.sleep(0.5)  # both requests have reached the app: they are in flight

        server.signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(0.5)
        in_flight.sendall(in_flight_body[-1:])  # the last byte arrives after SIGTERM
        answer = read_answer(in_flight)
        assert answer.status == 200, answer
        summary = answer.json()
        assert isinstance(summary, dict)
        assert summary["summary"]["created"] == 2000, summary["summary"]

        code = server.proc.wait(SHUTDOWN_TIMEOUT + 20)
        exited = time.monotonic() - signalled
        assert read_until_closed(stalled) == b""  # dropped, without an answer
    assert exited <= SHUTDOWN_TIMEOUT + 10, exited
    # The stalled upload held the shutdown up to its timeout, not beyond.
    assert exited >= SHUTDOWN_TIMEOUT * EARLY, exited
    # uvicorn re-raises the SIGTERM it handled once it has shut down: death by SIGTERM after a
    # clean shutdown is its normal exit (0 when it had nothing left to re-raise).
    assert code in (0, -signal.SIGTERM), server.log()[-2000:]
    assert "Application shutdown complete" in server.log()
    assert stored(engine, tenant.id, "inflight") == 2000
    assert stored(engine, tenant.id, "stalled") == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.base_url}/healthz", timeout=5)
    print(f"[edge] SIGTERM with a stalled upload: exited in {exited:.2f}s")
