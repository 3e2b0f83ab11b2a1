"""Import jobs (docs/import-jobs.md): a file uploaded once, imported in the background by the
workers (worker.py), batch by batch through the contacts import, with progress, cancel and a
report of every row that failed."""

from __future__ import annotations

import contextlib
import csv
import io
import secrets
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import IO, Any

import msgspec
from sqlalchemy import Connection, Engine

from audience.api_keys import service as api_keys
from audience.api_keys.schemas import Caller, Permission
from audience.contact_files.convert import time_zone
from audience.contact_files.mapping import ALL_FIELDS
from audience.contact_files.reader import decompressed, format_of
from audience.contacts.schemas import LIST_STATUSES, MERGE_POLICIES
from audience.contacts.service import LISTS_WRITE_REQUIRED
from audience.db.session import transaction
from audience.errors import BadRequest, NotFound, PayloadTooLarge
from audience.import_jobs.repository import JobRepository
from audience.import_jobs.schemas import FINISHED, Job, JobOptions, RowFailure
from audience.kit.clock import utcnow
from audience.kit.pagination import decode_cursor, encode_cursor
from audience.lists import service as lists

#: The uploaded file is kept in rows of this size.
CHUNK_BYTES = 1 << 20
_OPTIONS = msgspec.json.Decoder(JobOptions)


def parse_options(text: str | None) -> JobOptions:
    """The job's options from the form's `options` field; 400 `options: <reason>`."""
    if text is None or not text.strip():
        return JobOptions()
    try:
        options = _OPTIONS.decode(text)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"options: {_reason(str(exc))}") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"options: not a JSON object ({exc})") from None
    for column, field in options.mapping.items():
        if field and field not in ALL_FIELDS:
            raise BadRequest(f"options: mapping: unknown field {field!r} for column {column!r}")
    options.mapping = {column: field or None for column, field in options.mapping.items()}
    targets = [field for field in options.mapping.values() if field]
    for field in targets:
        if targets.count(field) > 1:
            raise BadRequest(f"options: mapping: more than one column is mapped to {field!r}")
    if options.timezone is not None:
        try:
            time_zone(options.timezone)
        except ValueError as exc:
            raise BadRequest(f"options: timezone: {exc}") from None
    if any("\x00" in list_id for list_id in options.subscribe_to_lists):
        raise BadRequest("options: subscribe_to_lists must not contain NUL characters")
    return options


def _reason(message: str) -> str:
    """A msgspec validation message, shortened: `field: reason`."""
    text, _, where = message.partition(" - at `$")
    field = where.rstrip("`").lstrip(".").split("[")[0]
    if text.startswith("Object contains unknown field"):
        return f"unknown option {text.split('`')[1]!r}"
    if "Invalid enum value" in text and field in ("list_status", "merge"):
        choices = {"list_status": LIST_STATUSES, "merge": MERGE_POLICIES}[field]
        return f"{field} must be one of {', '.join(choices)}"
    return f"{field}: {text[0].lower()}{text[1:]}" if field else text


def create_job(
    engine: Engine,
    *,
    caller: Caller,
    file_name: str,
    file: IO[bytes],
    options: JobOptions,
    max_bytes: int,
    max_lists: int,
    queue: bool = True,
) -> Job:
    """Check the request (permissions, lists), then store the file and queue the job.

    The file is stored a few chunks per transaction (SQLite's writers are not held up for
    the whole of a large file) under a job marked `uploading`, which no one sees and no
    worker takes; it is queued once the last chunk is in. A failed upload is deleted.
    Without `queue` the job stays a draft (`uploading`, its file stored): the console's
    mapping step starts it (drafts.start_draft) or it is forgotten (twice
    AUDIENCE_UPLOAD_TIMEOUT_SECONDS after its upload).
    """
    check_request(caller, options, max_lists)
    fmt = _format(file)
    job = Job(
        workspace_id=caller.workspace_id,
        id=new_job_id(),
        status="uploading",
        file_name=(file_name or "upload")[:255],
        format=fmt,
        file_bytes=0,
        options=options,
        created_at=utcnow(),
    )
    with transaction(engine, write=True) as conn:
        if options.subscribe_to_lists:
            lists.lock_for_subscribe(
                conn, workspace_id=caller.workspace_id, list_ids=options.subscribe_to_lists
            )
        JobRepository(conn, caller.workspace_id).insert(job)
    try:
        job.file_bytes = _store(engine, job, file, max_bytes)
        status = "queued" if queue else "uploading"
        with transaction(engine, write=True) as conn:
            JobRepository(conn, job.workspace_id).set(
                job.id, status=status, file_bytes=job.file_bytes
            )
    except BaseException:
        with contextlib.suppress(Exception), transaction(engine, write=True) as conn:
            JobRepository(conn, job.workspace_id).delete(job.id)
        raise
    job.status = status
    return job


def check_request(caller: Caller, options: JobOptions, max_lists: int) -> None:
    """The key may write contacts (and lists, to subscribe to them); the lists are few
    enough. 400 otherwise, as contacts.import answers. The lists are made unique."""
    if options.subscribe_to_lists:
        api_keys.require(caller, Permission.LISTS_WRITE, LISTS_WRITE_REQUIRED, error=BadRequest)
    api_keys.require(caller, Permission.CONTACTS_WRITE, error=BadRequest)
    options.subscribe_to_lists = list(dict.fromkeys(options.subscribe_to_lists))
    if len(options.subscribe_to_lists) > max_lists:
        raise BadRequest(f"options: subscribe_to_lists exceeds the maximum of {max_lists}")


def _format(file: IO[bytes]) -> str:
    """CSV or JSON Lines, by the (decompressed) content; the file is read again from 0.
    An empty file is refused; one that is not valid gzip fails as a job, saying so."""
    file.seek(0, io.SEEK_END)
    if file.tell() == 0:
        raise BadRequest("file is empty")
    file.seek(0)
    try:
        head = decompressed(_Unclosed(file)).read(4096)  # type: ignore[arg-type]
    except (OSError, EOFError, zlib.error):
        head = b""
    file.seek(0)
    return format_of(head)


class _Unclosed(io.RawIOBase):
    """A view of a file that peeking and gunzipping may close without closing the file."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


#: Chunks stored per transaction.
_CHUNKS_PER_TRANSACTION = 8


def _store(engine: Engine, job: Job, file: IO[bytes], max_bytes: int) -> int:
    size = seq = 0
    while True:
        with transaction(engine, write=True) as conn:
            repo = JobRepository(conn, job.workspace_id)
            for _ in range(_CHUNKS_PER_TRANSACTION):
                data = file.read(CHUNK_BYTES)
                if not data:
                    return size
                size += len(data)
                if size > max_bytes:
                    raise PayloadTooLarge("request body too large")
                repo.add_chunk(job.id, seq, data)
                seq += 1


def new_job_id() -> str:
    return "imp_" + secrets.token_hex(8)


def get_job(conn: Connection, *, workspace_id: str, job_id: str) -> Job:
    """The job, or NotFound (also for another workspace's)."""
    job = JobRepository(conn, workspace_id).get(job_id)
    if job is None or job.status == "uploading":
        raise NotFound(f"import not found: {job_id}")
    return job


def list_jobs(
    conn: Connection, *, workspace_id: str, limit: int, cursor: str | None
) -> tuple[list[Job], str | None]:
    """A page of jobs, newest first, and the cursor of the next page (None at the end)."""
    before = _before(cursor)
    jobs = JobRepository(conn, workspace_id).page(before=before, limit=limit + 1)
    page, more = jobs[:limit], len(jobs) > limit
    last = page[-1] if page else None
    next_cursor = None
    if more and last is not None:
        next_cursor = encode_cursor(f"{last.created_at.isoformat()}|{last.id}")
    return page, next_cursor


def _before(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    try:
        at, _, job_id = decode_cursor(cursor).partition("|")
        return datetime.fromisoformat(at), job_id
    except ValueError:
        raise BadRequest("cursor: invalid cursor") from None


def cancel_job(conn: Connection, *, workspace_id: str, job_id: str) -> Job:
    """Stop a job: what its committed batches wrote stays, the rest is not imported."""
    repo = JobRepository(conn, workspace_id)
    job = repo.get(job_id, lock=True)
    if job is None or job.status == "uploading":
        raise NotFound(f"import not found: {job_id}")
    if job.status in FINISHED:
        raise BadRequest("import already finished")
    now = utcnow()
    repo.set(job_id, status="cancelled", finished_at=now, lease_owner=None)
    repo.drop_file(job_id)
    job.status, job.finished_at = "cancelled", now
    return job


def error_report(
    engine: Engine, *, workspace_id: str, job_id: str, kept_days: float
) -> Iterator[bytes]:
    """The job's failed rows as CSV, in file order: line, email, error, then the file's own
    columns (JSON Lines: the line as `raw`), read a page at a time. A report is kept
    `kept_days` after its job finished."""
    with transaction(engine, write=False) as conn:
        job = get_job(conn, workspace_id=workspace_id, job_id=job_id)
    if job.finished_at is not None and job.finished_at < utcnow() - timedelta(days=kept_days):
        raise NotFound(f"the error report of import {job_id} has expired")
    yield from _report_lines(engine, job)


def _report_lines(engine: Engine, job: Job) -> Iterator[bytes]:
    csv_file = job.format == "csv"
    columns = job.header or [] if csv_file else ["raw"]
    yield _csv_line(["line", "email", "error", *columns])
    after = 0
    while True:
        with transaction(engine, write=False) as conn:
            page = JobRepository(conn, job.workspace_id).failures(job.id, after=after, limit=1000)
        if not page:
            return
        for failure in page:
            cells = _cells(failure, len(columns)) if csv_file else [failure.raw]
            yield _csv_line([str(failure.line), failure.email, failure.error, *cells])
        after = page[-1].line


def _cells(failure: RowFailure, width: int) -> list[str]:
    try:
        cells = msgspec.json.decode(failure.raw, type=list[str])
    except msgspec.DecodeError:
        cells = [failure.raw]
    return cells + [""] * (width - len(cells))


def _csv_line(cells: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue().encode()
