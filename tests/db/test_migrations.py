"""The one Alembic history builds exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, delete, insert, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from audience.config import Settings
from audience.db.engine import build_engine
from audience.db.migrate import alembic_config, upgrade
from audience.db.models import (
    MembershipStatus,
    api_keys,
    contact_lists,
    contacts,
    lists,
    metadata,
    workspaces,
)
from audience.db.session import transaction
from audience.kit.clock import utcnow
from tests.conftest import PG_URL, create_citus_database, drop_citus_database


@contextmanager
def fresh_database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a database with nothing in it, not even the schema; dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    if backend == "citus":
        request.getfixturevalue("citus_url")  # skips (or fails) as the suite does without it
        name = f"audience_fresh_{uuid.uuid4().hex[:16]}"
        try:
            yield create_citus_database(name)
        finally:
            drop_citus_database(name)
        return
    request.getfixturevalue("postgres_url")  # skips (or fails) as the suite does without PG
    admin_url = Settings(database_url=PG_URL).sqlalchemy_url
    name = f"audience_fresh_{uuid.uuid4().hex[:16]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def fresh_engine(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Engine]:
    with fresh_database(backend, tmp_path, request) as url:
        engine = build_engine(Settings(database_url=url))
        yield engine
        engine.dispose()


def schema_diff(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revisions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))]


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    assert schema_diff(engine) == []
    assert current_revisions(engine) == [head_revision()]


def test_an_empty_database_migrates_to_the_models(fresh_engine: Engine) -> None:
    assert table_names(fresh_engine) == set()
    upgrade(fresh_engine)
    assert table_names(fresh_engine) == {t.name for t in metadata.sorted_tables} | {
        "alembic_version"
    }
    assert schema_diff(fresh_engine) == []
    assert current_revisions(fresh_engine) == [head_revision()]


def test_upgrade_twice_is_a_no_op(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)
    with transaction(fresh_engine, write=True) as conn:
        conn.execute(insert(workspaces).values(id="acme", name="Acme", created_at=utcnow()))
    tables = table_names(fresh_engine)

    upgrade(fresh_engine)
    upgrade(fresh_engine)

    assert table_names(fresh_engine) == tables
    assert schema_diff(fresh_engine) == []
    assert current_revisions(fresh_engine) == [head_revision()]
    with fresh_engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(select(workspaces.c.id, workspaces.c.name))] == [
            ("acme", "Acme")
        ]


def test_downgrade_to_base_and_back(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)
    config = alembic_config()
    with transaction(fresh_engine, write=True) as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert table_names(fresh_engine) == {"alembic_version"}
    assert current_revisions(fresh_engine) == []
    upgrade(fresh_engine)
    assert schema_diff(fresh_engine) == []


# --- the migrated schema enforces what the models declare ---------------------------------


def _seed(conn: Any) -> None:
    now = utcnow()
    conn.execute(insert(workspaces).values(id="acme", name="Acme", created_at=now))
    conn.execute(
        insert(contacts).values(
            workspace_id="acme", email="ann@example.com", created_at=now, updated_at=now
        )
    )
    conn.execute(
        insert(lists).values(
            workspace_id="acme",
            id="news",
            name="News",
            is_double_optin=False,
            is_public=False,
            created_at=now,
            updated_at=now,
        )
    )


def _membership(status: str = "active", list_id: str = "news") -> dict[str, Any]:
    now = utcnow()
    return {
        "workspace_id": "acme",
        "email": "ann@example.com",
        "list_id": list_id,
        "status": status,
        "created_at": now,
        "updated_at": now,
    }


@pytest.mark.parametrize("status", list(MembershipStatus))
def test_membership_statuses_are_accepted(engine: Engine, status: str) -> None:
    with transaction(engine, write=True) as conn:
        _seed(conn)
        conn.execute(insert(contact_lists).values(**_membership(status)))
    with engine.connect() as conn:
        assert conn.execute(select(contact_lists.c.status)).scalars().all() == [status]


def test_an_unknown_membership_status_is_rejected(engine: Engine) -> None:
    with transaction(engine, write=True) as conn:
        _seed(conn)
    with pytest.raises(IntegrityError), transaction(engine, write=True) as conn:
        conn.execute(insert(contact_lists).values(**_membership("subscribed")))


def test_a_membership_of_an_unknown_list_is_rejected(engine: Engine) -> None:
    with transaction(engine, write=True) as conn:
        _seed(conn)
    with pytest.raises(IntegrityError), transaction(engine, write=True) as conn:
        conn.execute(insert(contact_lists).values(**_membership(list_id="nope")))


def test_a_key_of_an_unknown_workspace_is_rejected(engine: Engine) -> None:
    now = utcnow()
    row = {
        "workspace_id": "nope",
        "id": "k1",
        "name": "k",
        "prefix": "aud_nope_k1",
        "hash": "0" * 64,
        "permissions": "lists:read",
        "created_at": now,
    }
    with pytest.raises(IntegrityError), transaction(engine, write=True) as conn:
        conn.execute(insert(api_keys).values(**row))


def test_deleting_a_workspace_cascades(engine: Engine) -> None:
    with transaction(engine, write=True) as conn:
        _seed(conn)
        conn.execute(insert(contact_lists).values(**_membership()))
    with transaction(engine, write=True) as conn:
        conn.execute(delete(workspaces).where(workspaces.c.id == "acme"))
    with engine.connect() as conn:
        for table in (contact_lists, lists, contacts, api_keys):
            assert conn.execute(select(table)).first() is None, table.name
