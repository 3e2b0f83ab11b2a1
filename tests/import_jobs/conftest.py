"""Fixtures of the import-job tests: an app whose workers import (the suite's `settings`
have none), and the tenants' Jobs helpers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from audience.app import create_app
from audience.config import Settings
from tests.conftest import Tenant
from tests.import_jobs.support import Jobs


@pytest.fixture
def worker_settings(settings: Settings) -> Settings:
    """The test's settings with two import workers that look for jobs often."""
    return settings.model_copy(update={"import_workers": 2, "import_poll_seconds": 0.05})


@pytest.fixture
def worker_client(worker_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(worker_settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def jobs(worker_client: TestClient, tenant: Tenant) -> Jobs:
    """imports.* of the tenant, on an app whose workers import."""
    return Jobs(worker_client, tenant)


@pytest.fixture
def queued(client: TestClient, tenant: Tenant) -> Jobs:
    """imports.* of the tenant, on an app without workers: every job stays queued."""
    return Jobs(client, tenant)
