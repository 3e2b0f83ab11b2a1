"""Audience on a Citus cluster beside plain PostgreSQL on this machine: `python -m bench.citus`.

In one run, on a fresh database of each (Citus: made on every node of the cluster, the schema
distributed by workspace_id by `audience db upgrade`; PostgreSQL: a new database on the plain
server):

1. **import throughput**: realistic 10,000-contact batches of `POST /api/contacts.import`,
   creates then the same emails as updates, from 1, 2 and 4 concurrent clients (each its own
   emails and its own httpx client), against one `audience serve --workers 2`, then against
   two `audience serve` processes (two "hosts" on their own ports, sharing nothing but the
   database; the clients split between them). Contacts per second over the wall time of all
   the clients; Citus ÷ PostgreSQL per repeat. Every answer must be 200 with one operation per
   contact of the expected kind; what every case stored is then compared with the dataset.
2. **read latency on a large workspace**: 1,000,000 realistic contacts written by COPY into
   the (distributed) tables, half of them members of a list, VACUUM ANALYZE; then, one request
   at a time against `audience serve --workers 2`, the median and p95 of: contacts.getByEmail
   (a random contact), contacts.list (a page of 100 after a random cursor; also filtered to the
   list's members) and contacts.count. The two backends take turns request by request, so that
   the load of the machine (shared, 2 cores) falls on both alike.

The report (markdown) goes to bench/.work/RESULTS-citus.md (`--quick`) or replaces the
"Citus" section of bench/RESULTS.md (full run). The command exits 1 when an answer was not
200 (or not what was asked), stored data differ from the dataset, or a server log shows an
error. bench/README.md ("Citus") says more.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import msgspec
import psycopg
from psycopg.types.json import set_json_dumps

from audience.db.models import FIELDS
from audience.kit.pagination import encode_cursor
from audience.kit.server_process import ServerProcess, run_cli
from bench import machine, verify
from bench import vocabulary as v
from bench.cases import Kind, Load
from bench.concurrency import run_load, share
from bench.datasets import DEFAULT_SEED, SHAPES, Contact, Dataset, _ascii, generate
from bench.floor import COLUMNS
from bench.floor_postgres import COPY_TYPES
from bench.options import BENCH_DIR, DEFAULT_PG_URL, HEADLINE, WORK_DIR
from bench.paths import Bodies, check_answer, encode
from bench.results import LoadRun
from bench.server import (
    LISTS,
    SECRET_KEY,
    WORKSPACE,
    create_lists,
    create_workspace,
    log_problems,
    passed_env,
    pin_source,
    serve,
)
from bench.tables import PROJECT

WORK = WORK_DIR / "citus"
DATABASE = "audience_bench_citus"
DEFAULT_CITUS_URL = "postgresql://postgres@127.0.0.1:9700/audience"
CLUSTER_SCRIPT = machine.ROOT / ".ci" / "citus-cluster"
BATCH = 10_000
SECTION = "## Citus"
#: The list that half of the large workspace's contacts are members of.
MEMBERS_LIST = next(iter(LISTS))
_JSON = {"Content-Type": "application/json"}
_KINDS: tuple[Kind, Kind] = ("create", "update")


def say(message: str) -> None:
    print(message, flush=True)


# --- options ----------------------------------------------------------------------------------


@dataclass
class Config:
    quick: bool = False
    clients: tuple[int, ...] = (1, 2, 4)
    #: 10k batches each client sends, per kind.
    batches: int = 2
    repeats: int = 3
    #: Contacts of the large workspace.
    contacts: int = 1_000_000
    #: Requests per read route and backend.
    requests: int = 200
    #: `--workers` of each of the two hosts.
    host_workers: int = 1
    citus_url: str = DEFAULT_CITUS_URL
    pg_url: str = DEFAULT_PG_URL
    seed: int = DEFAULT_SEED
    output: Path | None = BENCH_DIR / "RESULTS.md"
    command: str = "python -m bench.citus"

    @property
    def dataset_size(self) -> int:
        return max(self.clients) * self.batches * BATCH


def parse_args(argv: Sequence[str]) -> Config:
    parser = argparse.ArgumentParser(
        prog="python -m bench.citus",
        description="Import throughput and read latency on a Citus cluster beside PostgreSQL.",
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="1 batch a client, 1 repeat, 200,000 contacts, ~3 min")
    add("--clients", help="comma list of concurrent clients (default 1,2,4)")
    add("--batches", type=int, help="10k batches per client and kind (default 2; quick 1)")
    add("--repeats", type=int, help="repeats of the import cases, median reported (default 3)")
    add("--contacts", type=int, help="contacts of the large workspace (default 1,000,000)")
    add("--requests", type=int, help="requests per read route and backend (default 200)")
    add("--host-workers", type=int, help="--workers of each of the two hosts (default 1)")
    add("--citus-url", default=DEFAULT_CITUS_URL, help="the coordinator (any database on it)")
    add("--pg-url", default=DEFAULT_PG_URL, help="the plain PostgreSQL server (any database)")
    add("--seed", type=int, default=DEFAULT_SEED)
    add("--output", help="where to write the report ('-' for none)")
    args = parser.parse_args(argv)
    config = Config(quick=args.quick, seed=args.seed, command=" ".join([parser.prog, *argv]))
    if args.quick:
        config.batches, config.repeats, config.contacts = 1, 1, 200_000
        config.requests, config.output = 100, WORK_DIR / "RESULTS-citus.md"
    for name in ("batches", "repeats", "contacts", "requests", "host_workers"):
        if getattr(args, name) is not None:
            setattr(config, name, getattr(args, name))
    if args.clients:
        config.clients = tuple(int(s) for s in args.clients.split(",") if int(s) > 0)
    if args.output:
        config.output = None if args.output == "-" else Path(args.output)
    config.citus_url, config.pg_url = args.citus_url, args.pg_url
    if not config.clients or min(config.batches, config.repeats, config.requests) < 1:
        parser.error("nothing to measure")
    if config.contacts < config.requests:
        parser.error("--contacts must be at least --requests")
    return config


# --- databases --------------------------------------------------------------------------------


def _at(url: str, database: str, host: str | None = None, port: int | None = None) -> str:
    """`url` naming another database (and maybe another host and port)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if host is not None:
        user, _, _ = netloc.rpartition("@")
        netloc = f"{user}@{host}:{port}" if user else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{database}"))


def _one(url: str, query: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
    return str(row[0]) if row else "?"


_SETTINGS = (
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "shared_buffers",
    "autovacuum",
    "max_wal_size",
)


def _settings(url: str) -> str:
    with psycopg.connect(url) as conn:
        values = [conn.execute(f"SHOW {name}").fetchone() for name in _SETTINGS]
    return ", ".join(f"{n}={v[0] if v else '?'}" for n, v in zip(_SETTINGS, values, strict=True))


@dataclass
class Database:
    """A fresh database of the benchmark on one backend: plain PostgreSQL or a Citus cluster."""

    label: str
    server_url: str
    citus: bool
    #: (host, port, is the coordinator) of every node; on plain PostgreSQL, the server.
    nodes: list[tuple[str, int, bool]] = field(default_factory=list)
    url: str = ""
    notes: list[str] = field(default_factory=list)
    #: describe(), read while the database exists.
    description: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return "citus" if self.citus else "postgres"

    def _node_urls(self) -> list[tuple[str, str, bool]]:
        """(maintenance URL, URL of the benchmark's database, is the coordinator) per node."""
        maintenance = urlsplit(self.server_url).path.lstrip("/") or "postgres"
        return [
            (_at(self.server_url, maintenance, h, p), _at(self.server_url, DATABASE, h, p), first)
            for h, p, first in self.nodes
        ]

    def create(self) -> None:
        """The database on every node (Citus propagates neither CREATE DATABASE nor the
        nodes: tests/conftest.py create_citus_database does the same), then `audience db
        upgrade`, which distributes the schema on a coordinator."""
        if self.citus:
            with psycopg.connect(self.server_url) as conn:
                rows = conn.execute(
                    "SELECT nodename, nodeport, groupid = 0 FROM pg_dist_node ORDER BY groupid"
                ).fetchall()
            self.nodes = [(str(h), int(p), bool(first)) for h, p, first in rows]
            if not any(first for *_, first in self.nodes):
                raise RuntimeError(f"no coordinator (groupid 0) in pg_dist_node: {rows}")
        else:
            parts = urlsplit(self.server_url)
            self.nodes = [(parts.hostname or "127.0.0.1", parts.port or 5432, True)]
        self.drop()
        for maintenance, url, _ in self._node_urls():
            with psycopg.connect(maintenance, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
            if self.citus:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("CREATE EXTENSION citus")
        self.url = next(url for _, url, first in self._node_urls() if first)
        if self.citus:
            with psycopg.connect(self.url, autocommit=True) as conn:
                (host, port, _) = next(n for n in self.nodes if n[2])
                conn.execute("SELECT citus_set_coordinator_host(%s, %s)", (host, port))
                for host, port, first in self.nodes:
                    if not first:
                        conn.execute("SELECT citus_add_node(%s, %s)", (host, port))
        started = time.perf_counter()
        run_cli(self.url, "db", "upgrade", secret_key=SECRET_KEY)
        self.notes.append(f"`audience db upgrade`: {time.perf_counter() - started:.1f} s")

    def drop(self) -> None:
        """Drop the database on every node, the coordinator first."""
        for maintenance, _, _ in self._node_urls():
            with psycopg.connect(maintenance, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')

    def reset(self) -> None:
        """Empty contacts and memberships (workspace, key and lists stay)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("TRUNCATE contact_lists, contacts")

    def version(self) -> str:
        pg = _one(self.url, "SHOW server_version").split(" ")[0]
        if not self.citus:
            return f"PostgreSQL {pg}"
        citus = " ".join(_one(self.url, "SELECT citus_version()").split(" ")[:2])
        return f"{citus} on PostgreSQL {pg}"

    def describe(self) -> list[str]:
        """The nodes, their settings, and on Citus how the tables are distributed."""
        if not self.citus:
            host, port, _ = self.nodes[0]
            return [f"{self.version()} at {host}:{port}: {_settings(self.url)}"]
        urls = self._node_urls()
        per_node = {_settings(url) for _, url, _ in urls}
        nodes = ", ".join(
            f"{h}:{p} ({'coordinator' if first else 'worker'})" for h, p, first in self.nodes
        )
        with psycopg.connect(self.url) as conn:
            kinds = conn.execute(
                "SELECT logicalrelid::regclass::text, partmethod FROM pg_dist_partition ORDER BY 1"
            ).fetchall()
            shards = conn.execute("SHOW citus.shard_count").fetchone()
        distributed = [str(t) for t, method in kinds if method == "h"]
        reference = [str(t) for t, method in kinds if method == "n"]
        return [
            f"{self.version()}, {len(self.nodes)} nodes on this machine: {nodes}",
            "settings of "
            + ("every node" if len(per_node) == 1 else "the nodes")
            + ": "
            + " / ".join(sorted(per_node)),
            f"citus.shard_count {shards[0] if shards else '?'}; distributed by workspace_id "
            f"(co-located): {', '.join(distributed)}; reference tables: {', '.join(reference)}",
        ]

    def placement(self) -> str:
        """Where the benchmark workspace's contacts live (Citus: one shard on one node)."""
        if not self.citus:
            return ""
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                "SELECT shardid, nodename, nodeport FROM citus_shards "
                "WHERE table_name = 'contacts'::regclass "
                "AND shardid = get_shard_id_for_distribution_column('contacts', %s::text)",
                (WORKSPACE,),
            ).fetchone()
        if row is None:
            return "the workspace's shard was not found"
        return f"shard {row[0]} of contacts on {row[1]}:{row[2]}"


def ensure_cluster(url: str) -> None:
    """Start the local cluster (.ci/citus-cluster, idempotent) if the coordinator is down."""
    try:
        psycopg.connect(url, connect_timeout=5).close()
        return
    except psycopg.OperationalError:
        pass
    say(f"the coordinator does not answer; starting it: {CLUSTER_SCRIPT} start")
    subprocess.run([str(CLUSTER_SCRIPT), "start"], check=True)


# --- import throughput ------------------------------------------------------------------------


@dataclass(frozen=True)
class Topology:
    label: str
    hosts: int
    workers: int


@dataclass
class ImportCase:
    topology: Topology
    clients: int
    kind: Kind
    runs: dict[str, list[LoadRun]] = field(default_factory=dict)
    load_avg: list[float] = field(default_factory=list)


@dataclass
class Report:
    config: Config
    source: str = ""
    started: float = field(default_factory=time.perf_counter)
    databases: list[Database] = field(default_factory=list)
    imports: list[ImportCase] = field(default_factory=list)
    reads: list[ReadRoute] = field(default_factory=list)
    #: Per backend: seconds to COPY the large workspace, then to add its memberships and
    #: VACUUM ANALYZE.
    load_seconds: dict[str, float] = field(default_factory=dict)
    prepare_seconds: dict[str, float] = field(default_factory=dict)
    placement: str = ""
    loads: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    generated_seconds: float = 0.0

    def note_load(self, when: str) -> None:
        self.loads.append((when, machine.load()))
        say(f"   load average {when}: {machine.load()}")

    def case(self, topology: Topology, clients: int, kind: Kind) -> ImportCase:
        for case in self.imports:
            if (case.topology, case.clients, case.kind) == (topology, clients, kind):
                return case
        case = ImportCase(topology, clients, kind)
        self.imports.append(case)
        return case


def server_log(server: ServerProcess, what: str) -> list[str]:
    """The log's errors (bench.server.log_problems) and warnings, each distinct message once
    with its count (an import worker that fails at every poll says so every second)."""
    lines = log_problems(server)
    lines += [line for line in server.log().splitlines() if " WARNING " in line]
    counts: dict[str, int] = {}
    for line in lines:
        message = _TIMESTAMP.sub("", line).strip()
        counts[message] = counts.get(message, 0) + 1
    return [f"{what}: {n} times: {message}" for message, n in list(counts.items())[:20]]


_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")


def _warm_up(db: Database, urls: Sequence[str], key: str, seed: int) -> list[str]:
    """500 creates and their updates through each host, untimed, checked; then empty."""
    warm = generate(SHAPES[HEADLINE], 500, seed + 7, "warmup.example")
    problems = []
    for url in urls:
        db.reset()
        with httpx.Client(base_url=url, timeout=600, headers=_auth(key)) as http:
            for kind, contacts, size in (
                ("create", warm.creates, 500),
                ("update", warm.updates, 100),
            ):
                for body, count in encode(contacts, size, lists=True):
                    response = http.post("/api/contacts.import", content=body, headers=_JSON)
                    problems += check_answer(response, count, kind, f"{db.label} warm-up {url}")
    db.reset()
    return problems


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _servers(db: Database, topology: Topology) -> list[ServerProcess]:
    return [
        serve(db.url, WORK / f"server-{db.key}-{topology.hosts}-{host}.log", topology.workers)
        for host in range(topology.hosts)
    ]


def measure_imports(
    report: Report, topology: Topology, keys: dict[str, str], dataset: Dataset
) -> None:
    """Every number of clients, every repeat, on both backends in turn: creates, then updates."""
    config = report.config
    say(f"\n== import throughput, {topology.label}")
    shares = {
        (n, kind): share(dataset, Load(HEADLINE, n, kind, BATCH), config.batches)
        for n in config.clients
        for kind in _KINDS
    }
    with ExitStack() as stack:
        urls: dict[str, list[str]] = {}
        servers: dict[str, list[ServerProcess]] = {}
        for db in report.databases:
            servers[db.key] = [stack.enter_context(s) for s in _servers(db, topology)]
            urls[db.key] = [s.base_url for s in servers[db.key]]
            report.problems += _warm_up(db, urls[db.key], keys[db.key], config.seed)
        turn = 0
        for repeat in range(config.repeats):
            for n in config.clients:
                order = report.databases if turn % 2 == 0 else report.databases[::-1]
                turn += 1
                for db in order:
                    _import_case(report, db, topology, n, urls[db.key], keys[db.key], shares)
                    if repeat == 0:
                        _verify(report, db, dataset.head(n * config.batches * BATCH), n)
        for db in report.databases:
            for server in servers[db.key]:
                report.problems += server_log(server, f"{db.label} server log ({topology.label})")


def _import_case(
    report: Report,
    db: Database,
    topology: Topology,
    n: int,
    urls: Sequence[str],
    key: str,
    shares: dict[tuple[int, Kind], list[Bodies]],
) -> None:
    db.reset()
    for kind in _KINDS:
        case = report.case(topology, n, kind)
        case.load_avg.append(os.getloadavg()[0])
        load = Load(HEADLINE, n, kind, BATCH)
        run = run_load(urls, key, load, shares[(n, kind)])
        case.runs.setdefault(db.key, []).append(run)
        report.problems += [f"{db.label}, {topology.label}: {p}" for p in run.problems]
        say(
            f"   {db.label:<11} {load.label:<24} {run.rate:>9,.0f} contacts/s over "
            f"{run.wall:6.2f} s, {run.failures} answers not 200"
        )


def _verify(report: Report, db: Database, sent: Dataset, n: int) -> None:
    found = verify.check_stored(db.url, PROJECT, sent.expected(with_updates=True), lists=False)
    problems = found.problems(f"{db.label}, {n} clients, after the updates")
    report.problems += problems
    for problem in problems:
        say(f"   !! {problem}")


# --- the large workspace ----------------------------------------------------------------------


def creates(count: int, seed: int) -> Iterator[Contact]:
    """The creates of `generate(SHAPES["realistic"], count, seed)`, one at a time: the same
    contacts without holding them all, nor drawing their updates."""
    shape = SHAPES[HEADLINE]
    rng = random.Random(seed)
    for index in range(count):
        person = shape.person(rng)
        email = f"{_ascii(person[0])}.{_ascii(person[1])}{index}@{rng.choice(v.DOMAINS)}"
        raw = shape.typed(rng, email)
        yield Contact(email, raw, shape.fields(rng, person, index, False))


#: workspace_id, email, every field, created_at, updated_at (COPY_TYPES: email, fields, mask).
_COPY = (
    f"COPY contacts (workspace_id, email, {COLUMNS}, created_at, updated_at) "
    "FROM STDIN (FORMAT BINARY)"
)
_COPY_TYPES = ["text", *COPY_TYPES[:-1], "timestamptz", "timestamptz"]
_CHUNK = 20_000


def load_workspace(report: Report, count: int, seed: int, picks: int) -> list[str]:
    """COPY `count` realistic contacts into the workspace on every backend (the same chunk to
    each in turn), half of them into the first list; VACUUM ANALYZE. Returns `picks` emails
    drawn at random among them, in random order."""
    check = [c.email for c in creates(1000, seed)]
    if check != [c.email for c in generate(SHAPES[HEADLINE], 1000, seed).creates]:
        raise RuntimeError("creates() no longer draws what datasets.generate() draws")
    wanted = set(random.Random(seed + 3).sample(range(count), picks))
    picked: list[str] = []
    conns = {db.key: psycopg.connect(db.url) for db in report.databases}
    seconds = dict.fromkeys(conns, 0.0)
    now = datetime.now(UTC)
    try:
        for conn in conns.values():
            set_json_dumps(msgspec.json.encode, context=conn)
        chunk: list[tuple[Any, ...]] = []
        for index, c in enumerate(creates(count, seed)):
            if index in wanted:
                picked.append(c.email)
            chunk.append((WORKSPACE, c.email, *[c.values.get(n) for n in FIELDS], now, now))
            if len(chunk) == _CHUNK or index == count - 1:
                for key, conn in conns.items():
                    seconds[key] += _copy(conn, chunk)
                chunk = []
                if (index + 1) % 200_000 == 0 or index == count - 1:
                    say(f"   {index + 1:,} contacts written ({machine.load()})")
    finally:
        for conn in conns.values():
            conn.close()
    for db in report.databases:
        report.load_seconds[db.key] = seconds[db.key]
        report.prepare_seconds[db.key] = _prepare(db, now)
    random.Random(seed + 4).shuffle(picked)
    return picked


def _copy(conn: psycopg.Connection[Any], rows: Sequence[tuple[Any, ...]]) -> float:
    started = time.perf_counter()
    with conn.transaction(), conn.cursor() as cur, cur.copy(_COPY) as copy:
        copy.set_types(_COPY_TYPES)
        for row in rows:
            copy.write_row(row)
    return time.perf_counter() - started


def _prepare(db: Database, now: datetime) -> float:
    """Half the contacts into the first list; VACUUM ANALYZE (autovacuum may be off)."""
    started = time.perf_counter()
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO contact_lists (workspace_id, email, list_id, status, created_at, "
            "updated_at) SELECT workspace_id, email, %s, 'active', %s, %s FROM contacts "
            "WHERE workspace_id = %s AND hashtext(email) %% 2 = 0",
            (MEMBERS_LIST, now, now, WORKSPACE),
        )
        conn.execute("VACUUM ANALYZE contacts")
        conn.execute("VACUUM ANALYZE contact_lists")
    return time.perf_counter() - started


# --- read latency -----------------------------------------------------------------------------

Params = dict[str, str | int]
Check = Callable[[httpx.Response, int], str]


@dataclass
class ReadRoute:
    label: str
    path: str
    params: Callable[[int], Params]
    check: Check
    seconds: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)


def _has(path: str, test: Callable[[Any, int], bool]) -> Check:
    """A check of one answer: 200, and a body that passes `test` (given the request's index)."""

    def check(response: httpx.Response, i: int) -> str:
        if response.status_code != 200:
            return f"{path} answered {response.status_code}: {response.text[:300]}"
        body = response.json()
        return "" if test(body, i) else f"{path}: unexpected answer {str(body)[:300]}"

    return check


def read_routes(emails: Sequence[str], count: int) -> list[ReadRoute]:
    ws: Params = {"workspace_id": WORKSPACE}

    def page(i: int) -> Params:
        return {**ws, "limit": 100, "cursor": encode_cursor(emails[-1 - i])}

    def by_email(i: int) -> Params:
        return {**ws, "email": emails[i]}

    return [
        ReadRoute(
            "contacts.getByEmail (a random contact)",
            "/api/contacts.getByEmail",
            by_email,
            _has("contacts.getByEmail", lambda b, i: b["contact"]["email"] == emails[i]),
        ),
        ReadRoute(
            "contacts.list, limit 100, after a random cursor",
            "/api/contacts.list",
            page,
            _has("contacts.list", lambda b, i: 0 < len(b["contacts"]) <= 100),
        ),
        ReadRoute(
            f"contacts.list, list_id={MEMBERS_LIST} (half the contacts), limit 100, "
            "after a random cursor",
            "/api/contacts.list",
            lambda i: {**page(i), "list_id": MEMBERS_LIST},
            _has("contacts.list", lambda b, i: len(b["contacts"]) <= 100),
        ),
        ReadRoute(
            "contacts.count",
            "/api/contacts.count",
            lambda i: ws,
            _has("contacts.count", lambda b, i: b["total_contacts"] == count),
        ),
    ]


def measure_reads(report: Report, keys: dict[str, str], emails: Sequence[str]) -> None:
    """Each route: `requests` requests per backend, the backends taking turns request by
    request, after a few untimed ones."""
    config = report.config
    routes = read_routes(emails, config.contacts)
    report.reads = routes
    with ExitStack() as stack:
        clients: dict[str, httpx.Client] = {}
        servers: dict[str, ServerProcess] = {}
        for db in report.databases:
            server = stack.enter_context(serve(db.url, WORK / f"server-{db.key}-reads.log", 2))
            servers[db.key] = server
            clients[db.key] = stack.enter_context(
                httpx.Client(base_url=server.base_url, timeout=600, headers=_auth(keys[db.key]))
            )
        for route in routes:
            for i in range(5):
                for db in report.databases:
                    clients[db.key].get(route.path, params=route.params(i))
            for i in range(config.requests):
                order = report.databases if i % 2 == 0 else report.databases[::-1]
                for db in order:
                    _read(report, db, route, clients[db.key], i)
            medians = "; ".join(
                f"{db.label} median {_ms(statistics.median(route.seconds[db.key]))} ms, "
                f"p95 {_ms(p95(route.seconds[db.key]))} ms"
                for db in report.databases
            )
            say(f"   {route.label}: {medians}")
        for db in report.databases:
            report.problems += server_log(servers[db.key], f"{db.label} server log (reads)")


def _read(report: Report, db: Database, route: ReadRoute, client: httpx.Client, i: int) -> None:
    started = time.perf_counter()
    try:
        response = client.get(route.path, params=route.params(i))
    except httpx.HTTPError as exc:
        route.failures[db.key] = route.failures.get(db.key, 0) + 1
        report.problems.append(f"{db.label}, {route.label}: {type(exc).__name__}: {exc}")
        return
    route.seconds.setdefault(db.key, []).append(time.perf_counter() - started)
    route.failures[db.key] = route.failures.get(db.key, 0) + (response.status_code != 200)
    if problem := route.check(response, i):
        report.problems.append(f"{db.label}, {route.label}: {problem}")


def p95(values: Sequence[float]) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


# --- the report -------------------------------------------------------------------------------


def _median_rate(runs: Sequence[LoadRun]) -> float:
    return statistics.median(r.rate for r in runs) if runs else float("nan")


def _import_table(report: Report) -> list[str]:
    pg, citus = (db.key for db in report.databases)
    out = [
        "| servers | clients | kind | contacts per client | PostgreSQL contacts/s | "
        "Citus contacts/s | Citus ÷ PostgreSQL | non-200 (PostgreSQL / Citus) | load (1 min) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case in report.imports:
        a, b = case.runs.get(pg, []), case.runs.get(citus, [])
        ratios = [y.rate / x.rate for x, y in zip(a, b, strict=False)]
        ratio = f"{statistics.median(ratios):.2f}" if ratios else "—"
        spread = f" ({min(ratios):.2f} to {max(ratios):.2f})" if len(ratios) > 1 else ""
        failures = f"{sum(r.failures for r in a)} / {sum(r.failures for r in b)}"
        per_client = report.config.batches * BATCH
        marks = sorted({f"{x:.1f}" for x in case.load_avg}, key=float)
        load = " to ".join(marks[:: max(len(marks) - 1, 1)]) or "?"
        out.append(
            f"| {case.topology.label} | {case.clients} | {case.kind} | {per_client:,} "
            f"| {_median_rate(a):,.0f} | {_median_rate(b):,.0f} | {ratio}{spread} "
            f"| {failures} | {load} |"
        )
    return out


def _read_table(report: Report) -> list[str]:
    pg, citus = (db.key for db in report.databases)
    out = [
        "| route | requests each | PostgreSQL median ms | PostgreSQL p95 ms | Citus median ms "
        "| Citus p95 ms | Citus ÷ PostgreSQL (median) | non-200 (PostgreSQL / Citus) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for route in report.reads:
        a, b = route.seconds.get(pg, []), route.seconds.get(citus, [])
        if not a or not b:
            out.append(f"| {route.label} | — | | | | | | |")
            continue
        ratio = statistics.median(b) / statistics.median(a)
        failures = f"{route.failures.get(pg, 0)} / {route.failures.get(citus, 0)}"
        out.append(
            f"| {route.label} | {len(a)} | {_ms(statistics.median(a))} | {_ms(p95(a))} "
            f"| {_ms(statistics.median(b))} | {_ms(p95(b))} | {ratio:.2f} | {failures} |"
        )
    return out


def markdown(report: Report, when: str) -> str:
    config = report.config
    wall = time.perf_counter() - report.started
    pg_db, citus_db = report.databases
    out = [
        SECTION,
        "",
        f"Written by `{config.command}` on {when} ({wall / 60:,.0f} min); bench/README.md "
        '("Citus") says what is measured. Rates are contacts per second over the wall time of '
        f"all the clients, the median of {config.repeats} repeat(s); a ratio is the median of "
        "the per-repeat ratios (lowest to highest in brackets). Citus and PostgreSQL run on the "
        "same 2-core machine as the servers and the clients, and the machine is shared (another "
        "engineer's test runs): the load average is given with each figure.",
        "",
        f"- machine: {machine.summary()}; {machine.python_version()}",
        f"- source: {report.source}",
        *(f"- Citus: {line}" for line in citus_db.description),
        *(f"- PostgreSQL: {line}" for line in pg_db.description),
        *(f"- {db.label}: {note}" for db in report.databases for note in db.notes),
        _durability(citus_db.description, pg_db.description),
        f"- servers: the caller's AUDIENCE_* settings: {_passed()}",
        "- load average (1, 5, 15 min): "
        + "; ".join(f"{when}: {load}" for when, load in report.loads),
        "",
        "### Import throughput",
        "",
        f"`POST /api/contacts.import`, realistic data in {BATCH:,}-contact batches, no lists; "
        f"each client sends {config.batches} batch(es) of creates at once with the others, "
        "then the same emails as updates, from empty tables. One host: one `audience serve "
        f"--workers 2`. Two hosts: two `audience serve --workers {config.host_workers}` on "
        "their own ports, client i on host i mod 2 (one client: the first host only). Every "
        "stored contact was compared with the dataset after the first repeat of each case.",
        "",
        *_import_table(report),
        "",
        f"### Read latency on a workspace of {config.contacts:,} contacts",
        "",
        f"{config.contacts:,} realistic contacts (seed {config.seed}) written by binary COPY "
        "(into the distributed table on the coordinator) in "
        + ", ".join(
            f"{db.label} {report.load_seconds.get(db.key, 0):,.0f} s" for db in report.databases
        )
        + f"; half of them then made members of `{MEMBERS_LIST}` and both tables VACUUM "
        "ANALYZEd in "
        + ", ".join(
            f"{db.label} {report.prepare_seconds.get(db.key, 0):,.0f} s" for db in report.databases
        )
        + f". On Citus the workspace is one shard: {report.placement}. One `audience serve "
        "--workers 2` per backend, one request at a time over a kept-alive connection, the "
        "backends taking turns request by request; 5 untimed requests of each route first.",
        "",
        *_read_table(report),
        "",
    ]
    if report.problems:
        out += ["Problems seen:", "", *(f"- {p}" for p in report.problems[:40]), ""]
    else:
        out += [
            "No problem seen: every answer 200, every stored contact as sent, no error in "
            "the server logs.",
            "",
        ]
    return "\n".join(out)


def _passed() -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(passed_env().items())) or "none (defaults)"


def section_of(text: str) -> str | None:
    """The "## Citus" section of `text` (to the next "## " heading), if it has one."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SECTION), None)
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), None)
    return "".join(lines[start:end]).rstrip("\n") + "\n"


def _durability(citus: Sequence[str], postgres: Sequence[str]) -> str:
    """The line that says whether both backends run durably (fsync on), from their settings."""
    durable = ["fsync=on" in " ".join(lines) for lines in (citus, postgres)]
    if all(durable):
        return (
            "- both run durably (fsync, synchronous_commit, full_page_writes on): like for like "
            "(the cluster started with AUDIENCE_CITUS_DURABLE=1 .ci/citus-cluster start)"
        )
    return (
        "- the two differ in durability settings, which no benchmark changes on a shared server: "
        f"the cluster {'with' if durable[0] else 'without'} fsync, the plain server "
        f"{'with' if durable[1] else 'without'} it (a durable cluster: "
        "AUDIENCE_CITUS_DURABLE=1 .ci/citus-cluster start, on other ports with "
        "AUDIENCE_CITUS_PORT)"
    )


def replace_section(text: str, section: str) -> str:
    """`text` with its "## Citus" section (to the next "## " heading) replaced by `section`,
    or `section` appended."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SECTION), None)
    body = section.rstrip("\n") + "\n"
    if start is None:
        return text.rstrip("\n") + "\n\n" + body
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), None)
    if end is None:
        return "".join(lines[:start]) + body
    return "".join(lines[:start]) + body + "\n" + "".join(lines[end:])


def write(report: Report) -> None:
    config = report.config
    when = f"{datetime.now(UTC).astimezone():%Y-%m-%d %H:%M %Z}"
    section = markdown(report, when)
    say("\n" + section)
    if config.output is None:
        return
    config.output.parent.mkdir(parents=True, exist_ok=True)
    if config.quick:
        text = "# Citus benchmark (quick run)\n\n" + section.replace(SECTION + "\n", "", 1)
    else:
        existing = config.output.read_text() if config.output.exists() else ""
        text = replace_section(existing, section) if existing else section
    config.output.write_text(text)
    say(f"wrote {config.output}")


# --- main -------------------------------------------------------------------------------------


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(report: Report) -> None:
    config = report.config
    report.note_load("at the start")
    started = time.perf_counter()
    say(f"generating {config.dataset_size:,} realistic contacts and their updates")
    dataset = generate(SHAPES[HEADLINE], config.dataset_size, config.seed)
    report.generated_seconds = time.perf_counter() - started
    keys: dict[str, str] = {}
    for db in report.databases:
        say(f"== {db.label}: a fresh database {DATABASE}, `audience db upgrade`")
        db.create()
        keys[db.key] = create_workspace(db.url)
        with (
            serve(db.url, WORK / f"server-{db.key}-lists.log", 1) as server,
            httpx.Client(base_url=server.base_url, headers=_auth(keys[db.key])) as client,
        ):
            create_lists(client)
        db.description = db.describe()
        for line in db.description:
            say(f"   {line}")
    topologies = (
        Topology("one host, --workers 2", 1, 2),
        Topology(f"two hosts, --workers {config.host_workers} each", 2, config.host_workers),
    )
    for topology in topologies:
        with _phase(report, f"import throughput, {topology.label}"):
            measure_imports(report, topology, keys, dataset)
        report.note_load(f"after {topology.label}")
    del dataset
    say(f"\n== a workspace of {config.contacts:,} contacts")
    with _phase(report, "the large workspace"):
        for db in report.databases:
            db.reset()
        emails = load_workspace(report, config.contacts, config.seed, config.requests)
        report.placement = report.databases[1].placement()
        report.note_load("after loading the large workspace")
        measure_reads(report, keys, emails)
    report.note_load("at the end")


@contextmanager
def _phase(report: Report, what: str) -> Iterator[None]:
    """Run a phase; an error ends it (recorded with its traceback's last lines), not the run."""
    try:
        yield
    except (RuntimeError, OSError, psycopg.Error, httpx.HTTPError) as exc:
        lines = traceback.format_exception(exc)
        report.problems.append(f"{what} stopped: {type(exc).__name__}: {str(exc)[:2000]}")
        say("".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(sys.argv[1:] if argv is None else list(argv))
    signal.signal(signal.SIGTERM, _terminate)
    ensure_cluster(config.citus_url)
    report = Report(config, source=machine.git_state())
    copy = pin_source(machine.ROOT, WORK)
    say(f"servers run a copy of src/ taken now ({report.source}): {copy}")
    report.databases = [
        Database("PostgreSQL", config.pg_url, citus=False),
        Database("Citus", config.citus_url, citus=True),
    ]
    try:
        run(report)
    finally:
        for db in report.databases:
            if db.nodes:
                db.drop()
    source = machine.git_state()
    if source != report.source:
        report.source += f" (copied at the start; src/ was {source} at the end)"
    write(report)
    for problem in report.problems:
        say(f"!! {problem}")
    say(f"total time {time.perf_counter() - report.started:,.0f} s")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
