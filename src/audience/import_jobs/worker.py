"""The import workers (docs/import-jobs.md): threads of `audience serve` and `audience worker`
that take queued jobs from the database and import their files.

A job is taken (claimed) with a lease that its worker renews while it works; a job whose
worker died is taken again once the lease has run out. The file is read twice: once through,
to check it can be read at all and to count its rows (`total_rows`), then batch by batch.
Each batch goes through the contacts import (the same rules and per-row reasons as
contacts.import) and commits together with the job's checkpoint: the rows done, the counts
and the rows that failed. After a crash the job resumes after its last committed batch, so
no row is applied twice and none is lost.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import secrets
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from audience.api_keys.schemas import Caller, Permission
from audience.config import Settings
from audience.contact_files.convert import (
    Conversion,
    RowError,
    convert_line,
    convert_row,
    email_of_line,
    time_zone,
)
from audience.contact_files.mapping import REPORT_COLUMNS, Mapping, MappingError, map_header
from audience.contact_files.reader import (
    FileError,
    Row,
    Source,
    Utf8Checked,
    decompressed,
    open_stream,
)
from audience.contacts.schemas import ImportLimits, ImportRequest
from audience.contacts.service import import_contacts
from audience.db.session import busy_skips, transaction
from audience.errors import AppError, DatabaseBusy, RetryableDatabaseError, ServiceUnavailable
from audience.import_jobs.repository import JobRepository
from audience.import_jobs.schemas import Counts, Job, RowFailure
from audience.import_jobs.service import CHUNK_BYTES
from audience.kit import metrics
from audience.kit.clock import utcnow

log = logging.getLogger("audience.import_jobs")

#: A worker acts for the job's workspace with what imports.create checked the key could do.
_PERMISSIONS = frozenset({Permission.CONTACTS_WRITE, Permission.LISTS_WRITE})
#: A batch that meets a deadlock (or a serialization failure) is tried again.
_BATCH_ATTEMPTS = 5
#: Rows read between two lease renewals while the file is counted.
_RENEW_EVERY_ROWS = 20_000
#: The error report's CSV of a JSON Lines file: a fixed one is imported line by line again.
_JSONL_REPORT = (*REPORT_COLUMNS, "raw")


class JobLost(Exception):
    """The job is no longer this worker's: cancelled, or taken by another worker."""


class Stopping(Exception):
    """The worker is stopping (its process shuts down): the job is left for another."""


class JobFailed(Exception):
    """The whole job fails: its file cannot be read, no column maps to email, a list is gone."""


# --- the uploaded file, read back from the database ---------------------------------------------


class StoredFile(io.RawIOBase):
    """The bytes of a job's file, read a chunk at a time, each in a short transaction."""

    def __init__(self, engine: Engine, job: Job) -> None:
        self._engine = engine
        self._job = job
        self._chunks = -(-job.file_bytes // CHUNK_BYTES)
        self._seq = 0
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._pending:
            if self._seq >= self._chunks:
                return 0
            with transaction(self._engine, write=False) as conn:
                data = JobRepository(conn, self._job.workspace_id).chunk(self._job.id, self._seq)
            if data is None:  # cancelled: the file went with it
                raise JobLost
            self._pending, self._seq = memoryview(data), self._seq + 1
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


@contextmanager
def open_job_file(engine: Engine, job: Job) -> Iterator[Source]:
    """The job's file opened for reading records; unreadable → JobFailed."""
    binary = io.BufferedReader(StoredFile(engine, job), CHUNK_BYTES)
    try:
        checked = io.BufferedReader(Utf8Checked(decompressed(binary)))
        source = open_stream(checked, job.format, job.file_name)  # type: ignore[arg-type]
    except (FileError, UnicodeDecodeError, *_GZIP_ERRORS) as exc:
        binary.close()
        raise JobFailed(_unreadable(exc)) from None
    try:
        yield source
    finally:
        source.close()


_GZIP_ERRORS = (OSError, EOFError, zlib.error)


def _unreadable(exc: BaseException) -> str:
    if isinstance(exc, FileError):
        return str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return f"the file is not UTF-8 ({exc.reason}); save it as UTF-8 and upload it again"
    return f"the file cannot be decompressed ({exc or type(exc).__name__})"


def rows_of(source: Source) -> Iterator[Row]:
    """The file's records; a read error part-way → JobFailed."""
    try:
        yield from source.rows()
    except (FileError, UnicodeDecodeError, *_GZIP_ERRORS) as exc:
        raise JobFailed(_unreadable(exc)) from None


# --- from rows to contacts ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prepared:
    """A row on its way: its contact as JSON, or why it fails before the import sees it."""

    line: int
    raw: list[str] | str
    contact: msgspec.Raw | None
    email: str
    reason: str | None


class Preparer:
    """Rows into contacts by the file client's rules (contact_files), with the job's options."""

    def __init__(self, job: Job) -> None:
        options = job.options
        self.conversion = Conversion(
            empty_clears=options.empty_clears,
            timezone=time_zone(options.timezone) if options.timezone else None,
            decimal_comma=options.decimal_comma,
        )
        self.renames = dict(options.mapping)
        self.lines_in_cells = job.format == "csv" and tuple(job.header or ()) == _JSONL_REPORT
        self.mapping: Mapping | None = None
        if job.format == "csv" and not self.lines_in_cells:
            self.mapping = mapping_of(job)

    def __call__(self, row: Row) -> Prepared:
        raw = row.raw
        text = raw[3] if self.lines_in_cells and isinstance(raw, list) and len(raw) > 3 else raw
        try:
            if isinstance(text, str):
                contact = convert_line(text, self.renames)
            else:
                assert self.mapping is not None
                contact = convert_row(text, self.mapping, self.conversion)
        except RowError as exc:
            email = exc.email or (email_of_line(text) if isinstance(text, str) else "")
            return Prepared(row.line, raw, None, email, exc.reason)
        return Prepared(row.line, raw, msgspec.Raw(_ENCODE(contact)), "", None)


_ENCODE = msgspec.json.Encoder().encode


def mapping_of(job: Job) -> Mapping:
    """The columns of a CSV job's header mapped to fields; no email column → JobFailed."""
    try:
        return map_header(job.header or (), job.options.mapping, option="options.mapping")
    except MappingError as exc:
        raise JobFailed(str(exc)) from None


# --- one job --------------------------------------------------------------------------------


class Lease:
    """The worker's hold on its job, renewed every third of its length."""

    def __init__(self, engine: Engine, job: Job, owner: str, seconds: float) -> None:
        self.engine, self.job, self.owner, self.seconds = engine, job, owner, seconds
        self.renewed = time.monotonic()

    def until(self) -> datetime:
        self.renewed = time.monotonic()
        return utcnow() + timedelta(seconds=self.seconds)

    def keep(self) -> None:
        """Renew the lease if a third of it has passed; JobLost if the job is not ours."""
        if time.monotonic() - self.renewed < self.seconds / 3:
            return
        with transaction(self.engine, write=True) as conn:
            repo = JobRepository(conn, self.job.workspace_id)
            if not repo.renew(self.job.id, owner=self.owner, until=self.until()):
                raise JobLost

    def check(self, repo: JobRepository) -> Job:
        """The job locked in the caller's transaction, if it is still this worker's."""
        current = repo.get(self.job.id, lock=True)
        if current is None or current.status != "running" or current.lease_owner != self.owner:
            raise JobLost
        return current


class JobRun:
    """The import of one claimed job, from its checkpoint to its end."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        job: Job,
        lease: Lease,
        stopping: threading.Event | None = None,
    ) -> None:
        self.engine, self.settings, self.job, self.lease = engine, settings, job, lease
        self.stopping = stopping or threading.Event()
        lists = max(1, len(job.options.subscribe_to_lists))
        per_lists = settings.max_memberships_per_import // lists
        self.batch_size = max(1, min(settings.import_batch_size, per_lists))
        self.caller = Caller(workspace_id=job.workspace_id, key_id="", permissions=_PERMISSIONS)
        self.limits = ImportLimits(
            max_contacts=self.batch_size,
            max_lists=settings.max_lists_per_import,
            max_memberships=settings.max_memberships_per_import,
        )

    def run(self) -> None:
        if self.job.total_rows is None:
            self._count()
        self._import()
        self._finish()

    def _count(self) -> None:
        """Read the file through: its header (mapped at once, to fail early) and its rows."""
        with open_job_file(self.engine, self.job) as source:
            self.job.header = list(source.header) if self.job.format == "csv" else None
            Preparer(self.job)  # maps the header: no email column fails before the count
            total = 0
            for _ in rows_of(source):
                total += 1
                if total % _RENEW_EVERY_ROWS == 0:
                    self.lease.keep()
        with transaction(self.engine, write=True) as conn:
            repo = JobRepository(conn, self.job.workspace_id)
            self.lease.check(repo)
            repo.set(self.job.id, header=self.job.header, total_rows=total)
            repo.renew(self.job.id, owner=self.lease.owner, until=self.lease.until())
        self.job.total_rows = total

    def _import(self) -> None:
        prepare = Preparer(self.job)
        with open_job_file(self.engine, self.job) as source:
            batches = _batches(rows_of(source), prepare, self.batch_size, self.job.processed_rows)
            for batch in _read_ahead(batches):
                if self.stopping.is_set():
                    raise Stopping
                self._apply(batch)

    def _apply(self, batch: list[Prepared]) -> None:
        for attempt in range(1, _BATCH_ATTEMPTS + 1):
            try:
                self._apply_once(batch)
                return
            except RetryableDatabaseError:
                if attempt == _BATCH_ATTEMPTS:
                    raise
                time.sleep(0.05 * attempt)

    def _apply_once(self, batch: list[Prepared]) -> None:
        options = self.job.options
        failures = [
            RowFailure(p.line, p.email, p.reason, _raw_text(p.raw))
            for p in batch
            if p.reason is not None
        ]
        valid = [p for p in batch if p.contact is not None]
        counts = Counts(rows=len(batch), errors=len(failures))
        with transaction(self.engine, write=True) as conn:
            repo = JobRepository(conn, self.job.workspace_id)
            self.lease.check(repo)
            if valid:
                request = ImportRequest(
                    workspace_id=self.job.workspace_id,
                    contacts=[p.contact for p in valid if p.contact is not None],
                    subscribe_to_lists=options.subscribe_to_lists,
                    dry_run=options.dry_run,
                    merge=options.merge,
                    list_status=options.list_status,
                )
                try:
                    answer = import_contacts(
                        conn, caller=self.caller, request=request, limits=self.limits
                    )
                except (ServiceUnavailable, JobLost):
                    raise
                except AppError as exc:  # a list deleted since the upload, …
                    raise JobFailed(exc.message) from None
                for op in answer.operations:
                    if op.action == "error":
                        row = valid[op.index]
                        failures.append(
                            RowFailure(row.line, op.email, op.error or "", _raw_text(row.raw))
                        )
                summary = answer.summary
                counts.created, counts.updated = summary.created, summary.updated
                counts.unchanged, counts.errors = summary.unchanged, counts.errors + summary.errors
            failures.sort(key=lambda failure: failure.line)
            repo.add_failures(self.job.id, failures)
            repo.count(self.job, counts, lease_expires_at=self.lease.until())
        self.job.processed_rows += counts.rows
        metrics.IMPORT_JOB_ROWS.inc(counts.rows)

    def _finish(self) -> None:
        with transaction(self.engine, write=True) as conn:
            repo = JobRepository(conn, self.job.workspace_id)
            current = self.lease.check(repo)
            if current.processed_rows != current.total_rows:  # the file changed under us
                raise JobFailed(
                    f"read {current.processed_rows} rows of {current.total_rows}; "
                    "upload the file again"
                )
            end(repo, self.job.id, "completed")


def end(repo: JobRepository, job_id: str, status: str, error: str | None = None) -> None:
    """Finish a job: its status, and its file deleted (its error report stays)."""
    repo.set(
        job_id,
        status=status,
        error=error,
        finished_at=utcnow(),
        lease_owner=None,
        lease_expires_at=None,
    )
    repo.drop_file(job_id)
    metrics.IMPORT_JOBS.labels(status).inc()


def _raw_text(raw: list[str] | str) -> str:
    return raw if isinstance(raw, str) else msgspec.json.encode(raw).decode()


def _batches(
    rows: Iterator[Row], prepare: Callable[[Row], Prepared], size: int, skip: int
) -> Iterator[list[Prepared]]:
    """Batches of `size` prepared rows, after the `skip` rows a previous run committed."""
    batch: list[Prepared] = []
    for number, row in enumerate(rows, start=1):
        if number <= skip:
            continue
        batch.append(prepare(row))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


_DONE = object()


def _read_ahead(batches: Iterator[list[Prepared]], depth: int = 2) -> Iterator[list[Prepared]]:
    """The batches, read and converted by a thread while the previous ones are written: the
    database works while Python reads."""
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        ready.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            ready.put(exc)

    reader = threading.Thread(target=produce, name="import-reader", daemon=True)
    reader.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():
            try:
                ready.get_nowait()
            except queue.Empty:
                reader.join(0.05)


# --- the workers -----------------------------------------------------------------------------


class Worker:
    """One worker: claims a job, imports it, and again; tidies up old jobs now and then."""

    def __init__(self, engine: Engine, settings: Settings, *, tidies: bool = True) -> None:
        self.engine = engine
        self.settings = settings
        self.tidies = tidies
        self.owner = f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}"
        self.stopping = threading.Event()
        self._last_tidy = time.monotonic()  # the first tidy-up waits one interval

    def run(self) -> None:
        """Work until stop(); errors of the database are logged and waited out."""
        while not self.stopping.is_set():
            try:
                worked = self.work_once()
                if self.tidies:
                    self._tidy()
            except (ServiceUnavailable, DBAPIError) as exc:  # away or busy: wait, try again
                log.warning("import worker: the database failed (%s)", type(exc).__name__)
                worked = False
            except Exception:
                log.exception("import worker: error while looking for jobs")
                worked = False
            if not worked:
                self.stopping.wait(self.settings.import_poll_seconds)

    def stop(self) -> None:
        self.stopping.set()

    def work_once(self) -> bool:
        """Claim one job and import it; False when there was none to take."""
        job = self.claim()
        if job is None:
            return False
        self.process(job)
        return True

    def claim(self) -> Job | None:
        with transaction(self.engine, write=False) as conn:  # most polls find nothing
            if not JobRepository.candidates(conn, now=utcnow(), limit=1):
                return None
        with transaction(self.engine, write=True) as conn:
            found = JobRepository.candidates(conn, now=utcnow(), limit=20)
            # The time once the transaction has begun (SQLite: after waiting for the write
            # lock): the job's started_at and its lease start when it is really taken.
            now = utcnow()
            until = now + timedelta(seconds=self.settings.import_lease_seconds)
            for workspace_id, job_id in found:
                job = JobRepository(conn, workspace_id).claim(
                    job_id, owner=self.owner, now=now, until=until
                )
                if job is not None:
                    return job
        return None

    def process(self, job: Job) -> None:
        lease = Lease(self.engine, job, self.owner, self.settings.import_lease_seconds)
        log.info("import %s: started (%s rows done before)", job.id, job.processed_rows)
        try:
            JobRun(self.engine, self.settings, job, lease, self.stopping).run()
        except Stopping:
            log.info("import %s: left for another worker (shutting down)", job.id)
            self._release(job)
            return
        except JobLost:
            log.info("import %s: stopped (cancelled, or taken by another worker)", job.id)
            return
        except JobFailed as exc:
            self._fail(job, lease, str(exc))
            return
        except (ServiceUnavailable, DBAPIError):
            # The database is down or too busy: the job waits for its lease to run out.
            log.warning("import %s: the database failed; the job resumes later", job.id)
            return
        except Exception:
            log.exception("import %s: unexpected error", job.id)
            self._fail(job, lease, "internal error while importing; the rows before it stay")
            return
        log.info("import %s: completed", job.id)

    def _fail(self, job: Job, lease: Lease, error: str) -> None:
        log.info("import %s: failed", job.id)
        try:
            with transaction(self.engine, write=True) as conn:
                repo = JobRepository(conn, job.workspace_id)
                lease.check(repo)
                end(repo, job.id, "failed", error)
        except JobLost:
            pass

    def _release(self, job: Job) -> None:
        """End this worker's lease now: the next worker takes the job from its checkpoint."""
        with transaction(self.engine, write=True) as conn:
            JobRepository(conn, job.workspace_id).renew(job.id, owner=self.owner, until=utcnow())

    def _tidy(self) -> None:
        """Every few minutes: forget old jobs, old error reports and abandoned uploads."""
        if time.monotonic() - self._last_tidy < 300:
            return
        self._last_tidy = time.monotonic()
        now = utcnow()
        # Never waits for SQLite's write lock: skipped while another writer holds it.
        with contextlib.suppress(DatabaseBusy), busy_skips(self.engine) as conn:
            JobRepository.forget(
                conn,
                jobs_before=now - timedelta(days=self.settings.import_job_days),
                reports_before=now - timedelta(days=self.settings.import_report_days),
                uploads_before=now - timedelta(seconds=self.settings.upload_timeout_seconds * 2),
            )


class Workers:
    """The worker threads of a process (AUDIENCE_IMPORT_WORKERS of them)."""

    def __init__(self, engine: Engine, settings: Settings, count: int) -> None:
        self.workers = [Worker(engine, settings, tidies=i == 0) for i in range(count)]
        self.threads = [
            threading.Thread(target=w.run, name=f"import-worker-{i}", daemon=True)
            for i, w in enumerate(self.workers)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask every worker to stop after its current batch, and wait a little for them."""
        for worker in self.workers:
            worker.stop()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
