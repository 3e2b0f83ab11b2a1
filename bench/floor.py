"""The floor: the same batches written straight to the database, no HTTP, no validation.

What a batch must do is what one import request does to the database (docs/import.md): one
transaction; rows in email order (consistent lock order); given fields replace, absent ones
keep (COALESCE over the stored value), explicit nulls clear; `created_at` kept on update;
`updated_at` set; which emails were *created* known (the import must answer create/update);
and, with lists, a membership per contact and list unless one exists.

The variants are in bench/floor_postgres.py (`copy`, `unnest`, `merge`) and
bench/floor_sqlite.py (`executemany`). Each writes either the project's tables or their
primary-key-only copies (bench/tables.py), with the same statements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from audience.db.models import FIELDS
from bench.datasets import Contact
from bench.tables import Tables

BIT = {name: 1 << i for i, name in enumerate(FIELDS)}
COLUMNS = ", ".join(FIELDS)


class Floor(Protocol):
    """One connection of its own; one transaction per batch."""

    name: str

    def apply(self, batch: Sequence[Contact], lists: Mapping[str, str]) -> int:
        """Write one batch in one transaction; returns how many contacts were created."""
        ...

    def close(self) -> None: ...


def null_mask(values: Mapping[str, Any]) -> int:
    """Bit k set when FIELDS[k] is sent as an explicit null."""
    mask = 0
    for name, value in values.items():
        if value is None:
            mask |= BIT[name]
    return mask


def keep_absent(tables: Tables) -> str:
    """The SET list of an upsert: given values replace, absent (NULL in the row) keep."""
    return ", ".join(f"{n} = COALESCE(excluded.{n}, {tables.contacts}.{n})" for n in FIELDS)
