"""kill -9 of a real `audience serve` in the middle of a job, at several moments, then a
restart on the same database: the job resumes from its last checkpoint and ends with exact
counts, every row of the file applied once, none lost."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from audience.db.models import import_jobs, import_row_errors
from audience.kit.server_process import AUDIENCE, ServerProcess, audience_env
from tests.conftest import SECRET, Tenant
from tests.import_jobs.support import (
    FINISHED,
    Jobs,
    contact_count,
    csv_bytes,
    stored_contacts,
    stored_jobs,
)

pytestmark = pytest.mark.slow

ROWS = 50_000
BATCH = 500
#: Every BAD_EVERY-th row has an email no import accepts: its failure is part of the checkpoint.
BAD_EVERY = 1000
SERVER_ENV = {
    "AUDIENCE_IMPORT_WORKERS": "1",
    "AUDIENCE_IMPORT_BATCH_SIZE": str(BATCH),
    "AUDIENCE_IMPORT_LEASE_SECONDS": "2",
    "AUDIENCE_IMPORT_POLL_SECONDS": "0.1",
    "AUDIENCE_AUTO_MIGRATE": "true",
}


def email(i: int) -> str:
    return f"row{i}.example.com" if i % BAD_EVERY == BAD_EVERY - 1 else f"row{i}@example.com"


def the_file(count: int = ROWS) -> bytes:
    rows = [["email", "first_name", "custom_number_1"]]
    rows += [[email(i), f"Row {i}", str(i)] for i in range(count)]
    return csv_bytes(rows)


def checkpoint(engine: Engine, job_id: str) -> dict[str, Any]:
    """The job as the database holds it (the server is dead)."""
    with engine.connect() as conn:
        row = conn.execute(select(import_jobs).where(import_jobs.c.id == job_id)).one()
        failed = conn.execute(
            select(import_row_errors.c.line).where(import_row_errors.c.job_id == job_id)
        ).all()
        conn.rollback()
    return {**row._mapping, "failed_lines": [line for (line,) in failed]}


def test_kill_9_at_several_moments_then_the_job_resumes_with_exact_counts(
    database_url: str, tenant: Tenant, engine: Engine, tmp_path: Path
) -> None:
    bad = ROWS // BAD_EVERY

    def ended(job: dict[str, Any]) -> bool:
        return job["status"] in FINISHED

    #: When to kill the server (or not, when the job has ended before).
    kills: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
        ("as soon as the job runs", lambda job: job["status"] != "queued"),
        ("after its first batches", lambda job: job["processed_rows"] > 0 or ended(job)),
        ("late in the import", lambda job: job["processed_rows"] >= ROWS * 0.6 or ended(job)),
    ]
    seen: list[dict[str, Any]] = []

    def server() -> ServerProcess:
        process = ServerProcess(
            database_url=database_url,
            log_path=tmp_path / "server.log",
            secret_key=SECRET,
            env=SERVER_ENV,
        )
        process.start()
        return process

    job_id = ""
    for moment, when in kills:
        process = server()
        try:
            with httpx.Client(base_url=process.base_url, timeout=30) as client:
                jobs = Jobs(client, tenant)
                if not job_id:
                    job_id = jobs.create(the_file(), "big.csv")["id"]
                before = jobs.get(job_id)
                assert before["status"] in ("queued", "running"), before
                jobs.wait(job_id, until=when)
                process.kill()
        finally:
            process.stop()
        state = checkpoint(engine, job_id)
        seen.append({"moment": moment, **{k: state[k] for k in ("status", "processed_rows")}})
        # What the dead server had committed is exactly its checkpoint: whole batches, their
        # contacts and their failed rows.
        done = state["processed_rows"]
        assert done % BATCH == 0, state
        assert contact_count(engine, tenant.id) == done - done // BAD_EVERY, state
        assert state["failed_lines"] == [
            i + 2 for i in range(done) if email(i) != f"row{i}@example.com"
        ]
        assert state["created"] + state["errors"] == done, state
        if state["status"] == "completed":
            break

    process = server()
    try:
        with httpx.Client(base_url=process.base_url, timeout=30) as client:
            jobs = Jobs(client, tenant)
            job = jobs.completed_job(job_id)
            report = jobs.report(job_id)
    finally:
        process.stop()
    killed_mid_import = [s for s in seen if 0 < s["processed_rows"] < ROWS]
    assert len(killed_mid_import) >= 2, seen
    assert job["total_rows"] == ROWS
    assert (job["created"], job["updated"], job["unchanged"], job["errors"]) == (
        ROWS - bad,
        0,
        0,
        bad,
    ), (job, seen)
    assert [int(record[0]) for record in report[1:]] == [
        i + 2 for i in range(ROWS) if i % BAD_EVERY == BAD_EVERY - 1
    ]
    stored = stored_contacts(engine, tenant.id, "first_name", "custom_number_1")
    assert stored == {
        email(i): (f"Row {i}", float(i)) for i in range(ROWS) if i % BAD_EVERY != BAD_EVERY - 1
    }


def _worker(database_url: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """`audience worker`, the import workers of a host that serves no HTTP."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(AUDIENCE), "worker", "--threads", "2"],
            env=audience_env(database_url, SECRET, {**SERVER_ENV, **env}),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_audience_worker_imports_and_a_stopped_one_hands_its_job_over(
    database_url: str,
    client: TestClient,
    tenant: Tenant,
    other_tenant: Tenant,
    engine: Engine,
    tmp_path: Path,
) -> None:
    """SIGTERM stops a worker after its batch and frees its job at once (no lease to wait
    out): the next worker resumes it from its checkpoint."""
    ours, theirs = Jobs(client, tenant), Jobs(client, other_tenant)  # an app without workers
    rows = 10_000
    big = ours.create(the_file(rows))
    small = theirs.create(csv_bytes([["email"], ["someone@example.com"]]))
    log = tmp_path / "worker.log"
    lease = {"AUDIENCE_IMPORT_LEASE_SECONDS": "600", "AUDIENCE_IMPORT_BATCH_SIZE": "100"}
    first = _worker(database_url, log, **lease)
    try:
        assert theirs.completed_job(small["id"])["created"] == 1
        ours.wait(big["id"], until=lambda job: job["processed_rows"] >= 1000)
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0, log.read_text()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    handed = ours.get(big["id"])
    assert handed["status"] == "running" and 0 < handed["processed_rows"] < rows, handed
    assert contact_count(engine, tenant.id) == handed["processed_rows"] - handed["errors"]
    second = _worker(database_url, log, **lease)  # a lease of 600 s: only a release frees it
    try:
        job = ours.completed_job(big["id"])
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, log.read_text()
    bad = rows // BAD_EVERY
    assert (job["total_rows"], job["created"], job["unchanged"], job["errors"]) == (
        rows,
        rows - bad,
        0,
        bad,
    ), job
    assert contact_count(engine, tenant.id) == rows - bad


# --- an upload over a slow connection ----------------------------------------------------------

BODY_TIMEOUT, UPLOAD_TIMEOUT = 0.5, 2.5


def _multipart(workspace_id: str, content: bytes) -> tuple[str, bytes]:
    boundary = "audience-test-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="workspace_id"\r\n\r\n'
        f"{workspace_id}\r\n--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="slow.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    body += content + f"\r\n--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


def _head(key: str, content_type: str, length: int) -> bytes:
    lines = [
        "POST /api/imports.create HTTP/1.1",
        "Host: 127.0.0.1",
        f"Authorization: Bearer {key}",
        f"Content-Type: {content_type}",
        f"Content-Length: {length}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _answer(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: *(\d+)", head, re.I).group(1))  # type: ignore[union-attr]
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(head.split()[1]), rest[:length]


def test_an_upload_has_its_own_timeout_longer_than_a_bodys(
    database_url: str, tenant: Tenant, engine: Engine, tmp_path: Path
) -> None:
    env = {
        **SERVER_ENV,
        "AUDIENCE_IMPORT_WORKERS": "0",
        "AUDIENCE_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "AUDIENCE_UPLOAD_TIMEOUT_SECONDS": str(UPLOAD_TIMEOUT),
    }
    process = ServerProcess(database_url, tmp_path / "server.log", secret_key=SECRET, env=env)
    process.start()
    try:
        content_type, body = _multipart(tenant.id, the_file(2000))
        pieces = [body[i : i + len(body) // 4 + 1] for i in range(0, len(body), len(body) // 4 + 1)]
        with socket.create_connection(("127.0.0.1", process.port), timeout=30) as sock:
            sock.sendall(_head(tenant.key, content_type, len(body)))
            for piece in pieces:  # four pieces over three times the body timeout
                time.sleep(BODY_TIMEOUT)
                sock.sendall(piece)
            status, answer = _answer(sock)
        assert status == 202, answer
        assert json.loads(answer)["import"]["status"] == "queued"

        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", process.port), timeout=30) as sock:
            sock.sendall(_head(tenant.key, content_type, len(body)) + body[: len(body) // 2])
            status, answer = _answer(sock)  # the rest never comes
        elapsed = time.monotonic() - started
        assert status == 408, answer
        assert json.loads(answer) == {"error": "request body not received in time"}
        assert elapsed >= UPLOAD_TIMEOUT * 0.75, elapsed  # the upload's timeout, not a body's
    finally:
        process.stop()
    assert stored_jobs(engine) == (1, 1)  # the stalled upload left nothing behind
