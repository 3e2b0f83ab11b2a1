"""Workspace values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

WORKSPACE_ID_PATTERN = re.compile(r"[a-z0-9_]{1,32}")


@dataclass(frozen=True, slots=True)
class Workspace:
    id: str
    name: str
    created_at: datetime
