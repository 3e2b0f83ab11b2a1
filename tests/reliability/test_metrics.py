"""GET /metrics of a real two-worker `audience serve`: every worker's counts add up, labels
name routes, statuses, actions and limits only, and each refusal is counted under its limit.

Which worker serves a connection is the kernel's choice: the requests are sent concurrently on
fresh connections until both workers have served some (read from each worker's own sample
files in the multiprocess folder), and the totals must then equal what was sent, exactly.
"""

from __future__ import annotations

import contextlib
import select
import shutil
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from audience.kit.crypto import parse_api_key
from audience.kit.server_process import ServerProcess
from tests.conftest import SECRET, Tenant

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 2
BODY_TIMEOUT = 3  # longer than the stalled uploads below are held
KEEPALIVE_TIMEOUT = 1  # shorter than the header timeout: idle connections close quietly
#: How long a write waits for a lock before 503 (the pool gauge is read meanwhile).
LOCK_WAIT = 2
#: Per worker; the client sends at most this many requests at once, except to be refused.
MAX_CONCURRENT = 2
HELD = 3 * MAX_CONCURRENT
ALLOWED_LABELS = {"method", "route", "status", "le", "action", "limit"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(exposition: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(server: ServerProcess) -> tuple[str, Samples]:
    answer = httpx.get(f"{server.base_url}/metrics", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain"), answer.headers
    return answer.text, parse(answer.text)


def multiproc_folder(server: ServerProcess) -> Path:
    """The folder `audience serve` gave its workers (PROMETHEUS_MULTIPROC_DIR)."""
    for pid in server.worker_pids():
        for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            name, _, folder = entry.partition(b"=")
            if name == b"PROMETHEUS_MULTIPROC_DIR":
                return Path(folder.decode())
    raise AssertionError("no worker has PROMETHEUS_MULTIPROC_DIR")


def per_worker(server: ServerProcess, tmp_path: Path) -> dict[int, Samples]:
    """Each worker's own samples, read from its files alone."""
    folder = multiproc_folder(server)
    found: dict[int, Samples] = {}
    for pid in server.worker_pids():
        alone = tmp_path / f"worker-{pid}-{uuid.uuid4().hex[:6]}"
        alone.mkdir()
        for path in folder.glob(f"*_{pid}.db"):
            shutil.copyfile(path, alone / path.name)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
        found[pid] = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect()
            for s in family.samples
        }
        shutil.rmtree(alone)
    return found


def raw(server: ServerProcess, data: bytes, timeout: float = 30) -> bytes:
    """Send `data` on a fresh connection; everything answered until the server closes it."""
    received = bytearray()
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
    return bytes(received)


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split()[1])


@contextlib.contextmanager
def database_locked(engine: Engine, database_url: str) -> Iterator[None]:
    """A write lock held from outside the server: a write waits for it (connection held)."""
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


def test_counters_add_up_over_workers_and_count_every_refusal(
    start_server: Callable[..., ServerProcess],
    tenant: Tenant,
    engine: Engine,
    database_url: str,
    tmp_path: Path,
) -> None:
    server = start_server(
        workers=2,
        AUDIENCE_METRICS="true",
        AUDIENCE_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        AUDIENCE_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
        AUDIENCE_KEEPALIVE_TIMEOUT_SECONDS=str(KEEPALIVE_TIMEOUT),
        AUDIENCE_MAX_CONCURRENT_REQUESTS=str(MAX_CONCURRENT),
        AUDIENCE_DB_LOCK_TIMEOUT_SECONDS=str(LOCK_WAIT),
        AUDIENCE_SQLITE_BUSY_TIMEOUT_SECONDS=str(LOCK_WAIT),
        # No background work that holds a pooled connection when the gauge is read: no
        # import worker polling, no statistics check during the test.
        AUDIENCE_IMPORT_WORKERS="0",
        AUDIENCE_STATISTICS_CHECK_SECONDS="3600",
    )
    url, ws = server.base_url, tenant.id
    token = uuid.uuid4().hex[:12]

    # --- requests, until both workers have served some --------------------------------------
    def listed(_: int) -> int:
        return httpx.get(
            f"{url}/api/lists.list", params={"workspace_id": ws}, headers=tenant.headers
        ).status_code

    sent, served = 0, [0.0]
    with ThreadPoolExecutor(MAX_CONCURRENT) as pool:
        for _ in range(20):
            assert set(pool.map(listed, range(20))) == {200}
            sent += 20
            served = [
                value(
                    s,
                    "audience_http_requests_total",
                    method="GET",
                    route="/api/lists.list",
                    status="200",
                )
                for s in per_worker(server, tmp_path).values()
            ]
            if len(served) == 2 and min(served) > 0:
                break
    assert len(served) == 2 and min(served) > 0, f"one worker served all {sent}: {served}"

    unauthorized = [
        httpx.get(f"{url}/api/lists.list", params={"workspace_id": ws}) for _ in range(7)
    ]
    assert {a.status_code for a in unauthorized} == {401}
    unmatched = [
        httpx.get(f"{url}/nothing/{token}", params={"email": f"{token}@x.io"}) for _ in range(5)
    ]
    assert {a.status_code for a in unmatched} == {404}
    for i in range(3):  # three creates, then the same three updated
        contact = {"email": f"u{i}{token}@example.com", "first_name": "One"}
        body = {"workspace_id": ws, "contact": contact}
        answer = httpx.post(f"{url}/api/contacts.upsert", headers=tenant.headers, json=body)
        assert answer.status_code == 200, answer.text
        body = {"workspace_id": ws, "contact": {**contact, "first_name": "Two"}}
        answer = httpx.post(f"{url}/api/contacts.upsert", headers=tenant.headers, json=body)
        assert answer.status_code == 200, answer.text
    people: list[dict[str, Any]] = [{"email": f"i{i}{token}@example.com"} for i in range(4)]
    people += [
        {"email": "not an email"},
        {"email": f"x{token}@example.com", "custom_number_1": "NaN!"},
    ]
    answer = httpx.post(
        f"{url}/api/contacts.import",
        headers=tenant.headers,
        json={"workspace_id": ws, "contacts": people},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["summary"]["errors"] == 2, answer.text

    exposition, samples = scrape(server)
    requests = "audience_http_requests_total"
    assert value(samples, requests, method="GET", route="/api/lists.list", status="200") == sent
    assert value(samples, requests, method="GET", route="/api/lists.list", status="401") == 7
    assert value(samples, requests, method="GET", route="(unmatched)", status="404") == 5
    assert value(samples, requests, method="POST", route="/api/contacts.upsert", status="200") == 6
    assert value(samples, requests, method="POST", route="/api/contacts.import", status="200") == 1
    latency = "audience_http_request_duration_seconds_count"
    assert value(samples, latency, method="GET", route="/api/lists.list") == sent + 7
    written = "audience_contacts_written_total"
    assert value(samples, written, action="create") == 3 + 4
    assert value(samples, written, action="update") == 3
    assert value(samples, "audience_import_rows_rejected_total") == 2
    assert value(samples, "audience_db_pool_connections_in_use") == 0
    assert value(samples, "audience_db_pool_waits_total") == 0

    # --- labels: routes, statuses, actions and limits; never a workspace, key or email -------
    parsed = parse_api_key(tenant.key)
    assert parsed is not None
    for leak in (ws, parsed.key_id, tenant.key, token, "@", "example.com"):
        assert leak not in exposition, leak
    for name, labels in samples:
        assert {label for label, _ in labels} <= ALLOWED_LABELS, (name, labels)
        route = dict(labels).get("route")
        assert (
            route is None
            or route == "(unmatched)"
            or route.startswith(("/api/", "/healthz", "/metrics"))
        ), route

    # --- refusals, each under its limit -------------------------------------------------------
    observed: dict[str, int] = {}

    def refused(limit: str, answer: bytes, status: int) -> None:
        assert status_of(answer) == status, answer[:300]
        observed[limit] = observed.get(limit, 0) + 1

    empty = f'{{"workspace_id": "{ws}", "contacts": []}}'.encode()
    import_head = (
        f"POST /api/contacts.import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.key}\r\n"
        "Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    short = import_head.format(length=len(empty) + 50).encode() + empty
    with ThreadPoolExecutor(2) as pool:  # the two deadlines run out side by side
        silent = pool.submit(raw, server, b"")
        stalled = pool.submit(raw, server, short)
        for _ in range(2):
            big = f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 70_000}\r\n\r\n".encode()
            refused("header_bytes", raw(server, big), 431)
        many = "".join(f"X-H{i}: v\r\n" for i in range(120))
        for _ in range(2):
            refused(
                "header_count",
                raw(server, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode()),
                431,
            )
        too_big = import_head.format(length=64 * 1024 * 1024).encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(too_big)
            refused("body_bytes", sock.recv(65536), 413)
        refused("header_timeout", silent.result(), 408)
        refused("body_timeout", stalled.result(), 408)

    # Concurrency: more uploads stalled mid-body than both workers have slots, then probes.
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(HELD)]
    try:
        for sock in held:
            sock.sendall(import_head.format(length=len(empty)).encode() + empty[:5])
        time.sleep(0.5)  # those that found their worker busy have been answered at once
        answered, _, _ = select.select(held, [], [], 0)
        for sock in answered:
            refused("concurrent_requests", sock.recv(65536), 503)
        for _ in range(4):
            probe = httpx.get(
                f"{url}/api/lists.list", params={"workspace_id": ws}, headers=tenant.headers
            )
            if probe.status_code == 503:
                assert probe.json() == {"error": "server busy, retry later"}
                assert probe.headers["retry-after"].isdigit()
                observed["concurrent_requests"] = observed.get("concurrent_requests", 0) + 1
            else:
                assert probe.status_code == 200, probe.text
            assert httpx.get(f"{url}/healthz").status_code == 200  # exempt
    finally:
        for sock in held:
            sock.close()
    assert observed.get("concurrent_requests", 0) >= HELD - 2 * MAX_CONCURRENT

    # A write waiting for a lock holds a pool connection (the gauge sees it), then gives up:
    # 503, counted as database_busy.
    answers: list[httpx.Response] = []
    upsert = {"workspace_id": ws, "contact": {"email": f"w{token}@example.com"}}

    def wait_for_the_lock() -> None:
        answers.append(
            httpx.post(
                f"{url}/api/contacts.upsert", headers=tenant.headers, json=upsert, timeout=60
            )
        )

    with database_locked(engine, database_url):
        waiting = threading.Thread(target=wait_for_the_lock)
        waiting.start()
        deadline = time.monotonic() + LOCK_WAIT
        while value(scrape(server)[1], "audience_db_pool_connections_in_use") < 1:
            assert time.monotonic() < deadline, "the waiting write holds no connection"
            time.sleep(0.05)
        waiting.join(60)
    assert [a.status_code for a in answers] == [503], [a.text for a in answers]
    assert answers[0].json() == {"error": "database busy, retry later"}
    observed["database_busy"] = 1

    time.sleep(0.5)  # the last requests' counts are written after their answers
    _, samples = scrape(server)
    for limit, count in observed.items():
        assert value(samples, "audience_requests_refused_total", limit=limit) == count, (
            limit,
            count,
        )
    counted = {
        dict(labels)["limit"]
        for (name, labels) in samples
        if name == "audience_requests_refused_total"
    }
    assert counted == set(observed), (counted, observed)
    assert value(samples, "audience_db_pool_connections_in_use") == 0
    assert value(samples, written, action="create") == 3 + 4  # the refused write wrote nothing
    print(f"[metrics] {sent} requests over 2 workers ({served}); refusals {observed}")


def test_metrics_are_404_without_the_setting(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    with ServerProcess(url, tmp_path / "server.log", workers=1, secret_key=SECRET) as server:
        answer = httpx.get(f"{server.base_url}/metrics", timeout=30)
    assert answer.status_code == 404, answer.text
    assert answer.json() == {"error": "not found"}
