"""Workspace records."""

from __future__ import annotations

from datetime import datetime

import msgspec


class Workspace(msgspec.Struct, frozen=True):
    """A tenant: every other record belongs to exactly one."""

    id: str
    name: str
    created_at: datetime
