"""Measurements as they are taken: per setup, per case and route, per repeat."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from bench.cases import Case, Load, Resync, Route, Setup


@dataclass
class Run:
    """One route through one case: the time of each request (or transaction)."""

    seconds: list[float] = field(default_factory=list)
    contacts: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Contacts per second of time spent in requests (or transactions)."""
        return self.contacts / sum(self.seconds)

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)


@dataclass
class LoadRun:
    """One concurrent load: every client's batches, over the wall time of all of them."""

    wall: float
    contacts: int
    requests: int
    #: Answers other than 200, and transport errors.
    failures: int
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.contacts / self.wall


@dataclass
class SetupResult:
    setup: Setup
    version: str = ""
    routes: tuple[Route, ...] = ()
    runs: dict[Case, dict[Route, list[Run]]] = field(default_factory=dict)
    #: The import's re-syncs, one run per repeat.
    resyncs: dict[Resync, list[Run]] = field(default_factory=dict)
    loads: dict[Load, list[LoadRun]] = field(default_factory=dict)
    naive: list[float] = field(default_factory=list)
    idle_rss_kib: int = 0
    #: Peak worker RSS while one dataset's cases ran (sequential requests), by dataset.
    peak_rss_kib: dict[str, int] = field(default_factory=dict)
    #: Peak worker RSS during the concurrent loads.
    load_rss_kib: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def record(self, case: Case, route: Route, run: Run) -> None:
        self.runs.setdefault(case, {}).setdefault(route, []).append(run)
        self.problems += run.problems

    def record_resync(self, resync: Resync, run: Run) -> None:
        self.resyncs.setdefault(resync, []).append(run)
        self.problems += run.problems

    def record_load(self, load: Load, run: LoadRun) -> None:
        self.loads.setdefault(load, []).append(run)
        self.problems += run.problems

    def of(self, case: Case, route: Route) -> list[Run]:
        """The runs of a case by a route, one per repeat (empty if not measured)."""
        return self.runs.get(case, {}).get(route, [])
