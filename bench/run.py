"""Orchestration of `python -m bench`: the datasets, then each setup, then the report.

Each setup (PostgreSQL with primed statistics, PostgreSQL with fresh ones, SQLite) gets a
fresh database and one server (`audience serve --workers 2`) for all its cases; on
PostgreSQL with primed statistics the data is first loaded once and ANALYZEd (see
Postgres.prime_statistics). Rates are contacts per second of wall time spent in requests
(import) or in transactions (floor); ratios are computed per repeat (import and floor
measured within a minute or two of each other, on the same tables) and their median over
the repeats is reported. bench/README.md says what every figure means.
"""

from __future__ import annotations

import gc
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType

from bench import citus, machine, report
from bench.backends import Backend, Postgres, Sqlite
from bench.cases import IMPORT, Route, Setup
from bench.datasets import SHAPES, Dataset, generate
from bench.floor import Floor
from bench.options import HEADLINE, WORK_DIR, Options, parse_args
from bench.paths import open_floors
from bench.results import SetupResult
from bench.server import create_lists, create_workspace, pin_source, rss_kib
from bench.session import Session, clock, say


def datasets(options: Options) -> dict[str, Dataset]:
    """Every selected dataset; the headline one large enough for the concurrent loads too."""
    out = {}
    for name in options.datasets:
        count = options.contacts
        if name == HEADLINE and options.clients:
            count = max(count, options.load_contacts())
        say(f"generating {count:,} {name} contacts and their updates (seed {options.seed})")
        out[name] = generate(SHAPES[name], count, options.seed)
    # What is generated lives to the end: out of the collector's way while timing.
    gc.collect()
    gc.freeze()
    return out


def backend_of(setup: Setup, options: Options) -> Backend:
    if setup.backend == "postgres":
        return Postgres(options.pg_url, options.pg_database)
    return Sqlite(WORK_DIR / "bench.db")


@contextmanager
def closing(floors: Mapping[Route, Floor]) -> Iterator[None]:
    try:
        yield
    finally:
        for floor in floors.values():
            floor.close()


def describe(session: Session, data: Mapping[str, Dataset]) -> None:
    """Settings and plans into the notes; statistics primed when the setup says so."""
    result, backend = session.result, session.backend
    result.notes.append(f"settings: {backend.settings()}")
    plan = backend.lookup_plan()
    result.notes.append(f"a lookup by (workspace_id, email) on the fresh table uses {plan}")
    if isinstance(backend, Postgres) and result.setup.statistics == "primed":
        say("   loading the data once to give the planner statistics (untimed)")
        first = data[session.options.datasets[0]].head(session.options.contacts)
        backend.prime_statistics(first)
        result.notes.append(
            f"statistics primed before measuring ({first.name} data loaded once, ANALYZE, "
            f"TRUNCATE): the same lookup then uses {backend.lookup_plan()}"
        )
    result.notes.append(f"load average at the start: {machine.load()}")
    for note in result.notes:
        say(f"   {note}")


def measure(session: Session, data: Mapping[str, Dataset]) -> None:
    """Each dataset with a server of its own, then the concurrent loads with another."""
    options, result = session.options, session.result
    for index, name in enumerate(options.datasets):
        with session.serving() as live:
            if index == 0:
                create_lists(live.client)
                describe(session, data)
                result.idle_rss_kib = rss_kib(live.server)
                session.warm_up(live, name, session.routes)
                session.self_test(live)
            else:
                session.warm_up(live, name, [IMPORT])
            session.measure(live, data[name].head(options.contacts))
    if loads := options.loads(result.setup):
        with session.serving() as live:
            session.warm_up(live, HEADLINE, [IMPORT])
            session.measure_loads(live, data[HEADLINE], loads)
    result.notes.append(f"load average at the end: {machine.load()}")


def run_setup(setup: Setup, options: Options, data: Mapping[str, Dataset]) -> SetupResult:
    started = time.perf_counter()
    result = SetupResult(setup)
    backend = backend_of(setup, options)
    say(f"\n== {setup.label}: preparing a fresh database (at {clock()})")
    backend.prepare()
    result.version = backend.version()
    key = create_workspace(backend.url)
    floors = open_floors(backend, options.pg_floors, options.pk_only)
    with closing(floors):
        session = Session(options, backend, key, floors, result)
        result.routes = tuple(session.routes)
        measure(session, data)
    backend.drop()
    result.seconds = time.perf_counter() - started
    return result


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(sys.argv[1:] if argv is None else list(argv))
    source_at_start = machine.git_state()
    copy = pin_source(machine.ROOT, WORK_DIR)
    say(f"servers run a copy of src/ taken now ({source_at_start}): {copy}")
    # A SIGTERM unwinds like Ctrl-C, so that the server and its workers are stopped.
    signal.signal(signal.SIGTERM, _terminate)
    started = time.perf_counter()
    data = datasets(options)
    results = []
    for setup in options.setups():
        results.append(run_setup(setup, options, data))
        say("\n" + report.console(results[-1], options))
    say("")
    for result in results:
        say(report.console(result, options) + "\n")
        for problem in result.problems:
            say(f"!! {result.setup.label}: {problem}")
    if options.output is not None:
        source = machine.git_state()
        if source != source_at_start:
            source = f"{source_at_start} (copied at the start; src/ was {source} at the end)"
        when = f"{datetime.now(UTC).astimezone():%Y-%m-%d %H:%M %Z}"
        options.output.parent.mkdir(parents=True, exist_ok=True)
        text = report.markdown(results, options, source, when)
        # The Citus section comes from its own command (python -m bench.citus): kept.
        kept = citus.section_of(options.output.read_text()) if options.output.exists() else None
        options.output.write_text(citus.replace_section(text, kept) if kept else text)
        say(f"wrote {options.output}")
    say(f"total time {time.perf_counter() - started:,.0f} s")
    return 1 if any(r.problems for r in results) else 0
