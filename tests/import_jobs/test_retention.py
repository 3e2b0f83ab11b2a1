"""What is kept and for how long: a job's error report AUDIENCE_IMPORT_REPORT_DAYS after it
finished, the job itself AUDIENCE_IMPORT_JOB_DAYS, an upload its client abandoned twice
AUDIENCE_UPLOAD_TIMEOUT_SECONDS; a worker's tidy-up forgets the rest."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, insert, select

from audience.app import create_app
from audience.config import Settings
from audience.db.models import import_file_chunks, import_jobs, import_row_errors
from audience.import_jobs.worker import Worker
from audience.kit.clock import utcnow
from tests.conftest import Tenant
from tests.import_jobs.support import Jobs, csv_bytes, file_chunks

#: How often a worker tidies up (import_jobs/worker.py).
TIDY_INTERVAL = 300
CONTENT = csv_bytes([["email"], ["ann@example.com"], ["not-an-email"]])


def _upload_row(engine: Engine, workspace_id: str, job_id: str, age: timedelta) -> None:
    """A job whose file is still arriving (or never will), with one chunk of it."""
    with engine.begin() as conn:
        conn.execute(
            insert(import_jobs).values(
                workspace_id=workspace_id,
                id=job_id,
                status="uploading",
                file_name="slow.csv",
                format="csv",
                file_bytes=0,
                options="{}",
                processed_rows=0,
                created=0,
                updated=0,
                unchanged=0,
                errors=0,
                dry_run=False,
                created_at=utcnow() - age,
            )
        )
        conn.execute(
            insert(import_file_chunks).values(
                workspace_id=workspace_id, job_id=job_id, seq=0, data=b"email\n"
            )
        )


def _exists(engine: Engine, job_id: str) -> bool:
    with engine.connect() as conn:
        query = select(func.count()).where(import_jobs.c.id == job_id)
        found = bool(conn.execute(query).scalar_one())
        conn.rollback()
    return found


def _failed_rows(engine: Engine, job_id: str) -> int:
    with engine.connect() as conn:
        query = select(func.count()).where(import_row_errors.c.job_id == job_id)
        count = int(conn.execute(query).scalar_one())
        conn.rollback()
    return count


def tidy(engine: Engine, settings: Settings) -> None:
    """A worker's tidy-up, once its interval (a few minutes) has passed."""
    worker = Worker(engine, settings)
    worker._last_tidy -= TIDY_INTERVAL
    worker._tidy()


def test_reports_then_jobs_then_abandoned_uploads_are_forgotten(
    jobs: Jobs, settings: Settings, tenant: Tenant, engine: Engine
) -> None:
    job = jobs.completed(CONTENT)
    assert len(jobs.report(job["id"])) == 2
    abandoned, arriving = "imp_abandoned00000", "imp_arriving000000"
    _upload_row(engine, tenant.id, abandoned, timedelta(hours=3))  # over 2 x 3600 s ago
    _upload_row(engine, tenant.id, arriving, timedelta(minutes=1))
    assert jobs.report_response(arriving).status_code == 404  # no one sees an upload
    tidy(engine, settings)  # the defaults: only the abandoned upload goes
    assert not _exists(engine, abandoned) and file_chunks(engine, abandoned) == 0
    assert _exists(engine, arriving) and file_chunks(engine, arriving) == 1
    assert jobs.report(job["id"])[1][:3] == ["3", "not-an-email", "invalid email format"]

    short_reports = settings.model_copy(update={"import_report_days": 1e-9})
    with TestClient(create_app(short_reports)) as client:
        kept = Jobs(client, tenant)
        response = kept.report_response(job["id"])
        assert response.status_code == 404, response.text
        assert response.json() == {"error": f"the error report of import {job['id']} has expired"}
        tidy(engine, short_reports)
        assert _failed_rows(engine, job["id"]) == 0
        assert kept.get(job["id"]) == job  # the job itself is kept longer

    short_jobs = settings.model_copy(update={"import_job_days": 1e-9})
    tidy(engine, short_jobs)
    assert not _exists(engine, job["id"])
    listed = jobs.client.get(
        "/api/imports.list", headers=tenant.headers, params={"workspace_id": tenant.id}
    )
    assert listed.json() == {"imports": [], "next_cursor": None}
    assert _exists(engine, arriving)  # still arriving: never taken for a finished job
