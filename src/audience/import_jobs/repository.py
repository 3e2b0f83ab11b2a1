"""SQL for import jobs: the queue (import_jobs), the uploaded files (import_file_chunks) and
the failed rows (import_row_errors)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Connection, Row, delete, exists, insert, select, tuple_, update

from audience.db.distribute import on_citus
from audience.db.models import import_file_chunks, import_jobs, import_row_errors
from audience.import_jobs.schemas import FINISHED, Counts, Job, JobOptions, RowFailure
from audience.kit.clock import as_utc

_OPTIONS = msgspec.json.Decoder(JobOptions)
_HEADER = msgspec.json.Decoder(list[str])
#: Statuses of a job that still has work to do.
PENDING = ("queued", "running")


def _when(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _job(row: Row[Any]) -> Job:
    return Job(
        workspace_id=row.workspace_id,
        id=row.id,
        status=row.status,
        file_name=row.file_name,
        format=row.format,
        file_bytes=row.file_bytes,
        options=_OPTIONS.decode(row.options),
        header=None if row.header is None else _HEADER.decode(row.header),
        total_rows=row.total_rows,
        processed_rows=row.processed_rows,
        created=row.created,
        updated=row.updated,
        unchanged=row.unchanged,
        errors=row.errors,
        error=row.error,
        lease_owner=row.lease_owner,
        lease_expires_at=_when(row.lease_expires_at),
        created_at=as_utc(row.created_at),
        started_at=_when(row.started_at),
        finished_at=_when(row.finished_at),
    )


class JobRepository:
    """The import jobs of one workspace."""

    def __init__(self, conn: Connection, workspace_id: str) -> None:
        self.conn = conn
        self.workspace_id = workspace_id

    def _job(self, job_id: str) -> Any:
        return (import_jobs.c.workspace_id == self.workspace_id) & (import_jobs.c.id == job_id)

    def _of(self, table: Any, job_id: str) -> Any:
        return (table.c.workspace_id == self.workspace_id) & (table.c.job_id == job_id)

    # --- jobs ------------------------------------------------------------------------------------

    def insert(self, job: Job) -> None:
        values = {name: getattr(job, name) for name in job.__struct_fields__}
        values["options"] = msgspec.json.encode(job.options).decode()
        values["header"] = None
        values["dry_run"] = job.options.dry_run
        self.conn.execute(insert(import_jobs).values(**values))

    def get(self, job_id: str, *, lock: bool = False) -> Job | None:
        query = select(import_jobs).where(self._job(job_id))
        row = self.conn.execute(query.with_for_update() if lock else query).first()
        return None if row is None else _job(row)

    def page(self, *, before: tuple[datetime, str] | None, limit: int) -> list[Job]:
        """Jobs newest first (never one still uploading), strictly before the `before` key."""
        query = select(import_jobs).where(
            import_jobs.c.workspace_id == self.workspace_id, import_jobs.c.status != "uploading"
        )
        if before is not None:
            at, job_id = before
            query = query.where(
                (import_jobs.c.created_at < at)
                | ((import_jobs.c.created_at == at) & (import_jobs.c.id < job_id))
            )
        query = query.order_by(import_jobs.c.created_at.desc(), import_jobs.c.id.desc())
        return [_job(row) for row in self.conn.execute(query.limit(limit))]

    def set(self, job_id: str, **values: Any) -> None:
        if "header" in values and values["header"] is not None:
            values["header"] = msgspec.json.encode(values["header"]).decode()
        self.conn.execute(update(import_jobs).where(self._job(job_id)).values(**values))

    def queue(self, job_id: str, options: JobOptions) -> None:
        """A draft's options set and the job queued."""
        self.set(
            job_id,
            status="queued",
            options=msgspec.json.encode(options).decode(),
            dry_run=options.dry_run,
        )

    def count(self, job: Job, counts: Counts, *, lease_expires_at: datetime) -> None:
        """Add a batch's counts to the job's, and renew its lease."""
        self.conn.execute(
            update(import_jobs)
            .where(self._job(job.id))
            .values(
                processed_rows=import_jobs.c.processed_rows + counts.rows,
                created=import_jobs.c.created + counts.created,
                updated=import_jobs.c.updated + counts.updated,
                unchanged=import_jobs.c.unchanged + counts.unchanged,
                errors=import_jobs.c.errors + counts.errors,
                lease_expires_at=lease_expires_at,
            )
        )

    def claim(self, job_id: str, *, owner: str, now: datetime, until: datetime) -> Job | None:
        """Take the job for this worker if it is queued, or running with an expired lease."""
        free = (import_jobs.c.status == "queued") | (
            (import_jobs.c.status == "running") & (import_jobs.c.lease_expires_at < now)
        )
        claimed = self.conn.execute(
            update(import_jobs)
            .where(self._job(job_id), free)
            .values(status="running", lease_owner=owner, lease_expires_at=until)
            .returning(import_jobs.c.id)
        ).first()
        if claimed is None:
            return None
        job = self.get(job_id)
        if job is not None and job.started_at is None:
            self.set(job_id, started_at=now)
            job.started_at = now
        return job

    def renew(self, job_id: str, *, owner: str, until: datetime) -> bool:
        """Extend this worker's lease; False when the job is no longer its own (cancelled,
        or claimed by another worker after the lease ran out)."""
        renewed = self.conn.execute(
            update(import_jobs)
            .where(
                self._job(job_id),
                import_jobs.c.status == "running",
                import_jobs.c.lease_owner == owner,
            )
            .values(lease_expires_at=until)
        )
        return bool(renewed.rowcount)

    # --- the file -----------------------------------------------------------------------------

    def add_chunk(self, job_id: str, seq: int, data: bytes) -> None:
        self.conn.execute(
            insert(import_file_chunks).values(
                workspace_id=self.workspace_id, job_id=job_id, seq=seq, data=data
            )
        )

    def chunk(self, job_id: str, seq: int) -> bytes | None:
        table = import_file_chunks
        query = select(table.c.data).where(self._of(table, job_id), table.c.seq == seq)
        data = self.conn.execute(query).scalar()
        return None if data is None else bytes(data)

    def drop_file(self, job_id: str) -> None:
        self.conn.execute(delete(import_file_chunks).where(self._of(import_file_chunks, job_id)))

    # --- the failed rows --------------------------------------------------------------------------

    def add_failures(self, job_id: str, failures: Sequence[RowFailure]) -> None:
        if failures:
            rows = [
                {"workspace_id": self.workspace_id, "job_id": job_id, **msgspec.structs.asdict(f)}
                for f in failures
            ]
            self.conn.execute(insert(import_row_errors), rows)

    def failures(self, job_id: str, *, after: int, limit: int) -> list[RowFailure]:
        """The job's failed rows in file order, from the line after `after`."""
        table = import_row_errors
        query = (
            select(table.c.line, table.c.email, table.c.error, table.c.raw)
            .where(self._of(table, job_id), table.c.line > after)
            .order_by(table.c.line)
            .limit(limit)
        )
        return [RowFailure(*row) for row in self.conn.execute(query)]

    def drop_failures(self, job_id: str) -> None:
        self.conn.execute(delete(import_row_errors).where(self._of(import_row_errors, job_id)))

    # --- across workspaces (the workers' own queries, never a request's) ------------------------

    @staticmethod
    def candidates(conn: Connection, *, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(workspace id, job id) of the jobs a worker may take, oldest first: the first job
        with work left of each workspace (a workspace's jobs run one at a time, in order),
        when it is queued or its worker's lease has run out. PostgreSQL skips the jobs that
        another worker is claiming; Citus locks no row across workspaces, so there two workers
        may find the same job, and `claim` (a compare-and-set by key) gives it to one."""
        job, earlier = import_jobs, import_jobs.alias("earlier")
        first = ~exists().where(
            earlier.c.workspace_id == job.c.workspace_id,
            earlier.c.status.in_(PENDING),
            (earlier.c.created_at < job.c.created_at)
            | ((earlier.c.created_at == job.c.created_at) & (earlier.c.id < job.c.id)),
        )
        free = (job.c.status == "queued") | (
            (job.c.status == "running") & (job.c.lease_expires_at < now)
        )
        query = (
            select(job.c.workspace_id, job.c.id)
            .where(free, first)
            .order_by(job.c.created_at, job.c.id)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql" and not on_citus(conn):
            query = query.with_for_update(skip_locked=True, of=job)
        return [(row.workspace_id, row.id) for row in conn.execute(query)]

    @staticmethod
    def forget(
        conn: Connection,
        *,
        jobs_before: datetime,
        reports_before: datetime,
        uploads_before: datetime,
    ) -> None:
        """Delete the jobs finished before `jobs_before`, the error reports of the jobs finished
        before `reports_before`, and the uploads abandoned since `uploads_before` (a client
        that went away, a server that died while receiving)."""
        old = (import_jobs.c.status.in_(FINISHED) & (import_jobs.c.finished_at < jobs_before)) | (
            (import_jobs.c.status == "uploading") & (import_jobs.c.created_at < uploads_before)
        )
        stale = (import_jobs.c.status.in_(FINISHED)) & (import_jobs.c.finished_at < reports_before)
        for table in (import_row_errors, import_file_chunks):
            jobs = select(import_jobs.c.workspace_id, import_jobs.c.id).where(
                old | stale if table is import_row_errors else old
            )
            of_jobs = tuple_(table.c.workspace_id, table.c.job_id).in_(jobs)
            conn.execute(delete(table).where(of_jobs))
        conn.execute(delete(import_jobs).where(old))

    def delete(self, job_id: str) -> None:
        self.drop_failures(job_id)
        self.drop_file(job_id)
        self.conn.execute(delete(import_jobs).where(self._job(job_id)))
