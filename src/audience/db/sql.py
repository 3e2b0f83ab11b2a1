"""SQL building blocks that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from sqlalchemy import ColumnElement, String, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY


def among(column: ColumnElement[str], values: Sequence[str], dialect: str) -> ColumnElement[bool]:
    """`column` is one of `values`, sent as one parameter however many values there are
    (an array on PostgreSQL, a JSON array read by json_each on SQLite): never one bind
    parameter per value, whose number the drivers bound (65,535 on PostgreSQL)."""
    if dialect == "sqlite":
        listed = func.json_each(bindparam(None, msgspec.json.encode(list(values)).decode()))
        return column.in_(select(listed.table_valued("value").c.value))
    return column == any_(bindparam(None, list(values), type_=ARRAY(String)))
