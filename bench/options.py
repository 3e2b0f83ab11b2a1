"""Command-line options of `python -m bench`, and what they make of the cases."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.cases import Group, Load, Setup, Statistics
from bench.datasets import DEFAULT_SEED, SHAPES
from bench.floor_postgres import VARIANTS

BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR / ".work"
HEADLINE = next(iter(SHAPES))  # the realistic dataset
DEFAULT_PG_URL = os.environ.get(
    "AUDIENCE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@dataclass
class Options:
    contacts: int = 100_000
    batch_sizes: tuple[int, ...] = (10_000, 1_000)
    repeats: int = 3
    naive: int = 2_000
    backends: tuple[str, ...] = ("postgres", "sqlite")
    datasets: tuple[str, ...] = tuple(SHAPES)
    #: Datasets measured at the large batch size only.
    large_only: frozenset[str] = frozenset()
    statistics: tuple[Statistics, ...] = ("primed", "fresh")
    clients: tuple[int, ...] = (2, 8)
    #: Batches each concurrent client sends, per kind (create, then update).
    load_batches: int = 2
    pg_url: str = DEFAULT_PG_URL
    pg_database: str = "audience_bench"
    pg_floors: tuple[str, ...] = ("copy", "unnest")
    pk_only: bool = True
    lists: bool = True
    verify: bool = True
    workers: int = 2
    seed: int = DEFAULT_SEED
    output: Path | None = BENCH_DIR / "RESULTS.md"
    quick: bool = False
    command: str = field(default="python -m bench")

    @property
    def large(self) -> int:
        return self.batch_sizes[0]

    def setups(self) -> list[Setup]:
        """PostgreSQL once per statistics mode (fresh is reduced beside primed), then SQLite."""
        setups: list[Setup] = []
        for backend in self.backends:
            if backend == "sqlite":
                setups.append(Setup("sqlite"))
                continue
            for i, mode in enumerate(self.statistics):
                setups.append(Setup("postgres", mode, complete=i == 0))
        return setups

    def groups(self, setup: Setup, dataset: str) -> list[Group]:
        """The groups of one dataset in one setup, large batches first."""
        reduced = dataset in self.large_only or not setup.complete
        sizes = self.batch_sizes[:1] if reduced else self.batch_sizes
        groups = [Group(dataset, batch) for batch in sizes]
        if self.lists and dataset == HEADLINE:
            groups.append(Group(dataset, self.large, lists=True))
        return groups

    def loads(self, setup: Setup) -> list[tuple[Load, Load]]:
        """Per number of clients, its creates then its updates; in complete setups only."""
        if not setup.complete or HEADLINE not in self.datasets:
            return []
        big = self.large
        return [
            (Load(HEADLINE, n, "create", big), Load(HEADLINE, n, "update", big))
            for n in self.clients
        ]

    def load_contacts(self) -> int:
        """Contacts the largest concurrent load sends (each client its own)."""
        return max(self.clients, default=0) * self.load_batches * self.large


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Import throughput vs the database floor and the naive path (issue 4).",
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="20,000 contacts, one repeat, fewer cases, ~2 min")
    add("--contacts", type=int, help="contacts per dataset (default 100,000)")
    add("--repeats", type=int, help="repeats, the median is reported (default 3)")
    add("--naive", type=int, help="contacts sent one by one (default 2,000; 0 to skip)")
    add("--batch-sizes", help="comma list of batch sizes; the first is the large one (10000,1000)")
    add("--backends", help="comma list of postgres,sqlite (default both)")
    add("--datasets", help=f"comma list among {','.join(SHAPES)} (default all)")
    add("--fresh-stats", action="store_true", help="PostgreSQL: fresh statistics only, no priming")
    add("--primed-stats", action="store_true", help="PostgreSQL: primed statistics only")
    add("--clients", help="comma list of concurrent clients (default 2,8; 0 to skip)")
    add("--pg-url", default=DEFAULT_PG_URL, help="an admin URL of the PostgreSQL server")
    add("--pg-database", default="audience_bench", help="dropped and re-created")
    add("--pg-floors", help=f"floor variants among {','.join(VARIANTS)} (default copy,unnest)")
    add("--no-pk-only", action="store_true", help="skip the PK-only reference floor")
    add("--no-lists", action="store_true", help="skip the subscribe_to_lists cases")
    add("--no-verify", action="store_true", help="skip checking the stored data")
    add("--seed", type=int, default=DEFAULT_SEED)
    add("--output", help="where to write the Markdown report ('-' for none)")
    return parser


def _names(
    value: str, allowed: Sequence[str], what: str, parser: argparse.ArgumentParser
) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = set(names) - set(allowed)
    if unknown:
        parser.error(f"unknown {what}: {', '.join(sorted(unknown))}")
    return names


def parse_args(argv: Sequence[str]) -> Options:
    parser = _parser()
    args = parser.parse_args(argv)
    options = Options(
        quick=args.quick, seed=args.seed, command=" ".join(["python -m bench", *argv])
    )
    if args.quick:
        options.contacts, options.repeats, options.naive = 20_000, 1, 300
        options.large_only = frozenset(SHAPES) - {HEADLINE}
        options.statistics, options.load_batches = ("primed",), 1
        options.output = WORK_DIR / "RESULTS-quick.md"
    if args.fresh_stats and args.primed_stats:
        parser.error("--fresh-stats and --primed-stats exclude each other")
    if args.fresh_stats or args.primed_stats:
        options.statistics = ("fresh",) if args.fresh_stats else ("primed",)
    for name in ("contacts", "repeats", "naive"):
        if getattr(args, name) is not None:
            setattr(options, name, getattr(args, name))
    if args.batch_sizes:
        options.batch_sizes = tuple(dict.fromkeys(int(s) for s in args.batch_sizes.split(",")))
    if args.backends:
        options.backends = _names(args.backends, ("postgres", "sqlite"), "backend(s)", parser)
    if args.datasets:
        options.datasets = _names(args.datasets, tuple(SHAPES), "dataset(s)", parser)
    if args.pg_floors:
        options.pg_floors = _names(args.pg_floors, VARIANTS, "floor variant(s)", parser)
    if args.clients:
        options.clients = tuple(n for n in (int(s) for s in args.clients.split(",")) if n > 0)
    if args.output:
        options.output = None if args.output == "-" else Path(args.output)
    options.pg_url, options.pg_database = args.pg_url, args.pg_database
    options.pk_only, options.lists = not args.no_pk_only, not args.no_lists
    options.verify = not args.no_verify
    options.batch_sizes = tuple(
        dict.fromkeys(min(b, options.contacts) for b in options.batch_sizes)
    )
    if (
        options.contacts < 1
        or options.repeats < 1
        or not options.batch_sizes
        or not options.datasets
    ):
        parser.error("nothing to measure")
    return options
