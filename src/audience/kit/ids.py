"""Identifier formats shared by more than one feature."""

from __future__ import annotations

import re

#: A workspace id: 1-32 characters of a-z, 0-9 and `_` (API keys embed it).
WORKSPACE_ID = re.compile(r"[a-z0-9_]{1,32}")
