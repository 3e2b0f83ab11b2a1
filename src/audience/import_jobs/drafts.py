"""The console's import in two steps (docs/console.md, Imports): the file is uploaded and
stored as a draft, a job that no worker takes; its first rows are shown with a field for
every column, pre-filled by the matching of contact_files.mapping; the job is then started
with the options chosen, or discarded.

A draft is a job whose file is stored and whose status is still `uploading`: the API never
shows it, and the workers' tidy-up forgets it twice AUDIENCE_UPLOAD_TIMEOUT_SECONDS after its
upload (2 hours by default), as it forgets an abandoned upload.
"""

from __future__ import annotations

import itertools
from typing import IO

import msgspec
from sqlalchemy import Connection, Engine

from audience.api_keys.schemas import Caller
from audience.contact_files.mapping import MappingError, map_header, suggested_fields
from audience.db.session import transaction
from audience.errors import BadRequest, NotFound
from audience.import_jobs.repository import JobRepository
from audience.import_jobs.schemas import Job, JobOptions
from audience.import_jobs.service import check_request, create_job, get_job
from audience.import_jobs.worker import JobFailed, open_job_file, rows_of
from audience.lists import service as lists

#: Rows of the file the mapping step shows.
SAMPLE_ROWS = 5


class Preview(msgspec.Struct):
    """The start of a draft's file: its header (CSV) and first rows (CSV: cells; JSON
    Lines: lines), each column's suggested field, or why the file cannot be imported."""

    header: list[str]
    rows: list[list[str]]
    suggested: list[str | None]
    error: str | None = None


def upload_draft(
    engine: Engine, *, caller: Caller, file_name: str, file: IO[bytes], max_bytes: int
) -> Job:
    """Store the file as a draft (the key must be able to write contacts)."""
    return create_job(
        engine,
        caller=caller,
        file_name=file_name,
        file=file,
        options=JobOptions(),
        max_bytes=max_bytes,
        max_lists=0,
        queue=False,
    )


def is_draft(job: Job) -> bool:
    return job.status == "uploading" and job.file_bytes > 0


def get_draft_or_job(conn: Connection, *, workspace_id: str, job_id: str) -> Job:
    """A draft, or a job as imports.get finds it (NotFound otherwise)."""
    job = JobRepository(conn, workspace_id).get(job_id)
    if job is not None and is_draft(job):
        return job
    return get_job(conn, workspace_id=workspace_id, job_id=job_id)


def _draft(conn: Connection, workspace_id: str, job_id: str) -> Job:
    job = JobRepository(conn, workspace_id).get(job_id, lock=True)
    if job is None or (job.status == "uploading" and not is_draft(job)):
        raise NotFound(f"import not found: {job_id}")
    if not is_draft(job):
        raise BadRequest("this import has been started already")
    return job


def preview(engine: Engine, job: Job) -> Preview:
    """The draft's header and first rows, read back from the database."""
    try:
        with open_job_file(engine, job) as source:
            rows = list(itertools.islice(rows_of(source), SAMPLE_ROWS))
            header = list(source.header)
    except JobFailed as exc:
        return Preview([], [], [], str(exc))
    cells = [row.raw if isinstance(row.raw, list) else [row.raw] for row in rows]
    if job.format != "csv":
        return Preview([], cells, [])
    suggested = suggested_fields(header)
    error = None if "email" in suggested else "no column is recognised as the email: choose one"
    return Preview(header, cells, suggested, error)


def start_draft(
    engine: Engine,
    *,
    caller: Caller,
    job_id: str,
    header: list[str],
    options: JobOptions,
    max_lists: int,
) -> Job:
    """Queue the draft with these options: the checks of imports.create (permissions, lists
    that exist), and a mapping of the file's `header` (its preview's) that gives the email a
    column."""
    check_request(caller, options, max_lists)
    with transaction(engine, write=True) as conn:
        if options.subscribe_to_lists:
            lists.lock_for_subscribe(
                conn, workspace_id=caller.workspace_id, list_ids=options.subscribe_to_lists
            )
        job = _draft(conn, caller.workspace_id, job_id)
        if job.format == "csv":
            _check_mapping(header, options)
        JobRepository(conn, caller.workspace_id).queue(job_id, options)
    job.status, job.options = "queued", options
    return job


def _check_mapping(header: list[str], options: JobOptions) -> None:
    try:
        map_header(header, options.mapping, option="mapping")
    except MappingError:
        raise BadRequest("no column is mapped to email: choose the column that holds it") from None


def discard_draft(conn: Connection, *, workspace_id: str, job_id: str) -> None:
    """Forget a draft and its file."""
    _draft(conn, workspace_id, job_id)
    JobRepository(conn, workspace_id).delete(job_id)
