"""Server-side import jobs against `audience import`: `python -m bench.import_job`.

The acceptance line of import jobs: a 1,000,000-row CSV runs at ≥ 0.8 times the rate of
`audience import` of the same file against the same server, and the server's RSS grows by
≤ 100 MB during upload and import. For each backend this script makes a fresh database, a
real `audience serve` (one worker process, `AUDIENCE_IMPORT_WORKERS=1`), one CSV of
realistic rows (bench/import_memory.py's, with a few bad rows), then:

1. the client path: `audience import FILE --workspace client` in a child process; its wall
   time gives the client rate (the server's RSS is sampled too, for reference);
2. the server-side path, on a server restarted on the same database (so that its memory is
   that of a fresh process, not one that just served a million rows), after a small warm-up
   job: the file streamed to `POST /api/imports.create` by httpx, then `imports.get` polled
   until the job is completed; the time from the first byte sent to `finished_at` gives the
   job rate. Into another workspace, so that both paths create the same contacts.

The RSS of the server's process tree (VmRSS of `audience serve` and its children, summed) is
sampled every 0.2 s by a thread: the baseline is the median over the second before the
upload, the peak the largest sample from the upload to the job's end. Data checks: the job's
counts, both errors reports, both workspaces' stored contacts (count, and the same field
values in both), no error in the server log. The command exits 1 when a data check fails,
not when a target is missed. Not part of the test suite; bench/README.md has the figures.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

from audience.db.models import FIELDS
from audience.kit.server_process import ServerProcess, child_pids, memory_kib, run_cli
from bench import machine
from bench.import_memory import HEADER, MAPPING, _row
from bench.options import WORK_DIR
from bench.server import SECRET_KEY, passed_env, pin_source

AUDIENCE = Path(sys.executable).with_name("audience")
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DATABASE = "audience_bench_jobs"
OUTPUT = WORK_DIR / "RESULTS-import-job.md"
JOB_DIR = WORK_DIR / "import-job"
#: Job rate ÷ client rate at or above which the target is met.
MIN_RATIO = 0.8
#: RSS growth of the server's process tree (MB = 2**20 bytes, as elsewhere in bench/).
MAX_GROWTH_MB = 100.0
SAMPLE_SECONDS = 0.2
POLL_SECONDS = 0.5
CLIENT, JOBS, WARM = "client", "jobs", "warm"
WARM_ROWS = 500
#: Bad rows: every BAD_EVERY rows, one whose email the import refuses and one whose
#: custom_number_1 cell the conversion refuses (both paths count them as errors).
BAD_EVERY = 10_000
BAD_EMAIL_AT, BAD_NUMBER_AT = 4_321, 8_765
SCORE = HEADER.index("Score")
MAP_OPTIONS = {spec.split("=")[0]: spec.split("=")[1] for spec in MAPPING}


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the file ------------------------------------------------------------------------------------


def bad_rows(rows: int) -> int:
    return sum(1 for i in range(rows) if i % BAD_EVERY in (BAD_EMAIL_AT, BAD_NUMBER_AT))


def write_csv(path: Path, rows: int, prefix: str) -> None:
    """import_memory's realistic rows (some quoted multi-line cells), and the bad rows."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for i in range(rows):
            row = _row(i, prefix)
            if i % BAD_EVERY == BAD_EMAIL_AT:
                row[0] = f"{prefix}.{i}.example.com"  # no @: invalid email format
            elif i % BAD_EVERY == BAD_NUMBER_AT:
                row[SCORE] = "lots"  # custom_number_1: expected a number
            writer.writerow(row)


# --- the databases -------------------------------------------------------------------------------


class Database:
    name = ""
    url = ""

    def prepare(self) -> None:
        raise NotImplementedError

    def drop(self) -> None:
        raise NotImplementedError

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def placeholder(self) -> str:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def contacts(self, workspace: str) -> int:
        p = self.placeholder()
        rows = self.query(f"SELECT count(*) FROM contacts WHERE workspace_id = {p}", (workspace,))
        return int(rows[0][0])

    def differences(self, a: str, b: str) -> int:
        """Contacts of one workspace with no contact of the same email and field values in
        the other, both ways (timestamps of the rows themselves left out)."""
        columns = ", ".join(("email", *FIELDS))
        p = self.placeholder()
        total = 0
        for first, second in ((a, b), (b, a)):
            sql = (
                f"SELECT count(*) FROM (SELECT {columns} FROM contacts WHERE workspace_id = {p} "
                f"EXCEPT SELECT {columns} FROM contacts WHERE workspace_id = {p}) AS d"
            )
            total += int(self.query(sql, (first, second))[0][0])
        return total


class Postgres(Database):
    name = "postgres"

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{PG_DATABASE}"))

    def prepare(self) -> None:
        self.drop()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')

    def drop(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url) as conn:
            return list(conn.execute(sql, params).fetchall())

    def placeholder(self) -> str:
        return "%s"

    def version(self) -> str:
        return f"PostgreSQL {self.query('SHOW server_version')[0][0]}"


class Sqlite(Database):
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"

    def prepare(self) -> None:
        self.drop()

    def drop(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal", ".secret"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path, timeout=60)
        try:
            return list(conn.execute(sql, params).fetchall())
        finally:
            conn.close()

    def placeholder(self) -> str:
        return "?"

    def version(self) -> str:
        return f"SQLite {sqlite3.sqlite_version}"


def create_workspace(database_url: str, workspace: str) -> str:
    """The workspace and an all-permissions key; returns the key."""
    run_cli(
        database_url, "workspace", "create", workspace, "--name", workspace, secret_key=SECRET_KEY
    )
    out = run_cli(
        database_url, "key", "create", workspace, "--name", "bench", secret_key=SECRET_KEY
    ).stdout
    return out.strip().splitlines()[-1].strip()


# --- memory of the server ------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += child_pids(current)
    return pids


class RssSampler:
    """VmRSS of a process and its descendants, summed, every SAMPLE_SECONDS (KiB)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = process_tree(self.pid)
            total = sum(memory_kib(pid).get("VmRSS", 0) for pid in pids)
            self.samples.append((time.monotonic(), total))
            self._stop.wait(SAMPLE_SECONDS)

    def between(self, start: float, end: float) -> list[int]:
        return [kib for at, kib in self.samples if start <= at <= end]

    def reset_peaks(self) -> None:
        for pid in process_tree(self.pid):
            with suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")

    def hwm_kib(self) -> int:
        return sum(memory_kib(pid).get("VmHWM", 0) for pid in process_tree(self.pid))


# --- the two paths -------------------------------------------------------------------------------


@dataclass
class ClientRun:
    seconds: float
    exit_code: int
    summary: str
    error_rows: int
    rss_baseline_kib: int
    rss_peak_kib: int


@dataclass
class JobRun:
    seconds: float = 0.0
    upload_seconds: float = 0.0  # first byte sent → 202 (received, spooled, stored)
    receive_seconds: float = 0.0  # first byte sent → the job row inserted (created_at)
    wait_seconds: float = 0.0  # 202 → started_at (a worker took it)
    count_seconds: float = 0.0  # started_at → total_rows seen (±POLL_SECONDS)
    import_seconds: float = 0.0  # total_rows seen → finished_at
    job: dict[str, object] = field(default_factory=dict)
    error_rows: int = 0
    rss_baseline_kib: int = 0
    rss_peak_kib: int = 0
    rss_hwm_kib: int = 0
    phase_peaks_kib: dict[str, int] = field(default_factory=dict)


def run_client(path: Path, key: str, work: Path, server: ServerProcess) -> ClientRun:
    """`audience import` (its defaults: batches of 1,000, 2 in flight) in a child process."""
    errors = work / f"client-{server.port}.errors.csv"
    command = [str(AUDIENCE), "import", str(path), "--workspace", CLIENT, "--errors", str(errors)]
    command += [arg for spec in MAPPING for arg in ("--map", spec)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIENCE_")}
    env |= {"AUDIENCE_URL": server.base_url, "AUDIENCE_API_KEY": key}
    with RssSampler(server.pid) as rss:
        time.sleep(1.0)
        before = time.monotonic()
        with (work / f"client-{server.port}.stderr").open("wb") as stderr:
            done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=stderr)
        after = time.monotonic()
        time.sleep(2 * SAMPLE_SECONDS)
    baseline = int(statistics.median(rss.between(before - 1.0, before) or [0]))
    output = done.stdout.decode(errors="replace").strip().splitlines()
    return ClientRun(
        seconds=after - before,
        exit_code=done.returncode,
        summary=output[-1] if output else "",
        error_rows=_data_rows(errors),
        rss_baseline_kib=baseline,
        rss_peak_kib=max(rss.between(before, after + 1.0) or [0]),
    )


def _data_rows(path: Path) -> int:
    """The rows of an errors file after its header (none written: no row failed)."""
    if not path.exists():
        return 0
    with path.open(newline="", encoding="utf-8") as f:
        return max(0, sum(1 for _ in csv.reader(f)) - 1)


def _instant(text: object) -> float:
    assert isinstance(text, str), text
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def upload(client: httpx.Client, path: Path, workspace: str) -> dict[str, object]:
    """POST /api/imports.create, the file streamed from disk (httpx reads it in chunks)."""
    options = json.dumps({"mapping": MAP_OPTIONS})
    with path.open("rb") as f:
        response = client.post(
            "/api/imports.create",
            data={"workspace_id": workspace, "options": options},
            files={"file": (path.name, f, "text/csv")},
        )
    if response.status_code != 202:
        raise RuntimeError(f"imports.create answered {response.status_code}: {response.text}")
    return dict(response.json()["import"])


def follow(
    client: httpx.Client, workspace: str, job_id: str, timeout: float
) -> Iterator[dict[str, object]]:
    """The job, every POLL_SECONDS, until it is finished."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/api/imports.get", params={"workspace_id": workspace, "id": job_id})
        response.raise_for_status()
        job = dict(response.json()["import"])
        yield job
        if job["status"] in ("completed", "failed", "cancelled"):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} not finished after {timeout:.0f} s: {job}")
        time.sleep(POLL_SECONDS)


def run_job(
    client: httpx.Client, path: Path, workspace: str, rss: RssSampler, timeout: float
) -> JobRun:
    out = JobRun()
    rss.reset_peaks()
    time.sleep(1.0)
    started_wall, started = time.time(), time.monotonic()
    created = upload(client, path, workspace)
    uploaded = time.monotonic()
    counted: float | None = None
    job = created
    for job in follow(client, workspace, str(created["id"]), timeout):
        if counted is None and job["total_rows"] is not None:
            counted = time.monotonic()
    ended = time.monotonic()
    out.job = job
    if job["status"] != "completed":
        return out
    finished = _instant(job["finished_at"])
    out.seconds = finished - started_wall
    out.upload_seconds = uploaded - started
    out.receive_seconds = _instant(job["created_at"]) - started_wall
    taken = _instant(job["started_at"]) - started_wall
    out.wait_seconds = taken - out.upload_seconds
    counted_at = (counted if counted is not None else ended) - started
    out.count_seconds = max(0.0, counted_at - taken)
    out.import_seconds = out.seconds - max(taken, counted_at)
    time.sleep(2 * SAMPLE_SECONDS)
    out.rss_baseline_kib = int(statistics.median(rss.between(started - 1.0, started) or [0]))
    out.rss_peak_kib = max(rss.between(started, ended + SAMPLE_SECONDS) or [0])
    out.rss_hwm_kib = rss.hwm_kib()
    phases = {
        "upload": (started, uploaded),
        "count": (started + taken, started + counted_at),
        "import": (started + counted_at, ended),
    }
    out.phase_peaks_kib = {k: max(rss.between(a, b) or [0]) for k, (a, b) in phases.items()}
    return out


def job_errors(client: httpx.Client, workspace: str, job_id: str) -> int:
    response = client.get("/api/imports.errors", params={"workspace_id": workspace, "id": job_id})
    response.raise_for_status()
    records = csv.reader(io.StringIO(response.text, newline=""))  # cells span lines
    return max(0, sum(1 for _ in records) - 1)


def warm_up(client: httpx.Client, work: Path) -> None:
    """A small job end to end, so that the baseline has the job code loaded and run once."""
    path = work / "warm.csv"
    write_csv(path, WARM_ROWS, f"warm{int(time.time())}")
    job = upload(client, path, WARM)
    *_, job = follow(client, WARM, str(job["id"]), 120)
    if job["status"] != "completed":
        raise RuntimeError(f"the warm-up job ended {job['status']}: {job.get('error')}")


# --- one backend ---------------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    version: str
    rows: int
    bad: int
    client: ClientRun | None = None
    job: JobRun | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def client_rate(self) -> float:
        return self.rows / self.client.seconds if self.client and self.client.seconds else 0.0

    @property
    def job_rate(self) -> float:
        return self.rows / self.job.seconds if self.job and self.job.seconds else 0.0

    @property
    def ratio(self) -> float:
        return self.job_rate / self.client_rate if self.client_rate else 0.0

    @property
    def growth_mb(self) -> float:
        if not self.job:
            return 0.0
        return (self.job.rss_peak_kib - self.job.rss_baseline_kib) / 1024


@contextmanager
def server_on(database_url: str, log_path: Path) -> Iterator[ServerProcess]:
    env = passed_env() | {"AUDIENCE_IMPORT_WORKERS": "1"}
    server = ServerProcess(database_url, log_path, workers=1, secret_key=SECRET_KEY, env=env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def measure(db: Database, path: Path, rows: int, work: Path) -> Result:
    db.prepare()
    result: Result | None = None
    try:
        run_cli(db.url, "db", "upgrade", secret_key=SECRET_KEY)
        keys = {ws: create_workspace(db.url, ws) for ws in (CLIENT, JOBS, WARM)}
        result = Result(db.name, db.version(), rows, bad_rows(rows))
        log_path = work / f"server-{db.name}.log"
        log_path.unlink(missing_ok=True)
        with server_on(db.url, log_path) as server:
            say(f"{db.name}: client path (audience import of {rows:,} rows)")
            result.client = run_client(path, keys[CLIENT], work, server)
            say(f"   {result.client_rate:,.0f} rows/s ({result.client.seconds:.1f} s)")
        with server_on(db.url, log_path) as server:
            say(f"{db.name}: server-side path (imports.create, then imports.get until done)")
            timeout = max(600.0, rows / 200)
            headers = {"Authorization": f"Bearer {keys[WARM]}"}
            with httpx.Client(base_url=server.base_url, headers=headers, timeout=600) as client:
                warm_up(client, work)
            headers = {"Authorization": f"Bearer {keys[JOBS]}"}
            with (
                httpx.Client(base_url=server.base_url, headers=headers, timeout=600) as client,
                RssSampler(server.pid) as rss,
            ):
                result.job = run_job(client, path, JOBS, rss, timeout)
                say(f"   {result.job_rate:,.0f} rows/s ({result.job.seconds:.1f} s)")
                if result.job.job.get("status") == "completed":
                    result.job.error_rows = job_errors(client, JOBS, str(result.job.job["id"]))
        result.problems += check(db, result)
        result.problems += [f"server log: {line}" for line in log_problems_of(log_path)[:5]]
        return result
    finally:
        db.drop()


def log_problems_of(log_path: Path) -> list[str]:
    """Lines of the server log that speak of errors (the markers of bench/server.py)."""
    markers = ("Traceback", "ERROR", "Exception", " 500 ")
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return [line for line in text.splitlines() if any(m in line for m in markers)]


def check(db: Database, result: Result) -> list[str]:
    """What both paths must have done: every good row created, every bad row reported."""
    problems: list[str] = []
    good, bad = result.rows - result.bad, result.bad
    client, job = result.client, result.job
    assert client is not None and job is not None
    if client.exit_code != (1 if bad else 0):
        problems.append(f"audience import exited {client.exit_code}: {client.summary}")
    if client.error_rows != bad:
        problems.append(f"the client's errors file has {client.error_rows} rows, not {bad}")
    counts = job.job
    expected = {
        "status": "completed",
        "total_rows": result.rows,
        "processed_rows": result.rows,
        "created": good,
        "updated": 0,
        "unchanged": 0,
        "errors": bad,
    }
    for key, value in expected.items():
        if counts.get(key) != value:
            problems.append(f"job {key} = {counts.get(key)!r}, expected {value!r}")
    if counts.get("status") == "completed" and job.error_rows != bad:
        problems.append(f"the job's error report has {job.error_rows} rows, not {bad}")
    for workspace in (CLIENT, JOBS):
        stored = db.contacts(workspace)
        if stored != good:
            problems.append(f"workspace {workspace} holds {stored:,} contacts, not {good:,}")
    differing = db.differences(CLIENT, JOBS)
    if differing:
        problems.append(f"{differing:,} contacts differ between the two workspaces")
    return problems


# --- report --------------------------------------------------------------------------------------


def _mb(kib: int) -> str:
    return f"{kib / 1024:,.0f}"


def _judge(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(results: list[Result], rows: int, file_mb: float, source: str) -> str:
    lines = [
        "# Import jobs against `audience import`",
        "",
        f"`python -m bench.import_job --rows {rows}` on {time.strftime('%Y-%m-%d %H:%M')}: "
        f"{rows:,} rows, {file_mb:,.0f} MB of CSV ({bad_rows(rows):,} bad rows); "
        f"{machine.summary()}; {machine.python_version()}; "
        f"source {source} (copied at the start); "
        f"load average at the end {machine.load()}.",
        "",
        "| backend | rows | client rows/s | job rows/s | job ÷ client (≥ 0.8) "
        "| RSS baseline MB | RSS peak MB | RSS growth MB (≤ 100) | data |",
        "|---|---:|---:|---:|---|---:|---:|---|---|",
    ]
    for r in results:
        job, client = r.job, r.client
        assert job is not None and client is not None
        lines.append(
            f"| {r.version} | {r.rows:,} | {r.client_rate:,.0f} | {r.job_rate:,.0f} "
            f"| {r.ratio:.2f} {_judge(r.ratio >= MIN_RATIO)} "
            f"| {_mb(job.rss_baseline_kib)} | {_mb(job.rss_peak_kib)} "
            f"| {r.growth_mb:,.0f} {_judge(r.growth_mb <= MAX_GROWTH_MB)} "
            f"| {'ok' if not r.problems else 'FAIL'} |"
        )
    lines += [
        "",
        "Where the time and memory go (seconds from the first byte of the upload; peaks are "
        "of the sampled RSS in each phase; VmHWM is the sum of the tree's peaks, reset just "
        "before the upload):",
        "",
        "| backend | client s | job s | upload s (of which receiving) | wait for a worker s "
        "| count s | import s | peak MB upload / count / import | VmHWM MB "
        "| client path: server RSS growth MB |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        job, client = r.job, r.client
        assert job is not None and client is not None
        peaks = " / ".join(
            _mb(job.phase_peaks_kib.get(k, 0)) for k in ("upload", "count", "import")
        )
        lines.append(
            f"| {r.backend} | {client.seconds:,.1f} | {job.seconds:,.1f} "
            f"| {job.upload_seconds:,.1f} ({job.receive_seconds:,.1f}) | {job.wait_seconds:,.1f} "
            f"| {job.count_seconds:,.1f} | {job.import_seconds:,.1f} | {peaks} "
            f"| {_mb(job.rss_hwm_kib)} "
            f"| {(client.rss_peak_kib - client.rss_baseline_kib) / 1024:,.0f} |"
        )
    lines += ["", "Data checks:"]
    for r in results:
        if r.problems:
            lines += [f"- {r.backend}: {problem}" for problem in r.problems]
        else:
            lines.append(
                f"- {r.backend}: ok (both exit/counts/report of {r.bad:,} bad rows as expected, "
                f"{r.rows - r.bad:,} contacts in each workspace, the same in both, clean log)"
            )
    return "\n".join(lines) + "\n"


# --- main ----------------------------------------------------------------------------------------


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.import_job",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the CSV")
    parser.add_argument("--backends", default="postgres,sqlite", help="postgres,sqlite")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("AUDIENCE_BENCH_PG_URL", DEFAULT_PG_URL),
        help=f"an admin URL of the PostgreSQL server ({PG_DATABASE} is created and dropped)",
    )
    parser.add_argument("--output", default=str(OUTPUT), help="the Markdown report ('-': none)")
    args = parser.parse_args()
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - {"postgres", "sqlite"}
    if unknown or not args.backends:
        parser.error(f"unknown backends: {', '.join(sorted(unknown)) or '(none)'}")
    return args


def main() -> int:
    args = _arguments()
    JOB_DIR.mkdir(parents=True, exist_ok=True)
    pin_source(machine.ROOT, JOB_DIR)
    source = machine.git_state()  # what the copy holds: src/ may change during the run
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="run-", dir=JOB_DIR) as tmp:
        work = Path(tmp)
        path = work / "contacts.csv"
        say(f"writing {args.rows:,} rows to {path}")
        write_csv(path, args.rows, f"job{int(time.time())}")
        file_mb = path.stat().st_size / 2**20
        for name in args.backends:
            db: Database = Postgres(args.pg_url) if name == "postgres" else Sqlite(work / "jobs.db")
            results.append(measure(db, path, args.rows, work))
            if results[-1].problems:
                for line in (
                    (work / f"server-{name}.log").read_text(errors="replace").splitlines()[-20:]
                ):
                    print(f"   log: {line}")
    text = report(results, args.rows, file_mb, source)
    print(text)
    if args.output != "-":
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
        say(f"written to {args.output}")
    return 1 if any(r.problems for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
