"""What the tests of import jobs share: uploading a file, following its job, reading its
error report, and the contacts the database holds afterwards."""

from __future__ import annotations

import csv
import gzip
import io
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import Engine, func, select

from audience.db.models import contact_lists, contacts, import_file_chunks, import_jobs
from tests.conftest import Tenant

FINISHED = frozenset({"completed", "failed", "cancelled"})
#: Every field of a job, as imports.get answers it.
JOB_FIELDS = {
    "id",
    "workspace_id",
    "status",
    "file_name",
    "format",
    "total_rows",
    "processed_rows",
    "created",
    "updated",
    "unchanged",
    "errors",
    "dry_run",
    "error",
    "created_at",
    "started_at",
    "finished_at",
}
#: How long a test follows a job before it gives up (the machine is shared).
DEADLINE = 60.0

#: TestClient is an httpx.Client: the helpers drive an app in-process or a real server.
Client = httpx.Client


def csv_bytes(rows: Iterable[Sequence[Any]], delimiter: str = ",") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    for row in rows:
        writer.writerow(row)
    return out.getvalue().encode()


def jsonl_bytes(items: Iterable[Any]) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


#: The counts of a job, which only grow.
COUNTS = ("processed_rows", "created", "updated", "unchanged", "errors")


def check_job(job: Mapping[str, Any], before: Mapping[str, Any] | None = None) -> None:
    """What holds of every job at every moment: its fields; created + updated + unchanged +
    errors = processed_rows ≤ total_rows; and, against an earlier look at it, counts that
    only grew and a finished job that stays as it was."""
    assert set(job) == JOB_FIELDS, job
    assert job["status"] in ("queued", "running", *FINISHED), job
    outcomes = job["created"] + job["updated"] + job["unchanged"] + job["errors"]
    assert outcomes == job["processed_rows"], job
    if job["total_rows"] is not None:
        assert job["processed_rows"] <= job["total_rows"], job
    assert (job["finished_at"] is not None) is (job["status"] in FINISHED), job
    assert (job["error"] is not None) is (job["status"] == "failed"), job
    if before is not None:
        for name in COUNTS:
            assert job[name] >= before[name], (name, before, job)
        if before["status"] in FINISHED:
            assert job == before, (before, job)


@dataclass
class Jobs:
    """imports.* for one tenant, through a client (in-process or a real server); every job
    it reads is checked (check_job) against the last look at it."""

    client: Client
    tenant: Tenant
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return self.tenant.headers

    def post(
        self,
        content: bytes,
        name: str = "contacts.csv",
        options: Mapping[str, Any] | str | None = None,
    ) -> httpx.Response:
        data = {"workspace_id": self.tenant.id}
        if options is not None:
            data["options"] = options if isinstance(options, str) else json.dumps(options)
        response: httpx.Response = self.client.post(
            "/api/imports.create",
            headers=self.headers,
            data=data,
            files={"file": (name, content)},
        )
        return response

    def create(
        self,
        content: bytes,
        name: str = "contacts.csv",
        options: Mapping[str, Any] | str | None = None,
    ) -> dict[str, Any]:
        """Upload the file; the queued job."""
        response = self.post(content, name, options)
        assert response.status_code == 202, response.text
        job: dict[str, Any] = response.json()["import"]
        check_job(job)
        assert job["status"] == "queued", job
        self.seen[job["id"]] = job
        return job

    def get(self, job_id: str) -> dict[str, Any]:
        response = self.client.get(
            "/api/imports.get",
            headers=self.headers,
            params={"workspace_id": self.tenant.id, "id": job_id},
        )
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()["import"]
        check_job(job, self.seen.get(job_id))
        self.seen[job_id] = job
        return job

    def wait(
        self,
        job_id: str,
        until: Any = None,
        deadline: float = DEADLINE,
    ) -> dict[str, Any]:
        """Poll the job until `until(job)` (by default: it has finished); fails with the
        job's JSON when the deadline runs out."""
        done = until or (lambda job: job["status"] in FINISHED)
        end = time.monotonic() + deadline
        while True:
            job = self.get(job_id)
            if done(job):
                return job
            if time.monotonic() > end:
                raise AssertionError(f"job not there after {deadline}s: {json.dumps(job)}")
            time.sleep(0.02)

    def run(
        self,
        content: bytes,
        name: str = "contacts.csv",
        options: Mapping[str, Any] | str | None = None,
    ) -> dict[str, Any]:
        """Upload the file and wait for its job to finish; the finished job."""
        return self.wait(self.create(content, name, options)["id"])

    def completed(
        self,
        content: bytes,
        name: str = "contacts.csv",
        options: Mapping[str, Any] | str | None = None,
    ) -> dict[str, Any]:
        return self.completed_job(self.create(content, name, options)["id"])

    def completed_job(self, job_id: str) -> dict[str, Any]:
        """The job once finished, checked to have completed with consistent counts."""
        job = self.wait(job_id)
        assert job["status"] == "completed", job
        assert job["error"] is None, job
        assert job["processed_rows"] == job["total_rows"], job
        outcomes = job["created"] + job["updated"] + job["unchanged"] + job["errors"]
        assert outcomes == job["total_rows"], job
        return job

    def cancel(self, job_id: str) -> httpx.Response:
        response: httpx.Response = self.client.post(
            "/api/imports.cancel",
            headers=self.headers,
            json={"workspace_id": self.tenant.id, "id": job_id},
        )
        if response.status_code == 200:
            job = response.json()["import"]
            check_job(job, self.seen.get(job_id))
            self.seen[job_id] = job
        return response

    # --- the rest of the API, for what a job did ---------------------------------------------

    def contact(self, email: str) -> dict[str, Any] | None:
        """The contact as contacts.getByEmail shows it, or None on 404."""
        response = self.client.get(
            "/api/contacts.getByEmail",
            headers=self.headers,
            params={"workspace_id": self.tenant.id, "email": email},
        )
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return dict(response.json()["contact"])

    def lists_of(self, email: str) -> dict[str, str]:
        """{list id: status} of the contact."""
        contact = self.contact(email)
        assert contact is not None, email
        return {m["list_id"]: m["status"] for m in contact["contact_lists"]}

    def create_list(self, list_id: str, *, double_optin: bool = False) -> None:
        body = {
            "workspace_id": self.tenant.id,
            "id": list_id,
            "name": list_id.title(),
            "is_double_optin": double_optin,
        }
        response = self.client.post("/api/lists.create", headers=self.headers, json=body)
        assert response.status_code == 201, response.text

    def set_status(self, email: str, list_id: str, status: str) -> None:
        body = {"workspace_id": self.tenant.id, "email": email, "list_id": list_id}
        response = self.client.post(
            "/api/contactLists.updateStatus", headers=self.headers, json={**body, "status": status}
        )
        assert response.status_code == 200, response.text

    def report_response(self, job_id: str) -> httpx.Response:
        response: httpx.Response = self.client.get(
            "/api/imports.errors",
            headers=self.headers,
            params={"workspace_id": self.tenant.id, "id": job_id},
        )
        return response

    def report(self, job_id: str) -> list[list[str]]:
        """The error report's records, its header first."""
        response = self.report_response(job_id)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        return list(csv.reader(io.StringIO(response.text, newline="")))


# --- the database ---------------------------------------------------------------------------


def stored_contacts(engine: Engine, workspace_id: str, *fields: str) -> dict[str, Any]:
    """{email: (fields…)} of every contact of the workspace (the row itself with no fields)."""
    columns = [contacts.c[name] for name in fields] if fields else [contacts]
    with engine.connect() as conn:
        query = select(contacts.c.email, *columns).where(contacts.c.workspace_id == workspace_id)
        rows = conn.execute(query).all()
        conn.rollback()
    if fields:
        return {row[0]: tuple(row[1:]) for row in rows}
    return {row.email: row._mapping for row in rows}


def contact_count(engine: Engine, workspace_id: str) -> int:
    with engine.connect() as conn:
        query = select(func.count()).where(contacts.c.workspace_id == workspace_id)
        count = int(conn.execute(query).scalar_one())
        conn.rollback()
    return count


def memberships(engine: Engine, workspace_id: str) -> dict[tuple[str, str], str]:
    """{(email, list id): status}."""
    with engine.connect() as conn:
        query = select(contact_lists.c.email, contact_lists.c.list_id, contact_lists.c.status)
        rows = conn.execute(query.where(contact_lists.c.workspace_id == workspace_id)).all()
        conn.rollback()
    return {(email, list_id): status for email, list_id, status in rows}


def stored_jobs(engine: Engine) -> tuple[int, int]:
    """(jobs, file chunks) in the database, of every workspace."""
    with engine.connect() as conn:
        jobs = int(conn.execute(select(func.count()).select_from(import_jobs)).scalar_one())
        chunks = conn.execute(select(func.count()).select_from(import_file_chunks)).scalar_one()
        conn.rollback()
    return jobs, int(chunks)


def file_chunks(engine: Engine, job_id: str) -> int:
    with engine.connect() as conn:
        query = select(func.count()).where(import_file_chunks.c.job_id == job_id)
        count = int(conn.execute(query).scalar_one())
        conn.rollback()
    return count
