"""Idempotency: the stored answer of a request, and what a request sent with a key gets."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import msgspec


class StoredAnswer(msgspec.Struct, frozen=True):
    """What the first request sent with a key answered (status None while it runs)."""

    request_hash: str
    status_code: int | None
    body: bytes | None
    expires_at: datetime


class Answer(msgspec.Struct, frozen=True):
    """An answer to send: a new one, or the stored one again (`replayed`)."""

    status_code: int
    body: bytes
    replayed: bool = False
    headers: Mapping[str, str] = {}


class Handled(msgspec.Struct, frozen=True):
    """What a request's handler produced, and whether it may be stored (a dry run may not)."""

    status_code: int
    body: bytes
    keep: bool = True
