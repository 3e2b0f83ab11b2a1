"""The bulk write's own state: what it stages never outlives its transaction.

On PostgreSQL an import is staged in a per-connection temporary table; these tests drive the
repository on one pooled connection through a rollback and consecutive commits.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from sqlalchemy import Engine, text

from audience.contacts.repository import ContactRepository
from audience.contacts.validation import ContactBatch, validate_batch
from tests.conftest import make_workspace

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def batch_of(*contacts: dict[str, object]) -> ContactBatch:
    checked = validate_batch([msgspec.json.encode(c) for c in contacts])
    assert not checked.errors
    return checked.batch


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
        repo = ContactRepository(conn, "ws")
        with conn.begin() as tx:
            repo.upsert_many(batch_of({"email": "gone@example.com", "first_name": "G"}), NOW)
            tx.rollback()
        with conn.begin():
            created = repo.upsert_many(batch_of({"email": "kept@example.com"}), NOW)
        assert created == [0]
        with conn.begin():
            batch = batch_of(
                {"email": "kept@example.com", "first_name": "K"},
                {"email": "new@example.com", "first_name": None},
            )
            assert repo.upsert_many(batch, NOW) == [1]
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
        repo = ContactRepository(conn, "ws")
        for round_ in range(3):
            batch = batch_of(
                {"email": f"a{round_}@example.com", "first_name": f"A{round_}"},
                {"email": "same@example.com", "first_name": f"S{round_}"},
            )
            with conn.begin():
                created = repo.upsert_many(batch, NOW)
            assert created == ([0, 1] if round_ == 0 else [0])
    assert stored(engine) == {
        "a0@example.com": "A0",
        "a1@example.com": "A1",
        "a2@example.com": "A2",
        "same@example.com": "S2",
    }
