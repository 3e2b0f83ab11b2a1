"""The workers: a workspace's jobs run one after the other, in order, while another
workspace's job runs beside them; a running job cancelled stops, keeping what its
committed batches wrote and writing nothing more."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from audience.app import create_app
from audience.config import Settings
from tests.conftest import Tenant
from tests.import_jobs.support import (
    DEADLINE,
    FINISHED,
    Jobs,
    contact_count,
    csv_bytes,
    file_chunks,
    stored_contacts,
)


def people(prefix: str, count: int) -> bytes:
    return csv_bytes(
        [["email", "first_name"]]
        + [[f"{prefix}{i}@example.com", f"{prefix} {i}"] for i in range(count)]
    )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture
def slow_workers(settings: Settings) -> Iterator[TestClient]:
    """An app with two workers importing in small batches (a job takes many transactions)."""
    update = {"import_workers": 2, "import_poll_seconds": 0.05, "import_batch_size": 100}
    app = create_app(settings.model_copy(update=update))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_a_workspaces_jobs_run_in_turn_while_another_workspaces_runs_beside(
    client: TestClient, settings: Settings, tenant: Tenant, other_tenant: Tenant, engine: Engine
) -> None:
    # Queued first, on an app without workers, so that every job waits when the workers start.
    ours, theirs = Jobs(client, tenant), Jobs(client, other_tenant)
    first = ours.create(people("first", 4000))
    second = ours.create(people("second", 1000))
    third = ours.create(people("third", 500))
    beside = theirs.create(people("beside", 3000))

    update = {"import_workers": 2, "import_poll_seconds": 0.05, "import_batch_size": 100}
    with TestClient(create_app(settings.model_copy(update=update))) as workers:
        ours, theirs = Jobs(workers, tenant), Jobs(workers, other_tenant)
        deadline = time.monotonic() + DEADLINE
        while True:
            # Each job read before the one queued ahead of it: when that one is unfinished
            # afterwards, it was unfinished when this one was read, which must then wait.
            now = [ours.get(job["id"]) for job in (third, second, first)]
            for later, earlier in itertools.pairwise(now):
                if earlier["status"] not in FINISHED:
                    assert later["status"] == "queued", (later, earlier)
                    assert (later["processed_rows"], later["started_at"]) == (0, None), later
            if now[0]["status"] in FINISHED:
                break
            assert time.monotonic() < deadline, now
            time.sleep(0.02)
        done = [ours.completed_job(job["id"]) for job in (first, second, third)]
        other = theirs.completed_job(beside["id"])

    for job, count in zip(done, (4000, 1000, 500), strict=True):
        assert (job["total_rows"], job["created"], job["errors"]) == (count, count, 0), job
    assert other["created"] == 3000
    # one after the other, in the order they were queued
    assert at(done[1]["started_at"]) >= at(done[0]["finished_at"])
    assert at(done[2]["started_at"]) >= at(done[1]["finished_at"])
    # the other workspace's job did not wait for ours: it ran while the first one ran
    assert at(other["started_at"]) < at(done[0]["finished_at"])
    assert at(other["finished_at"]) > at(done[0]["started_at"])
    assert contact_count(engine, tenant.id) == 5500
    assert contact_count(engine, other_tenant.id) == 3000


def test_a_running_job_cancelled_keeps_its_committed_batches_and_writes_no_more(
    settings: Settings, tenant: Tenant, engine: Engine
) -> None:
    rows = 30_000
    content = people("row", rows)
    # One worker: once it has imported the next job, it has left the cancelled one.
    update = {"import_workers": 1, "import_poll_seconds": 0.05, "import_batch_size": 50}
    with TestClient(create_app(settings.model_copy(update=update))) as client:
        jobs = Jobs(client, tenant)
        job = jobs.create(content)
        jobs.wait(job["id"], until=lambda job: job["processed_rows"] >= 500)
        response = jobs.cancel(job["id"])
        assert response.status_code == 200, response.text
        cancelled = response.json()["import"]
        assert cancelled["status"] == "cancelled"
        assert cancelled["finished_at"] is not None
        done = cancelled["processed_rows"]
        assert 500 <= done < rows, cancelled
        assert done % 50 == 0  # whole batches
        assert (cancelled["created"], cancelled["errors"]) == (done, 0)
        assert cancelled["total_rows"] == rows

        after = jobs.completed(people("after", 10))
        assert after["created"] == 10
        assert jobs.get(job["id"]) == cancelled  # the counts stopped where the cancel found them

    # What the committed batches wrote stays: the file's first rows, and not one more.
    stored = stored_contacts(engine, tenant.id, "first_name")
    mine = {email: values for email, values in stored.items() if email.startswith("row")}
    assert mine == {f"row{i}@example.com": (f"row {i}",) for i in range(done)}
    assert file_chunks(engine, job["id"]) == 0
    with TestClient(create_app(settings)) as client:
        response = Jobs(client, tenant).cancel(job["id"])
        assert response.status_code == 400
        assert response.json() == {"error": "import already finished"}
