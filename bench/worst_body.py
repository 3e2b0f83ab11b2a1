"""Peak memory of a worker serving the worst valid import body: `python -m bench.worst_body`.

The worst valid body is as large as AUDIENCE_MAX_BODY_BYTES allows (32 MiB) and as costly as
the rules allow per byte: 10,000 contacts whose five `custom_json` fields each hold an array
of `{}` (the most JSON values a byte can carry), every value under its 64 KiB limit. A real
`audience serve --workers 1` on each backend takes one such request, then four sent at once;
the worker's peak RSS (VmHWM, which only grows) is read after each. Targets (issue 11): one
request ≤ 300 MB, four at once ≤ 450 MB. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import tempfile
import time
from pathlib import Path

import httpx
import msgspec
from sqlalchemy import create_engine, text

from audience.kit.server_process import ServerProcess, memory_kib, run_cli
from bench.targets import Target

MAX_BODY = 32 * 1024 * 1024
CONTACTS = 10_000
JSON_FIELDS = ("custom_json_1", "custom_json_2", "custom_json_3", "custom_json_4", "custom_json_5")
ONE = Target(300.0, at_least=False)
FOUR = Target(450.0, at_least=False)
SECRET = "worst-body-bench-secret-key-not-for-production"
WORKSPACE = "worst"


def worst_body(workspace: str, limit: int = MAX_BODY) -> bytes:
    """The largest body under `limit` of CONTACTS contacts with five arrays of `{}` each."""
    per_contact = (limit - 200) // CONTACTS
    overhead = len(_contact(0, 0))
    items = max(0, (per_contact - overhead) // (3 * len(JSON_FIELDS)))  # "{}," per item
    contacts = b",".join(_contact(i, items) for i in range(CONTACTS))
    body = b'{"workspace_id":"' + workspace.encode() + b'","contacts":[' + contacts + b"]}"
    assert len(body) <= limit, len(body)
    return body


def _contact(index: int, items: int) -> bytes:
    value = b"[" + b",".join([b"{}"] * items) + b"]"
    fields = b",".join(b'"' + name.encode() + b'":' + value for name in JSON_FIELDS)
    return b'{"email":"worst' + str(index).encode() + b'@example.com",' + fields + b"}"


def _database(backend: str, directory: Path, pg_url: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{directory / 'worst.db'}"
    admin = create_engine(
        pg_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS audience_bench_worst WITH (FORCE)"))
        conn.execute(text("CREATE DATABASE audience_bench_worst"))
    admin.dispose()
    return pg_url.rsplit("/", 1)[0] + "/audience_bench_worst"


def _peak_mb(server: ServerProcess) -> float:
    return max(memory_kib(pid).get("VmHWM", 0) for pid in server.worker_pids()) / 1024


def measure(backend: str, body: bytes, directory: Path, pg_url: str) -> dict[str, float]:
    url = _database(backend, directory, pg_url)
    run_cli(url, "db", "upgrade", secret_key=SECRET)
    run_cli(url, "workspace", "create", WORKSPACE, "--name", "Worst", secret_key=SECRET)
    key = (
        run_cli(url, "key", "create", WORKSPACE, secret_key=SECRET).stdout.strip().splitlines()[-1]
    )
    server = ServerProcess(url, directory / f"server-{backend}.log", workers=1, secret_key=SECRET)
    server.start()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=300) as client:
            idle = _peak_mb(server)
            started = time.perf_counter()
            answer = client.post("/api/contacts.import", content=body)
            one_seconds = time.perf_counter() - started
            _check(answer)
            one = _peak_mb(server)
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                answers = list(
                    pool.map(lambda _: client.post("/api/contacts.import", content=body), range(4))
                )
            for answer in answers:
                _check(answer, busy_ok=True)
            four = _peak_mb(server)
            busy = sum(a.status_code == 503 for a in answers)
    finally:
        server.stop()
    return {"idle": idle, "one": one, "four": four, "seconds": one_seconds, "busy": busy}


def _check(answer: httpx.Response, *, busy_ok: bool = False) -> None:
    if busy_ok and answer.status_code == 503:
        return
    if answer.status_code != 200:
        raise RuntimeError(f"contacts.import answered {answer.status_code}: {answer.text[:300]}")
    summary = msgspec.json.decode(answer.content)["summary"]
    if summary["errors"]:
        raise RuntimeError(f"the worst body is not valid: {summary}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worst_body", description=__doc__)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    options = parser.parse_args(argv)
    body = worst_body(WORKSPACE)
    print(f"worst valid body: {len(body) / 2**20:.1f} MiB, {CONTACTS:,} contacts")
    lines = [
        "| backend | idle MB | one request MB | four at once MB | one request s | 503 of four |"
    ]
    lines.append("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="audience-worst-") as directory:
        for backend in options.backends.split(","):
            got = measure(backend, body, Path(directory), options.pg_url)
            print(
                f"{backend}: worker peak RSS one request {got['one']:.0f} MB "
                f"{ONE.judged(got['one'])}; four at once {got['four']:.0f} MB "
                f"{FOUR.judged(got['four'])}; idle {got['idle']:.0f} MB; "
                f"one request {got['seconds']:.1f} s; 503 answers of four: {got['busy']:.0f}"
            )
            lines.append(
                f"| {backend} | {got['idle']:.0f} | {got['one']:.0f} {ONE.mark(got['one'])} | "
                f"{got['four']:.0f} {FOUR.mark(got['four'])} | {got['seconds']:.1f} | "
                f"{got['busy']:.0f} |"
            )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
