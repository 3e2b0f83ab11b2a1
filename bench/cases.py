"""What is measured, as hashable values: setups, cases, re-syncs, routes and concurrent loads.

Results are keyed by these objects; nothing is ever parsed back out of a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["create", "update"]
Statistics = Literal["primed", "fresh", ""]
KINDS: tuple[Kind, Kind] = ("create", "update")


def size(batch: int) -> str:
    """10000 -> '10k'."""
    return f"{batch // 1000}k" if batch % 1000 == 0 else f"{batch:,}"


@dataclass(frozen=True)
class Setup:
    """One database with its server: a backend, and on PostgreSQL how statistics start.

    `complete` is False for the fresh-statistics setup beside a primed one: it measures
    only the large batches, and neither the naive path nor concurrency.
    """

    backend: Literal["postgres", "sqlite"]
    statistics: Statistics = ""
    complete: bool = True

    @property
    def label(self) -> str:
        name = "PostgreSQL" if self.backend == "postgres" else "SQLite"
        return f"{name}, {self.statistics} statistics" if self.statistics else name


@dataclass(frozen=True)
class Case:
    """Batches of one dataset, created or updated, maybe subscribed to the two lists."""

    dataset: str
    kind: Kind
    batch: int
    lists: bool = False

    @property
    def name(self) -> str:
        return f"{self.kind}{' +2 lists' if self.lists else ''} {size(self.batch)}"

    @property
    def label(self) -> str:
        return f"{self.dataset} {self.name}"


@dataclass(frozen=True)
class Group:
    """Cases that run one after the other from empty tables: creates, then the same emails
    as updates."""

    dataset: str
    batch: int
    lists: bool = False

    @property
    def cases(self) -> tuple[Case, Case]:
        return (
            Case(self.dataset, "create", self.batch, self.lists),
            Case(self.dataset, "update", self.batch, self.lists),
        )

    @property
    def resync(self) -> Resync:
        return Resync(self.dataset, self.batch, self.lists)


@dataclass(frozen=True)
class Resync:
    """The update case's bodies sent again by the import, unchanged, right after it: every
    contact is already as the body says, so nothing is written."""

    dataset: str
    batch: int
    lists: bool = False

    @property
    def update(self) -> Case:
        """The case whose bodies it sends again, and whose floor it is compared with."""
        return Case(self.dataset, "update", self.batch, self.lists)

    @property
    def label(self) -> str:
        return f"{self.dataset} re-sync{' +2 lists' if self.lists else ''} {size(self.batch)}"


@dataclass(frozen=True)
class Route:
    """A way of applying the batches: the import over HTTP, or a floor variant.

    `pk_only` floors write the primary-key-only copies of the tables (bench/tables.py).
    """

    kind: Literal["import", "floor"]
    variant: str = ""
    pk_only: bool = False

    @property
    def label(self) -> str:
        if self.kind == "import":
            return "import"
        return f"floor PK-only ({self.variant})" if self.pk_only else f"floor {self.variant}"

    @property
    def is_floor(self) -> bool:
        """Whether it counts as the floor that targets are measured against."""
        return self.kind == "floor" and not self.pk_only and self.variant != "merge"


IMPORT = Route("import")


@dataclass(frozen=True)
class Load:
    """`clients` clients at once, each sending its own emails in batches of `batch`."""

    dataset: str
    clients: int
    kind: Kind
    batch: int

    @property
    def single(self) -> Case:
        """The one-client case it is compared with."""
        return Case(self.dataset, self.kind, self.batch)

    @property
    def label(self) -> str:
        return f"{self.clients} clients, {self.kind} {size(self.batch)}"
