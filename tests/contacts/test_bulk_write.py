"""The bulk write's own state: what it stages never outlives its transaction.

On PostgreSQL an import is staged in a per-connection temporary table; these tests drive the
repository on one pooled connection through a rollback and consecutive commits.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from sqlalchemy import Engine, text

from audience.contacts.bulk import BulkWriter
from audience.contacts.validation import ContactBatch, validate_batch
from tests.conftest import make_workspace

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def batch_of(*contacts: dict[str, object]) -> ContactBatch:
    checked = validate_batch([msgspec.json.encode(c) for c in contacts])
    assert not checked.errors
    (batch,) = checked.rounds
    return batch


def created(writer: BulkWriter, batch: ContactBatch) -> list[int]:
    """The positions in the batch of the contacts it created."""
    applied = writer.apply(batch, merge="overwrite", now=NOW)
    return [i for i, new in enumerate(applied.created) if new]


def stored(engine: Engine) -> dict[str, str | None]:
    with engine.connect() as conn:
        query = "SELECT email, first_name FROM contacts WHERE workspace_id = 'ws'"
        rows = conn.execute(text(query))
        return {email: first for email, first in rows}


def test_a_rolled_back_import_leaves_nothing_for_the_next_one_on_its_connection(
    engine: Engine,
) -> None:
    make_workspace(engine, "ws")
    with engine.connect() as conn:
        repo = BulkWriter(conn, "ws")
        with conn.begin() as tx:
            created(repo, batch_of({"email": "gone@example.com", "first_name": "G"}))
            tx.rollback()
        with conn.begin():
            new = created(repo, batch_of({"email": "kept@example.com"}))
        assert new == [0]
        with conn.begin():
            batch = batch_of(
                {"email": "kept@example.com", "first_name": "K"},
                {"email": "new@example.com", "first_name": None},
            )
            assert created(repo, batch) == [1]
        if conn.dialect.name == "postgresql":
            staged = conn.execute(text("SELECT count(*) FROM import_stage")).scalar_one()
            conn.rollback()
            assert staged == 0
    assert stored(engine) == {"kept@example.com": "K", "new@example.com": None}


def test_consecutive_imports_on_one_connection_each_see_only_their_own_rows(
    engine: Engine,
) -> None:
    make_workspace(engine, "ws")
    with engine.connect() as conn:
        repo = BulkWriter(conn, "ws")
        for round_ in range(3):
            batch = batch_of(
                {"email": f"a{round_}@example.com", "first_name": f"A{round_}"},
                {"email": "same@example.com", "first_name": f"S{round_}"},
            )
            with conn.begin():
                new = created(repo, batch)
            assert new == ([0, 1] if round_ == 0 else [0])
    assert stored(engine) == {
        "a0@example.com": "A0",
        "a1@example.com": "A1",
        "a2@example.com": "A2",
        "same@example.com": "S2",
    }
