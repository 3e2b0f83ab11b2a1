"""Fixtures of the contacts contract tests (on top of tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from audience.api_keys.schemas import Permission
from audience.app import create_app
from audience.config import Settings
from tests.conftest import Tenant, make_key

MakeClient = Callable[..., TestClient]
KeyFor = Callable[..., Tenant]


@pytest.fixture
def make_client(settings: Settings) -> Iterator[MakeClient]:
    """A client of an app built with some settings overridden, on the test's database."""
    with ExitStack() as stack:

        def make(**overrides: Any) -> TestClient:
            app = create_app(settings.model_copy(update=overrides))
            client = TestClient(app, raise_server_exceptions=False)
            return stack.enter_context(client)

        yield make


@pytest.fixture
def key_for(engine: Engine, tenant: Tenant) -> KeyFor:
    """The tenant's workspace with a key carrying only the given permissions."""

    def make(*permissions: Permission) -> Tenant:
        return Tenant(id=tenant.id, key=make_key(engine, tenant.id, tuple(permissions)))

    return make
