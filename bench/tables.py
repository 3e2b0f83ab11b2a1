"""The tables a path writes: the project's own, or copies that keep the primary key only.

The PK-only copies (`contacts_pk_only`, `contact_lists_pk_only`) have the same columns and
types, but no foreign key, no secondary index and no check: the stricter reference floor
writes them, to show what the project's schema itself costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Engine, MetaData, Table

from audience.db.models import contact_lists, contacts


@dataclass(frozen=True)
class Tables:
    """The names of the contacts table and of the memberships table a path writes."""

    contacts: str
    memberships: str


PROJECT = Tables(contacts.name, contact_lists.name)
PK_ONLY = Tables("contacts_pk_only", "contact_lists_pk_only")

_pk_only = MetaData()


def _plain(column: Column[Any]) -> Column[Any]:
    """The same column without its constraints, keeping its place in the primary key."""
    return Column(
        column.name, column.type, primary_key=column.primary_key, nullable=column.nullable
    )


# Registered on _pk_only, which create_pk_only creates.
_pk_only_tables = (
    Table(PK_ONLY.contacts, _pk_only, *(_plain(c) for c in contacts.columns)),
    Table(PK_ONLY.memberships, _pk_only, *(_plain(c) for c in contact_lists.columns)),
)


def create_pk_only(engine: Engine) -> None:
    """Create the PK-only tables in a freshly migrated database."""
    _pk_only.create_all(engine)
