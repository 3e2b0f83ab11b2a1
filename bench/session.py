"""One setup at work: its database, server, client and floors, through every case.

Per dataset and repeat, for each group of cases, every route (the import over HTTP, then
each floor; the order rotates from one repeat to the next) starts from empty tables and
applies the same batches, one request or transaction at a time; the import then sends the
update bodies once more (the re-sync, nothing to write). The first repeat checks what every
route stored. Then the naive path, then the concurrent loads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from audience.kit.server_process import ServerProcess
from bench import concurrency, verify
from bench.backends import Backend
from bench.cases import IMPORT, Case, Group, Load, Route
from bench.datasets import SHAPES, Dataset, generate
from bench.floor import Floor
from bench.options import HEADLINE, WORK_DIR, Options
from bench.paths import (
    Bodies,
    encode,
    floor_case,
    import_case,
    naive_rate,
    resync_case,
    source,
)
from bench.results import Run, SetupResult
from bench.server import log_problems, reset_peak_rss, rss_kib, serve
from bench.tables import PK_ONLY, PROJECT

#: Contacts sent through every route once before measuring (first-use costs).
WARMUP_CONTACTS = 500


_STARTED = time.perf_counter()


def say(message: str) -> None:
    print(message, flush=True)


def clock() -> str:
    """Seconds since the benchmark started, for the progress lines."""
    return f"{time.perf_counter() - _STARTED:,.0f} s"


def _progress(label: str, route: Route, run: Run) -> None:
    say(
        f"   {label:<30} {route.label:<28} {run.rate:>9,.0f} contacts/s"
        f"  (median {run.median_seconds * 1000:,.0f} ms)"
    )


@dataclass
class Live:
    """A running server and a client of it."""

    server: ServerProcess
    client: httpx.Client


@dataclass
class Session:
    options: Options
    backend: Backend
    key: str
    floors: Mapping[Route, Floor]
    result: SetupResult

    @property
    def routes(self) -> list[Route]:
        return [IMPORT, *self.floors]

    @contextmanager
    def serving(self) -> Iterator[Live]:
        """A server with fresh workers (so each dataset's peak memory is its own), a client."""
        log = WORK_DIR / f"server-{self.backend.name}.log"
        server = serve(self.backend.url, log, self.options.workers)
        auth = {"Authorization": f"Bearer {self.key}"}
        with server, httpx.Client(base_url=server.base_url, timeout=600, headers=auth) as client:
            try:
                yield Live(server, client)
            finally:
                lines = log_problems(server)[:20]
                self.result.problems += [f"server log: {line}" for line in lines]

    def apply(
        self, live: Live, route: Route, case: Case, dataset: Dataset, bodies: Bodies | None
    ) -> Run:
        """One case by one route; the import sends `bodies` (or encodes them now, untimed)."""
        if route == IMPORT:
            if bodies is None:
                bodies = encode(source(dataset, case), case.batch, case.lists)
            return import_case(live.client, case, bodies)
        return floor_case(self.floors[route], route, dataset, case)

    def check(self, route: Route, dataset: Dataset, lists: bool, what: str) -> None:
        """Record every difference between what `route` stored and the dataset."""
        if not self.options.verify:
            return
        tables = PK_ONLY if route.pk_only else PROJECT
        expected = dataset.expected(with_updates=True)
        found = verify.check_stored(self.backend.url, tables, expected, lists)
        problems = found.problems(f"{self.result.setup.label}, {route.label}, {what}")
        self.result.problems += problems
        for problem in problems:
            say(f"   !! {problem}")

    def warm_up(self, live: Live, name: str, routes: Sequence[Route]) -> None:
        """`routes` through a few contacts of dataset `name` (untimed), each checked."""
        say(f"   warming up {', '.join(r.label for r in routes)} on {name} (untimed)")
        warm = generate(SHAPES[name], WARMUP_CONTACTS, self.options.seed + 7, "warmup.example")
        cases = (Case(name, "create", WARMUP_CONTACTS, True), Case(name, "update", 100, True))
        for route in routes:
            self.backend.reset()  # the naive path, or a previous warm-up, left contacts
            for case in cases:
                self.apply(live, route, case, warm, None)
            self.check(route, warm, True, f"warm-up on {name}")

    def self_test(self, live: Live) -> None:
        """Fail the run unless the verification catches wrong data (on warm-up contacts)."""
        if not self.options.verify:
            return
        name = self.options.datasets[0]
        warm = generate(SHAPES[name], WARMUP_CONTACTS, self.options.seed + 7, "warmup.example")
        self.backend.reset()
        self.apply(live, IMPORT, Case(name, "create", WARMUP_CONTACTS), warm, None)
        expected = warm.expected(with_updates=False)
        self.result.problems += verify.self_test(self.backend.url, PROJECT, expected)
        self.backend.reset()

    def measure(self, live: Live, dataset: Dataset) -> None:
        """Every group of one dataset, every repeat, every route; then the naive path."""
        groups = self.options.groups(self.result.setup, dataset.name)
        say(f"   {dataset.name}: encoding request bodies")
        bodies = {
            case: encode(source(dataset, case), case.batch, case.lists)
            for group in groups
            for case in group.cases
        }
        reset_peak_rss(live.server)
        repeats = self.options.repeats
        for repeat in range(repeats):
            say(
                f"-- {self.result.setup.label}, {dataset.name}, repeat {repeat + 1}/{repeats} "
                f"(at {clock()})"
            )
            for group in groups:
                self._group(live, group, dataset, bodies, repeat)
            if self.options.naive and dataset.name == HEADLINE and self.result.setup.complete:
                self.backend.reset()
                rate = naive_rate(live.client, dataset.creates[: self.options.naive])
                self.result.naive.append(rate)
                say(f"   naive contacts.upsert x{self.options.naive:<8} {rate:>9,.0f} contacts/s")
        self.result.peak_rss_kib[dataset.name] = rss_kib(live.server, "VmHWM")

    def _group(
        self, live: Live, group: Group, dataset: Dataset, bodies: Mapping[Case, Bodies], repeat: int
    ) -> None:
        routes = self.routes
        shift = repeat % len(routes)
        for route in routes[shift:] + routes[:shift]:
            self.backend.reset()
            for case in group.cases:
                run = self.apply(live, route, case, dataset, bodies[case])
                self.result.record(case, route, run)
                _progress(case.label, route, run)
            if route == IMPORT:
                resync = group.resync
                run = resync_case(live.client, resync, bodies[resync.update])
                self.result.record_resync(resync, run)
                _progress(resync.label, route, run)
            if repeat == 0:
                self.check(route, dataset, group.lists, f"after {group.cases[-1].label}")

    def measure_loads(
        self, live: Live, dataset: Dataset, loads: Sequence[tuple[Load, Load]]
    ) -> None:
        """Each number of concurrent clients: their creates, then their updates, per repeat."""
        say(f"-- {self.result.setup.label}, concurrent loads (at {clock()})")
        reset_peak_rss(live.server)
        batches = self.options.load_batches
        for create, update in loads:
            shares = {load: concurrency.share(dataset, load, batches) for load in (create, update)}
            sent = dataset.head(create.clients * batches * create.batch)
            for repeat in range(self.options.repeats):
                self.backend.reset()
                for load in (create, update):
                    run = concurrency.run_load([live.server.base_url], self.key, load, shares[load])
                    self.result.record_load(load, run)
                    say(
                        f"   {load.label:<30} {run.rate:>9,.0f} contacts/s over {run.wall:.2f} s, "
                        f"{run.failures} answers not 200"
                    )
                if repeat == 0:
                    self.check(IMPORT, sent, False, f"after {update.label}")
        self.result.load_rss_kib = rss_kib(live.server, "VmHWM")
