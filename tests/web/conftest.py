"""tests/web: each test starts with no seeded import job remembered (support.seed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.web.support import SEEDED_IMPORTS


@pytest.fixture(autouse=True)
def _forget_seeded_imports() -> Iterator[None]:
    SEEDED_IMPORTS.clear()
    yield
    SEEDED_IMPORTS.clear()
