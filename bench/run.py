"""Orchestration: for each backend, a fresh database, the real server, the cases, the report.

For each backend (PostgreSQL in a fresh database, SQLite in a fresh file under bench/.work/),
one server (`audience serve --workers 2`) serves every repeat. On PostgreSQL the data is
first loaded once and ANALYZEd (see Postgres.prime_statistics), and every path is warmed up
with a few hundred other contacts; neither is timed. Per repeat, for each group of
cases (creates then updates in batches of 10,000; the same in batches of 1,000; the same in
batches of 10,000 with `subscribe_to_lists` of two lists), every *path* (the import over
HTTP, then each floor variant; the order rotates from one repeat to the next) starts from
empty contacts and memberships tables and applies the same batches, one request or
transaction at a time. Then the naive path upserts a sample one request per contact. The
first repeat also checks that what every path stored is what the data says it must be.

Rates are contacts per second of wall time spent in requests (import) or in transactions
(floor); ratios are computed per repeat (import and floor measured within a minute or two of
each other, on the same tables) and their median over the repeats is reported.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import msgspec
import psycopg
from sqlalchemy import func, select

from audience.config import Settings
from audience.db.engine import build_engine
from audience.db.migrate import upgrade
from audience.db.models import DATETIME_FIELDS, FIELDS, contact_lists, contacts
from audience.kit.clock import as_utc
from bench import data
from bench.floor import PG_VARIANTS, Floor, PostgresFloor, SqliteFloor
from bench.naive import naive_rate
from bench.server import SECRET_KEY, Server, create_workspace, memory_kib

BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR / ".work"
ROOT = BENCH_DIR.parent
WORKSPACE = "bench"
LISTS = {"newsletter": "Newsletter", "product_updates": "Product updates"}
DEFAULT_PG_URL = os.environ.get(
    "AUDIENCE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

#: Contacts sent through every path once before measuring (first-use costs).
WARMUP_CONTACTS = 500

TARGET_FLOOR = 0.6
TARGET_NAIVE = 20.0
TARGET_RSS_MB = 150.0
TARGET_LINEARITY = 11.0


# --- options -------------------------------------------------------------------------------------


@dataclass
class Options:
    contacts: int = 100_000
    batch_sizes: tuple[int, ...] = (10_000, 1_000)
    repeats: int = 3
    naive: int = 2_000
    backends: tuple[str, ...] = ("postgres", "sqlite")
    pg_url: str = DEFAULT_PG_URL
    pg_database: str = "audience_bench"
    pg_floors: tuple[str, ...] = ("copy", "unnest")
    lists: bool = True
    verify: bool = True
    prime_statistics: bool = True
    workers: int = 2
    seed: int = data.DEFAULT_SEED
    output: Path | None = BENCH_DIR / "RESULTS.md"
    quick: bool = False


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Import throughput vs the database floor and the naive path (issue 4).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="20,000 contacts, one repeat, 300 naive requests; writes bench/.work/RESULTS-quick.md",
    )
    parser.add_argument("--contacts", type=int, help="contacts per case (default 100,000)")
    parser.add_argument("--repeats", type=int, help="repeats, the median is reported (default 3)")
    parser.add_argument("--naive", type=int, help="contacts sent one by one (default 2,000)")
    parser.add_argument(
        "--batch-sizes", help="comma list of batch sizes; the first is the large one (10000,1000)"
    )
    parser.add_argument("--backends", help="comma list of postgres,sqlite (default both)")
    parser.add_argument(
        "--pg-url", default=DEFAULT_PG_URL, help="an admin URL of the PostgreSQL server"
    )
    parser.add_argument("--pg-database", default="audience_bench", help="dropped and re-created")
    parser.add_argument(
        "--pg-floors",
        help=f"PostgreSQL floor variants among {','.join(PG_VARIANTS)} (default copy,unnest); "
        "the floor of a case is the fastest of the copy/unnest variants",
    )
    parser.add_argument(
        "--fresh-stats",
        action="store_true",
        help="PostgreSQL: do not give the planner statistics first (see Postgres.prime_statistics)"
        "; with the current schema this can take hours",
    )
    parser.add_argument("--no-lists", action="store_true", help="skip the subscribe_to_lists cases")
    parser.add_argument(
        "--no-verify", action="store_true", help="skip checking the stored data after repeat 1"
    )
    parser.add_argument("--seed", type=int, default=data.DEFAULT_SEED)
    parser.add_argument("--output", help="where to write the Markdown report ('-' for none)")
    args = parser.parse_args(argv)

    options = Options(quick=args.quick, seed=args.seed)
    if args.quick:
        options.contacts, options.repeats, options.naive = 20_000, 1, 300
        options.output = WORK_DIR / "RESULTS-quick.md"
    if args.contacts is not None:
        options.contacts = args.contacts
    if args.repeats is not None:
        options.repeats = args.repeats
    if args.naive is not None:
        options.naive = args.naive
    if args.batch_sizes:
        options.batch_sizes = tuple(int(s) for s in args.batch_sizes.split(","))
    if args.backends:
        options.backends = tuple(b.strip() for b in args.backends.split(","))
        unknown = set(options.backends) - {"postgres", "sqlite"}
        if unknown:
            parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    if args.pg_floors:
        options.pg_floors = tuple(v.strip() for v in args.pg_floors.split(","))
        unknown = set(options.pg_floors) - set(PG_VARIANTS)
        if unknown:
            parser.error(f"unknown floor variant(s): {', '.join(sorted(unknown))}")
    if args.output:
        options.output = None if args.output == "-" else Path(args.output)
    options.pg_url, options.pg_database = args.pg_url, args.pg_database
    options.lists = not args.no_lists
    options.verify = not args.no_verify
    options.prime_statistics = not args.fresh_stats
    if options.contacts < 1 or options.repeats < 1 or not options.batch_sizes:
        parser.error("nothing to measure")
    return options


# --- cases and measurements ----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    kind: str  # "create" or "update"
    batch: int
    lists: bool = False

    @property
    def name(self) -> str:
        size = f"{self.batch // 1000}k" if self.batch % 1000 == 0 else str(self.batch)
        return f"{self.kind}{' +2 lists' if self.lists else ''} {size}"


def case_groups(options: Options) -> list[tuple[Case, Case]]:
    """Each group starts from empty tables: its creates, then the same emails as updates."""
    groups = [(Case("create", b), Case("update", b)) for b in options.batch_sizes]
    if options.lists:
        big = options.batch_sizes[0]
        groups.append((Case("create", big, lists=True), Case("update", big, lists=True)))
    return groups


@dataclass
class Run:
    """One path through one case: the time of each request (or transaction)."""

    seconds: list[float]
    contacts: int
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.contacts / sum(self.seconds)


@dataclass
class BackendResult:
    name: str
    label: str
    version: str = ""
    floors: tuple[str, ...] = ()
    # runs[case name][path][repeat]
    runs: dict[str, dict[str, list[Run]]] = field(default_factory=dict)
    naive: list[float] = field(default_factory=list)
    idle_rss_kib: int = 0
    peak_rss_kib: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def record(self, case: Case, path: str, run: Run) -> None:
        self.runs.setdefault(case.name, {}).setdefault(path, []).append(run)


# --- backends ------------------------------------------------------------------------------------


class Backend:
    name = ""
    label = ""
    url = ""
    #: Whether the planner works from statistics that ANALYZE (or autovacuum) collects.
    keeps_statistics = False

    def prepare(self) -> None:
        """A fresh, empty, migrated database."""
        raise NotImplementedError

    def reset(self) -> None:
        """Empty contacts and memberships (lists, workspace and key stay)."""
        raise NotImplementedError

    def floors(self, options: Options) -> list[Floor]:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def lookup_plan(self) -> str:
        """How the planner would find one contact by (workspace_id, email) right now."""
        raise NotImplementedError

    def settings(self) -> str:
        """The database settings that matter for write throughput."""
        raise NotImplementedError

    def prime_statistics(self, dataset: data.Dataset) -> bool:
        """Give the planner statistics that know the workspace; False if there is no need."""
        return False

    def migrate(self) -> None:
        engine = build_engine(Settings(database_url=self.url, secret_key=SECRET_KEY))
        try:
            upgrade(engine)
        finally:
            engine.dispose()


class Postgres(Backend):
    name, label = "postgres", "PostgreSQL"
    keeps_statistics = True

    def __init__(self, admin_url: str, database: str) -> None:
        self.admin_url = admin_url
        self.database = database
        parts = urlsplit(admin_url)
        self.url = urlunsplit(parts._replace(path=f"/{database}"))

    def prepare(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.database}"')
        self.migrate()

    def reset(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("TRUNCATE contact_lists, contacts")
            conn.execute("CHECKPOINT")

    def floors(self, options: Options) -> list[Floor]:
        return [PostgresFloor(self.url, WORKSPACE, v) for v in options.pg_floors]

    def version(self) -> str:
        with psycopg.connect(self.url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {row[0] if row else '?'}"

    def lookup_plan(self) -> str:
        # The query of the foreign-key check on contact_lists, and the shape of every lookup
        # by primary key; a plan on ix_contacts_workspace_id_external_id scans the workspace.
        with psycopg.connect(self.url) as conn:
            rows = conn.execute(
                f"EXPLAIN SELECT 1 FROM contacts WHERE workspace_id = '{WORKSPACE}' "
                "AND email = 'probe@example.com' FOR KEY SHARE"
            ).fetchall()
        return _access_path(" ".join(r[0] for r in rows))

    def settings(self) -> str:
        names = ("autovacuum", "shared_buffers", "synchronous_commit", "fsync", "max_wal_size")
        with psycopg.connect(self.url) as conn:
            values = [conn.execute(f"SHOW {n}").fetchone() for n in names]
        return ", ".join(f"{n}={v[0] if v else '?'}" for n, v in zip(names, values, strict=True))

    def prime_statistics(self, dataset: data.Dataset) -> bool:
        """Load the data once, ANALYZE, empty the tables: statistics outlive TRUNCATE.

        Autovacuum would do this on a live server (it is off on some machines); without it,
        a table whose statistics do not know the workspace gets plans that scan the whole
        workspace for each lookup by email.
        """
        floor = PostgresFloor(self.url, WORKSPACE, "copy")
        try:
            for batch in data.batches(dataset.creates, 10_000):
                floor.apply(batch, {})
        finally:
            floor.close()
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("ANALYZE contacts")
            conn.execute(
                "INSERT INTO contact_lists "
                "SELECT c.workspace_id, c.email, l.id, 'active', now(), now() "
                "FROM contacts AS c JOIN lists AS l ON l.workspace_id = c.workspace_id"
            )
            conn.execute("ANALYZE contact_lists")
        self.reset()
        return True

    def drop(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


class Sqlite(Backend):
    name, label = "sqlite", "SQLite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"

    def prepare(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm", "-journal", ".secret"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self.migrate()

    def reset(self) -> None:
        import sqlite3

        conn = sqlite3.connect(self.path, isolation_level=None, timeout=60)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM contact_lists")
            conn.execute("DELETE FROM contacts")
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def floors(self, options: Options) -> list[Floor]:
        return [SqliteFloor(str(self.path), WORKSPACE)]

    def version(self) -> str:
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"

    def lookup_plan(self) -> str:
        import sqlite3

        conn = sqlite3.connect(self.path)
        try:
            rows = conn.execute(
                "EXPLAIN QUERY PLAN SELECT 1 FROM contacts WHERE workspace_id = ? AND email = ?",
                (WORKSPACE, "probe@example.com"),
            ).fetchall()
        finally:
            conn.close()
        return _access_path(" ".join(str(r[-1]) for r in rows))

    def settings(self) -> str:
        return "journal_mode=WAL, synchronous=NORMAL, foreign_keys=ON (the server's pragmas)"


def _access_path(plan: str) -> str:
    """The index (or scan) a plan uses, from EXPLAIN's text."""
    match = re.search(
        r"(?:using|USING)(?: COVERING)? INDEX (\S+)|using (\S+)|(Seq Scan|SCAN)", plan
    )
    if match is None:
        return plan
    found = next(g for g in match.groups() if g)
    if found.startswith("ix_contacts_workspace_id_external_id"):
        return f"{found} (only workspace_id bounds it: the whole workspace is read per lookup)"
    if found in ("Seq Scan", "SCAN"):
        return "a scan of the whole table"
    return found


# --- the paths -----------------------------------------------------------------------------------


def encode_batches(
    dataset: data.Dataset, case: Case, list_ids: Sequence[str]
) -> list[tuple[bytes, int]]:
    """The request bodies of a case, encoded before any timing starts."""
    source = dataset.creates if case.kind == "create" else dataset.updates
    bodies = []
    for batch in data.batches(source, case.batch):
        body: dict[str, Any] = {"workspace_id": WORKSPACE, "contacts": [c.wire() for c in batch]}
        if case.lists:
            body["subscribe_to_lists"] = list(list_ids)
        bodies.append((msgspec.json.encode(body), len(batch)))
    return bodies


class _Operations(msgspec.Struct):
    operations: list[dict[str, Any]]


def import_case(client: httpx.Client, case: Case, bodies: Sequence[tuple[bytes, int]]) -> Run:
    headers = {"Content-Type": "application/json"}
    run = Run([], 0)
    for body, count in bodies:
        start = time.perf_counter()
        response = client.post("/api/contacts.import", content=body, headers=headers)
        run.seconds.append(time.perf_counter() - start)
        run.contacts += count
        if response.status_code != 200:
            raise RuntimeError(
                f"contacts.import ({case.name}) answered {response.status_code}: "
                f"{response.text[:300]}"
            )
        operations = msgspec.json.decode(response.content, type=_Operations).operations
        wrong = [op for op in operations if op.get("action") != case.kind]
        if len(operations) != count or wrong:
            run.problems.append(
                f"import {case.name}: {len(operations)} operations for {count} contacts, "
                f"{len(wrong)} not {case.kind!r}, e.g. {wrong[:2]}"
            )
    return run


def _floor_path(
    floor: Floor, statuses: Mapping[str, str], case: Case, dataset: data.Dataset
) -> Run:
    return floor_case(floor, dataset, case, statuses)


def floor_case(floor: Floor, dataset: data.Dataset, case: Case, statuses: Mapping[str, str]) -> Run:
    source = dataset.creates if case.kind == "create" else dataset.updates
    run = Run([], 0)
    for batch in data.batches(source, case.batch):
        start = time.perf_counter()
        created = floor.apply(batch, statuses if case.lists else {})
        run.seconds.append(time.perf_counter() - start)
        run.contacts += len(batch)
        if created != (len(batch) if case.kind == "create" else 0):
            run.problems.append(f"floor {floor.name} {case.name}: {created} created")
    return run


# --- checking what was stored --------------------------------------------------------------------


def check_stored(
    url: str, expected: Mapping[str, Mapping[str, Any]], memberships: int, what: str
) -> list[str]:
    """Differences between the stored contacts (and membership count) and the expected ones."""
    engine = build_engine(Settings(database_url=url, secret_key=SECRET_KEY))
    problems: list[str] = []
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(contacts).where(contacts.c.workspace_id == WORKSPACE))
            seen = 0
            wrong: list[str] = []
            for row in rows:
                seen += 1
                values = row._mapping
                want = expected.get(values["email"])
                if want is None:
                    wrong.append(f"unexpected contact {values['email']}")
                    continue
                for name in FIELDS:
                    if not _same(name, values[name], want[name]):
                        wrong.append(
                            f"{values['email']} {name}: stored {values[name]!r}, "
                            f"expected {want[name]!r}"
                        )
            if seen != len(expected):
                problems.append(f"{what}: {seen} contacts stored, {len(expected)} expected")
            if wrong:
                problems.append(f"{what}: {len(wrong)} wrong values, e.g. {'; '.join(wrong[:3])}")
            count = conn.execute(
                select(func.count()).where(
                    contact_lists.c.workspace_id == WORKSPACE, contact_lists.c.status == "active"
                )
            ).scalar_one()
            if count != memberships:
                problems.append(f"{what}: {count} active memberships, {memberships} expected")
    finally:
        engine.dispose()
    return problems


def _same(name: str, stored: Any, expected: Any) -> bool:
    if stored is None or expected is None:
        return stored is None and expected is None
    if name in DATETIME_FIELDS:
        return bool(as_utc(stored) == as_utc(expected))
    return bool(stored == expected)


# --- one backend ---------------------------------------------------------------------------------


def say(message: str) -> None:
    print(message, flush=True)


@contextmanager
def _closing_all(floors: list[Floor]) -> Iterator[list[Floor]]:
    try:
        yield floors
    finally:
        for floor in floors:
            floor.close()


def run_backend(backend: Backend, options: Options, dataset: data.Dataset) -> BackendResult:
    started = time.perf_counter()
    result = BackendResult(backend.name, backend.label)
    say(f"\n== {backend.label}: preparing a fresh database")
    backend.prepare()
    result.version = backend.version()
    key = create_workspace(backend.url, WORKSPACE)
    groups = case_groups(options)
    log = WORK_DIR / f"server-{backend.name}.log"
    result.notes.append(f"source when the server started: {_git_state()}")
    with Server(backend.url, log, workers=options.workers) as server:
        client = httpx.Client(
            base_url=server.base_url, timeout=600, headers={"Authorization": f"Bearer {key}"}
        )
        with client, _closing_all(backend.floors(options)) as floors:
            result.floors = tuple(f.name for f in floors)
            for list_id, list_name in LISTS.items():
                response = client.post(
                    "/api/lists.create",
                    json={"workspace_id": WORKSPACE, "id": list_id, "name": list_name},
                )
                if response.status_code != 201:
                    raise RuntimeError(f"lists.create answered {response.status_code}")
            statuses = dict.fromkeys(LISTS, "active")
            result.notes.append(f"settings: {backend.settings()}")
            result.notes.append(
                f"a lookup by (workspace_id, email) on the fresh table uses {backend.lookup_plan()}"
            )
            if options.prime_statistics and backend.keeps_statistics:
                say("   loading the data once to give the planner statistics (untimed)")
                if backend.prime_statistics(dataset):
                    result.notes.append(
                        "statistics primed before measuring (the data loaded once, ANALYZE, "
                        f"TRUNCATE): the same lookup then uses {backend.lookup_plan()}"
                    )
            result.notes.append(f"load average at the start: {_load()}")
            for note in result.notes:
                say(f"   {note}")
            workers = server.worker_pids()
            result.idle_rss_kib = max(memory_kib(p).get("VmRSS", 0) for p in workers)
            say(f"   server {server.base_url}, workers {workers}, {result.version}")
            say("   encoding request bodies")
            bodies = {
                case: encode_batches(dataset, case, list(LISTS))
                for group in groups
                for case in group
            }

            def via_http(case: Case, ds: data.Dataset) -> Run:
                batches = bodies[case] if ds is dataset else encode_batches(ds, case, list(LISTS))
                return import_case(client, case, batches)

            paths: list[tuple[str, Callable[[Case, data.Dataset], Run]]] = [("import", via_http)]
            for floor in floors:
                direct = functools.partial(_floor_path, floor, statuses)
                paths.append((f"floor {floor.name}", direct))
            say("   warming up every path (untimed)")
            warm = data.generate(WARMUP_CONTACTS, options.seed + 7, domain="warmup.example")
            for _, apply in paths:
                for case in (Case("create", WARMUP_CONTACTS, True), Case("update", 100, True)):
                    apply(case, warm)
                backend.reset()
            for repeat in range(options.repeats):
                say(f"-- {backend.label}, repeat {repeat + 1}/{options.repeats}")
                for group in groups:
                    shift = repeat % len(paths)
                    for path, apply in paths[shift:] + paths[:shift]:
                        backend.reset()
                        for case in group:
                            run = apply(case, dataset)
                            result.record(case, path, run)
                            result.problems += run.problems
                            say(
                                f"   {case.name:<22} {path:<18} {run.rate:>9,.0f} contacts/s"
                                f"  (median {statistics.median(run.seconds) * 1000:,.0f} ms)"
                            )
                        if options.verify and repeat == 0:
                            members = len(dataset.creates) * len(LISTS) if group[0].lists else 0
                            problems = check_stored(
                                backend.url,
                                dataset.expected(with_updates=True),
                                members,
                                f"{backend.label} {path} after {group[-1].name}",
                            )
                            result.problems += problems
                            for problem in problems:
                                say(f"   !! {problem}")
                if options.naive:
                    backend.reset()
                    rate = naive_rate(client, WORKSPACE, dataset.creates[: options.naive])
                    result.naive.append(rate)
                    say(f"   naive contacts.upsert x{options.naive:<8} {rate:>9,.0f} contacts/s")
            result.notes.append(f"load average at the end: {_load()}")
            result.peak_rss_kib = max(memory_kib(p).get("VmHWM", 0) for p in server.worker_pids())
        result.problems += [f"server log: {line}" for line in server.log_problems()[:20]]
    if isinstance(backend, Postgres):
        backend.drop()
    result.seconds = time.perf_counter() - started
    return result


# --- the report ----------------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Row:
    case: str
    import_rate: list[float]
    floors: dict[str, list[float]]
    ratio: list[float]  # import / best floor, per repeat


def summarise(result: BackendResult) -> tuple[list[Row], dict[str, list[float]]]:
    rows = []
    for case_name, paths in result.runs.items():
        imports = [r.rate for r in paths.get("import", [])]
        floors = {p.removeprefix("floor "): [r.rate for r in runs] for p, runs in paths.items()}
        floors.pop("import", None)
        candidates = [v for v in floors if v != "merge"] or list(floors)
        best = (
            [max(floors[v][i] for v in candidates) for i in range(len(imports))]
            if candidates
            else []
        )
        ratio = [imp / fl for imp, fl in zip(imports, best, strict=False)]
        rows.append(Row(case_name, imports, floors, ratio))
    extra: dict[str, list[float]] = {"naive ratio": [], "linearity": []}
    creates = result.runs.get(f"create {_size(max_batch(result))}", {}).get("import", [])
    for i, rate in enumerate(result.naive):
        if i < len(creates):
            extra["naive ratio"].append(creates[i].rate / rate)
    big, small = max_batch(result), min_batch(result)
    if big != small:
        big_runs = result.runs[f"create {_size(big)}"]["import"]
        small_runs = result.runs[f"create {_size(small)}"]["import"]
        for b, s in zip(big_runs, small_runs, strict=False):
            extra["linearity"].append(statistics.median(b.seconds) / statistics.median(s.seconds))
    return rows, extra


def _batch_sizes(result: BackendResult) -> list[int]:
    sizes = []
    for name in result.runs:
        token = name.rsplit(" ", 1)[1]
        sizes.append(int(token[:-1]) * 1000 if token.endswith("k") else int(token))
    return sizes


def max_batch(result: BackendResult) -> int:
    return max(_batch_sizes(result))


def min_batch(result: BackendResult) -> int:
    return min(_batch_sizes(result))


def _size(batch: int) -> str:
    return f"{batch // 1000}k" if batch % 1000 == 0 else str(batch)


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def _spread(values: Sequence[float]) -> str:
    if len(values) < 2:
        return ""
    return f" ({min(values):,.0f} to {max(values):,.0f})"


def console_table(result: BackendResult, options: Options) -> str:
    rows, extra = summarise(result)
    floor_names = list(result.floors)
    head = f"{'case':<22} {'import/s':>10} " + " ".join(f"{'floor ' + n:>14}" for n in floor_names)
    lines = [
        f"{result.version}: {options.contacts:,} contacts, median of {options.repeats}",
        head + f" {'import÷floor':>13}",
    ]
    for row in rows:
        floors = " ".join(f"{_median(row.floors.get(n, [])):>14,.0f}" for n in floor_names)
        ratio = _median(row.ratio)
        lines.append(
            f"{row.case:<22} {_median(row.import_rate):>10,.0f} {floors} {ratio:>12.2f}"
            f"{_mark(ratio >= TARGET_FLOOR)}"
        )
    lines += _headline(result, extra)
    return "\n".join(lines)


def _headline(result: BackendResult, extra: Mapping[str, list[float]]) -> list[str]:
    lines = []
    if result.naive:
        naive_ratio = _median(extra["naive ratio"])
        target = f" (target ≥ {TARGET_NAIVE:.0f}) {_mark(naive_ratio >= TARGET_NAIVE)}"
        lines.append(
            f"naive contacts.upsert: {_median(result.naive):,.0f} contacts/s; "
            f"import ÷ naive (create {_size(max_batch(result))}) = {naive_ratio:,.1f}"
            + (target if result.name == "postgres" else "")
        )
    peak = result.peak_rss_kib / 1024
    lines.append(
        f"worker peak RSS (VmHWM): {peak:,.0f} MB (idle {result.idle_rss_kib / 1024:,.0f} MB) "
        f"(target ≤ {TARGET_RSS_MB:.0f}) {_mark(peak <= TARGET_RSS_MB)}"
    )
    if extra["linearity"]:
        lin = _median(extra["linearity"])
        lines.append(
            f"linearity: one {_size(max_batch(result))} request ÷ one "
            f"{_size(min_batch(result))} request = {lin:.2f} "
            f"(target ≤ {TARGET_LINEARITY:.0f}) {_mark(lin <= TARGET_LINEARITY)}"
        )
    return lines


def markdown(results: Sequence[BackendResult], options: Options, command: str, source: str) -> str:
    now = datetime.now(UTC).astimezone()
    out = [
        "# Import benchmark results",
        "",
        f"Written by `{command}` on {now:%Y-%m-%d %H:%M %Z}. Rates are contacts per second, "
        f"the median of {options.repeats} repeat(s) (lowest to highest in brackets); ratios "
        "are the median of the per-repeat ratios. See bench/run.py for what each figure means.",
        "",
        "## Machine",
        "",
        f"- {os.cpu_count()} CPUs (`nproc` {_nproc()}), {_cpu_model()}, "
        f"{_memory_gib():.0f} GiB RAM, {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; " + "; ".join(r.version for r in results),
        f"- source: {source}",
        f"- data: {options.contacts:,} contacts (seed {options.seed}), ~"
        f"{data.GIVEN_SHARE:.0%} of the 33 optional fields given, server with "
        f"{options.workers} workers, one request (or floor transaction) at a time",
        "",
    ]
    for result in results:
        rows, extra = summarise(result)
        floor_names = list(result.floors)
        out += [f"## {result.version}", ""]
        out.append(
            "| case | import | "
            + " | ".join(f"floor ({n})" for n in floor_names)
            + f" | import ÷ floor{_floor_label(floor_names)} (target ≥ {TARGET_FLOOR}) |"
        )
        out.append("|---|---:|" + "---:|" * len(floor_names) + "---:|")
        for row in rows:
            floors = " | ".join(
                f"{_median(row.floors.get(n, [])):,.0f}{_spread(row.floors.get(n, []))}"
                for n in floor_names
            )
            ratio = _median(row.ratio)
            out.append(
                f"| {row.case} | {_median(row.import_rate):,.0f}{_spread(row.import_rate)} | "
                f"{floors} | {ratio:.2f} {_mark(ratio >= TARGET_FLOOR)} |"
            )
        out.append("")
        out += [f"- {line}" for line in _headline(result, extra)]
        timings = []
        for row_name in (
            f"create {_size(max_batch(result))}",
            f"create {_size(min_batch(result))}",
        ):
            runs = result.runs.get(row_name, {}).get("import", [])
            if runs:
                med = _median([statistics.median(r.seconds) for r in runs])
                timings.append(f"{row_name}: {med * 1000:,.0f} ms")
        if timings:
            out.append("- median time of one import request: " + "; ".join(timings))
        out += [f"- {note}" for note in result.notes]
        out.append(f"- wall time of this backend's part of the run: {result.seconds:,.0f} s")
        if result.problems:
            out += ["", "Problems seen:", ""] + [f"- {p}" for p in result.problems[:30]]
        out.append("")
    out += [
        "## What is measured",
        "",
        "- **import**: POST /api/contacts.import over loopback HTTP (httpx, bodies encoded "
        "before timing, one request at a time) to `audience serve --workers "
        f"{options.workers}`; time from sending a request to having its whole answer.",
        "- **floor**: the same batches written straight to the database in one transaction "
        "each, with the same effects (absent keeps, null clears, created_at kept, created "
        "emails known, memberships added unless present), by set-based SQL: "
        "`copy` = binary COPY into a temp table + INSERT ... ON CONFLICT DO UPDATE (COALESCE) "
        "+ one UPDATE for explicit nulls; `unnest` = the same fed by binary arrays; `merge` "
        "(if shown; reference only) = binary COPY + one MERGE; SQLite `executemany` = one "
        "BEGIN IMMEDIATE transaction with executemany upserts (see bench/floor.py).",
        "- each group (creates then updates of the same emails) starts from empty contacts "
        "and memberships tables, for every path; the order of the paths rotates between "
        "repeats. The first repeat checks that every path stored exactly the expected data.",
        "- **naive**: the first contacts of the data, one POST /api/contacts.upsert each, one "
        "at a time, into empty tables.",
        "- **RSS**: VmHWM (peak resident set) of each uvicorn worker process, read from "
        "/proc at the end of the run; the largest requests of the run are the 10,000-contact "
        "ones. **linearity**: median time of one 10,000-contact create request ÷ median time "
        "of one 1,000-contact create request.",
        "",
    ]
    return "\n".join(out)


def _floor_label(names: Sequence[str]) -> str:
    counted = [n for n in names if n != "merge"]
    return f" (fastest of {', '.join(counted)})" if len(counted) > 1 else ""


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" (nproc {_nproc()})"


def _nproc() -> int:
    return len(os.sched_getaffinity(0))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _git_state() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    if not dirty:
        return f"commit {commit}"
    digest = subprocess.run(
        ["git", "diff", "HEAD", "--", "src"], cwd=ROOT, capture_output=True
    ).stdout
    short = hashlib.sha256(digest).hexdigest()[:8]
    return f"commit {commit} with uncommitted changes in src/ (diff {short})"


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --- entry point ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    source_at_start = _git_state()
    # A SIGTERM unwinds like Ctrl-C, so that the server and its workers are stopped.
    signal.signal(signal.SIGTERM, _terminate)
    started = time.perf_counter()
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    say(f"generating {options.contacts:,} contacts and their updates (seed {options.seed})")
    dataset = data.generate(options.contacts, options.seed)
    options.batch_sizes = tuple(min(b, options.contacts) for b in options.batch_sizes)
    options.batch_sizes = tuple(dict.fromkeys(options.batch_sizes))
    backends: list[Backend] = []
    for name in options.backends:
        if name == "postgres":
            backends.append(Postgres(options.pg_url, options.pg_database))
        else:
            backends.append(Sqlite(WORK_DIR / "bench.db"))
    results = []
    for backend in backends:
        result = run_backend(backend, options, dataset)
        results.append(result)
        say("\n" + console_table(result, options))
    say("")
    for result in results:
        say(console_table(result, options) + "\n")
        for problem in result.problems:
            say(f"!! {result.label}: {problem}")
    if options.output is not None:
        options.output.parent.mkdir(parents=True, exist_ok=True)
        source = _git_state()
        if source != source_at_start:
            source = f"{source_at_start} at the start, {source} at the end (src changed)"
        options.output.write_text(markdown(results, options, command.strip(), source))
        say(f"wrote {options.output}")
    say(f"total time {time.perf_counter() - started:,.0f} s")
    return 1 if any(r.problems for r in results) else 0
