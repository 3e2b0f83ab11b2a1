"""Per-request dependencies: the transaction (one per request, committed here) and settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy import Connection

from audience.config import Settings
from audience.db.session import transaction
from audience.idempotency import service as idempotency


def _read_db(request: Request) -> Iterator[Connection]:
    with transaction(request.app.state.engine, write=False) as conn:
        yield conn


def _write_db(request: Request) -> Iterator[Connection]:
    with transaction(request.app.state.engine, write=True) as conn:
        yield conn


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# scope="function": the transaction ends (commits) before the response is sent, so a failed
# commit is a 500, never a 200 for work that was not saved. It begins at its first statement,
# so a route may decode and validate its input before anything is locked.
ReadDb = Annotated[Connection, Depends(_read_db, scope="function")]
WriteDb = Annotated[Connection, Depends(_write_db, scope="function")]
SettingsDep = Annotated[Settings, Depends(_settings)]


def _idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            json_schema_extra={"pattern": "^[\\x21-\\x7e]{1,255}$"},
            description=(
                "1-255 visible ASCII characters. A request sent again with the same key and "
                "the same body (within AUDIENCE_IDEMPOTENCY_TTL_SECONDS, 24 h) writes nothing "
                "and gets the first answer again, with `Idempotent-Replayed: true`."
            ),
        ),
    ] = None,
) -> str | None:
    return idempotency.checked_key(key)


IdempotencyKey = Annotated[str | None, Depends(_idempotency_key)]
