"""`audience import FILE --server-side`: the file uploaded as an import job, followed to its end.

The file is streamed from disk to `POST /api/imports.create` (never read whole into memory);
the job is then polled with `imports.get`, its progress shown with the client's progress bar,
and when it ends its error report (`imports.errors`) is written where and as the client writes
its own errors file (errors_file.py), so that both paths give the same file. Ctrl-C while the
job runs cancels it (`imports.cancel`). The server reads, converts and imports the file by the
same code as the client; a file it cannot read at all fails the job, whose `error` says why.
"""

from __future__ import annotations

import csv
import gzip
import time
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import msgspec

from audience.contact_files.convert import time_zone
from audience.contact_files.mapping import (
    REPORT_COLUMNS,
    MappingError,
    map_header,
    parse_overrides,
)
from audience.contact_files.reader import (
    BOM,
    FileError,
    Format,
    decompressed,
    detect_format,
    open_source,
)
from audience.file_client.deadline import request_deadline
from audience.file_client.dry_run import SHOWN_FAILURES
from audience.file_client.errors_file import ErrorsFile, default_errors_path
from audience.file_client.options import EXIT_ERROR, EXIT_INTERRUPTED, Abort, Options, Outcome, Ui
from audience.file_client.progress import ProgressView, Tally, counts, summary_line
from audience.file_client.resume import load_state, remove_state, state_path_for
from audience.file_client.sender import (
    MAX_DELAY,
    PER_OPERATION,
    RETRY_STATUSES,
    UNEXPECTED,
    Stopped,
    build_http_client,
    cannot_connect,
    check_url,
    error_text,
    plain_http_warning,
)
from audience.file_client.untrusted import describe, printable, server_text

CREATE_PATH = "/api/imports.create"
GET_PATH = "/api/imports.get"
CANCEL_PATH = "/api/imports.cancel"
ERRORS_PATH = "/api/imports.errors"
FINISHED = ("completed", "failed", "cancelled")
#: The first wait between two looks at the job; each next one is longer, up to Options.poll_seconds.
FIRST_POLL = 0.1
#: Seconds a job may stay queued before the user is told what it waits for.
QUEUED_NOTE_AFTER = 5.0


class Job(msgspec.Struct):
    """What the client reads of an import job (other keys are ignored)."""

    id: str
    status: Literal["queued", "running", "completed", "failed", "cancelled"]
    total_rows: int | None
    processed_rows: int
    created: int
    updated: int
    unchanged: int
    errors: int
    error: str | None = None

    @property
    def tally(self) -> Tally:
        """The client's tally: an update that changed nothing is an update there too."""
        return Tally(self.created, self.updated + self.unchanged, self.errors)


class JobAnswer(msgspec.Struct):
    job: Job = msgspec.field(name="import")


_ANSWER = msgspec.json.Decoder(JobAnswer)


@dataclass(frozen=True)
class Local:
    """What the client reads of the file itself: enough to write the errors file as the
    client-side path writes it (its format, header, delimiter and BOM)."""

    format: Format
    header: list[str]
    delimiter: str = ","
    bom: bool = False


def run_server_side(options: Options, ui: Ui, http: httpx.Client | None = None) -> Outcome:
    """Upload the file as a job, follow it and write its failed rows; Abort as run_import."""
    if not options.key:
        raise Abort("no API key: pass --key or set AUDIENCE_API_KEY")
    problem = check_url(options.url)
    if problem:
        raise Abort(problem)
    try:
        overrides = parse_overrides(options.mappings)
        if options.timezone:
            time_zone(options.timezone)
    except (MappingError, ValueError) as exc:
        raise Abort(str(exc)) from None
    warning = plain_http_warning(options.url)
    if warning:
        ui.note(warning)
    local = look(options.path)
    note = _unmapped(local, overrides)
    if note:
        ui.note(note)
    path = _errors_path(options, local.format)
    _discard_resume_state(path, ui)
    errors = None
    if not options.dry_run or options.errors is not None:  # a dry run writes only to --errors
        errors = ErrorsFile(
            path, fmt=local.format, header=local.header, delimiter=local.delimiter, bom=local.bom
        )
    with ExitStack() as stack:
        client = http or stack.enter_context(build_http_client(2))
        follower = Follower(client, options, ui)
        return follower.run(overrides, local, errors)


def look(path: Path) -> Local:
    """The file's format (as the client reads it), header, delimiter and BOM. The server is
    the judge of the file: what cannot be read here is left for its job to fail on."""
    try:
        fmt = detect_format(path)
    except FileError as exc:
        raise Abort(str(exc)) from None
    except (EOFError, zlib.error, gzip.BadGzipFile):
        return Local("csv", [])
    try:
        with decompressed(path.open("rb")) as binary:
            bom = binary.read(len(BOM)) == BOM
        if fmt == "jsonl":
            return Local(fmt, [], bom=bom)
        source = open_source(path, fmt)
        try:
            return Local(fmt, list(source.header), source.delimiter, bom)
        finally:
            source.close()
    except (FileError, UnicodeDecodeError, EOFError, zlib.error, gzip.BadGzipFile):
        return Local(fmt, [])


def _unmapped(local: Local, overrides: dict[str, str | None]) -> str | None:
    """The columns no field takes, as the client-side path notes them."""
    if local.format != "csv" or not local.header:
        return None
    try:
        mapping = map_header(local.header, overrides)
    except MappingError:  # the job fails and says why
        return None
    if not mapping.unmapped:
        return None
    names = ", ".join(map(repr, mapping.unmapped))
    return f"not imported (no matching field): {names}; import one with --map 'COLUMN=field'"


def _errors_path(options: Options, fmt: Format) -> Path:
    path = options.errors or default_errors_path(options.path, fmt)
    if path.resolve() == options.path.resolve():
        raise Abort("--errors must not be the file being imported")
    return path


def _discard_resume_state(errors_path: Path, ui: Ui) -> None:
    """A client-side run's resume state beside the errors file no longer matches the errors
    file this run writes: it goes, as a client-side run that does not --resume discards it."""
    state_path = state_path_for(errors_path)
    saved = load_state(state_path)
    if saved is not None and saved.rows_done:
        ui.note(f"starting over; an interrupted run's progress is discarded ({state_path})")
    remove_state(state_path)


class Follower:
    """One server-side import: upload, follow, report."""

    def __init__(self, http: httpx.Client, options: Options, ui: Ui) -> None:
        self.http, self.options, self.ui = http, options, ui
        self.base = options.url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {options.key}"}
        #: The upload and the error report may take as long as they need while bytes move:
        #: each network operation, not the whole request, is bounded by --timeout.
        self.streaming = httpx.Timeout(options.timeout, connect=PER_OPERATION.connect)

    def run(
        self, overrides: dict[str, str | None], local: Local, errors: ErrorsFile | None
    ) -> Outcome:
        started = time.monotonic()
        try:
            job = self._upload(overrides)
            self.ui.note(f"uploaded {printable(self.options.path.name)}: import {_id(job)}")
            try:
                job, interrupted = self._follow(job)
                self._report(job, local, errors)
            except KeyboardInterrupt:  # once more, while it was being cancelled
                raise Abort(
                    f"interrupted: see how import {_id(job)} is with GET {GET_PATH}?id={_id(job)}",
                    EXIT_INTERRUPTED,
                ) from None
        finally:
            if errors is not None:
                errors.close()
        return self._end(job, interrupted, errors, time.monotonic() - started)

    # --- the upload ------------------------------------------------------------------------

    def _upload(self, overrides: dict[str, str | None]) -> Job:
        options = self.options
        job_options: dict[str, Any] = {
            "subscribe_to_lists": list(options.lists),
            "list_status": options.list_status,
            "merge": options.merge,
            "dry_run": options.dry_run,
            "mapping": overrides,
            "empty_clears": options.empty_clears,
            "timezone": options.timezone,
            "decimal_comma": options.decimal_comma,
        }
        form = {
            "workspace_id": options.workspace,
            "options": msgspec.json.encode(job_options).decode(),
        }
        try:
            with options.path.open("rb") as file:  # streamed by httpx, 64 KiB at a time
                response = self.http.post(
                    self.base + CREATE_PATH,
                    data=form,
                    files={"file": (options.path.name, file, "application/octet-stream")},
                    headers=self.headers,
                    timeout=self.streaming,
                )
        except KeyboardInterrupt:
            raise Abort(
                "interrupted while uploading: nothing is imported (the server discards an "
                "unfinished upload)",
                EXIT_INTERRUPTED,
            ) from None
        except httpx.ConnectError as exc:
            raise Abort(cannot_connect(options.url, exc)) from None
        except httpx.ConnectTimeout:
            raise Abort(
                f"cannot connect to {printable(options.url)}: no answer within "
                f"{PER_OPERATION.connect:g}s; is the server running, and is --url right?"
            ) from None
        except httpx.TimeoutException:
            raise Abort(
                f"the upload made no progress for {options.timeout:g}s (--timeout); "
                "nothing is imported"
            ) from None
        except httpx.TransportError as exc:
            problem = self._unreachable(exc)
            raise Abort(f"the upload failed: {problem}; nothing is imported") from None
        if response.status_code != 202:
            raise Abort(_refusal(response))
        return _job(response)

    # --- following the job -----------------------------------------------------------------

    def _follow(self, job: Job) -> tuple[Job, bool]:
        """The job once it has ended, and whether this run cancelled it (Ctrl-C)."""
        view = self.ui.progress(job.total_rows, 0)
        try:
            try:
                return self._poll(job, view), False
            finally:
                view.close()
        except KeyboardInterrupt:
            return self._cancel(job), True

    def _poll(self, job: Job, view: ProgressView) -> Job:
        wait, queued_since, told = FIRST_POLL, time.monotonic(), False
        while job.status not in FINISHED:
            time.sleep(wait)
            wait = min(wait * 1.5, self.options.poll_seconds)
            job = self._get(job.id)
            view.update(job.processed_rows, job.tally, job.total_rows)
            if job.status != "queued":
                queued_since = time.monotonic()
            elif not told and time.monotonic() - queued_since > QUEUED_NOTE_AFTER:
                told = True
                self.ui.note(
                    f"import {_id(job)} is queued: it waits for the workspace's earlier imports, "
                    "or for a worker (AUDIENCE_IMPORT_WORKERS, audience worker)"
                )
        return job

    def _get(self, job_id: str) -> Job:
        """imports.get, retried on connection errors and 5xx: the job goes on meanwhile."""
        options = self.options
        params = {"workspace_id": options.workspace, "id": job_id}
        for attempt in range(options.retries + 1):
            try:
                with request_deadline(options.timeout):
                    response = self.http.get(
                        self.base + GET_PATH, params=params, headers=self.headers
                    )
            except httpx.TimeoutException:
                problem = f"no complete answer within {options.timeout:g}s (--timeout)"
            except httpx.TransportError as exc:
                problem = self._unreachable(exc)
            else:
                if response.status_code not in RETRY_STATUSES:
                    if response.status_code != 200:
                        raise self._lost(job_id, _refusal(response))
                    try:
                        return _job(response)
                    except Abort as exc:
                        raise self._lost(job_id, exc.message) from None
                problem = f"server error {response.status_code}: {error_text(response)}"
            if attempt == options.retries:
                raise self._lost(job_id, f"{problem}; gave up after {attempt + 1} attempts")
            delay = min(options.backoff * 2.0**attempt, MAX_DELAY)
            self.ui.note(f"{problem}; retrying in {delay:.1f}s")
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _lost(self, job_id: str, message: str) -> Abort:
        return Abort(
            f"{message}; import {printable(job_id)} goes on on the server "
            f"(follow it with GET {GET_PATH}?id={printable(job_id)})"
        )

    def _cancel(self, job: Job) -> Job:
        """Ctrl-C: cancel the job. One already over is left as it ended."""
        self.ui.note(f"interrupted: cancelling import {_id(job)}")
        body = {"workspace_id": self.options.workspace, "id": job.id}
        try:
            with request_deadline(self.options.timeout):
                response = self.http.post(self.base + CANCEL_PATH, json=body, headers=self.headers)
        except (httpx.TransportError, KeyboardInterrupt) as exc:
            reason = "interrupted again" if isinstance(exc, KeyboardInterrupt) else str(exc)
            raise Abort(
                f"import {_id(job)} could not be cancelled ({printable(reason)}): it goes on on "
                f"the server (cancel it with POST {CANCEL_PATH})",
                EXIT_INTERRUPTED,
            ) from None
        if response.status_code == 400 and "already finished" in error_text(response):
            return self._get(job.id)
        if response.status_code != 200:
            raise Abort(
                f"import {_id(job)} could not be cancelled: {_refusal(response)}", EXIT_INTERRUPTED
            )
        try:
            return _job(response)
        except Abort:
            return self._get(job.id)

    # --- the end ---------------------------------------------------------------------------

    def _report(self, job: Job, local: Local, errors: ErrorsFile | None) -> None:
        """Write the job's failed rows (and show a dry run's first ones)."""
        if not job.errors:
            return
        params = {"workspace_id": self.options.workspace, "id": job.id}
        shown = 0
        try:
            with self.http.stream(
                "GET",
                self.base + ERRORS_PATH,
                params=params,
                headers=self.headers,
                timeout=self.streaming,
            ) as response:
                if response.status_code != 200:
                    response.read()
                    raise Stopped(_refusal(response))
                rows = csv.reader(_lines(response.iter_text()))
                _check_columns(next(rows, []), local)
                for cells in rows:
                    line, email, reason, raw = _failure(cells, local)
                    if self.options.dry_run and shown < SHOWN_FAILURES:
                        shown += 1
                        self.ui.out(f"  line {line}: {server_text(reason)}")
                    if errors is not None:
                        errors.write(line, email, reason, raw)
        except (httpx.TransportError, Stopped, csv.Error, KeyboardInterrupt) as exc:
            reason = _why(exc)
            code = EXIT_INTERRUPTED if isinstance(exc, KeyboardInterrupt) else EXIT_ERROR
            raise Abort(
                f"import {_id(job)} ended ({job.status}) but its error report could not be "
                f"read: {reason}; download it with GET {ERRORS_PATH}?id={printable(job.id)}",
                code,
            ) from None

    def _end(
        self,
        job: Job,
        interrupted: bool,
        errors: ErrorsFile | None,
        elapsed: float,
    ) -> Outcome:
        ui, tally = self.ui, job.tally
        errors_path = errors.path if errors is not None and errors.count else None
        if errors_path is not None:
            ui.note(f"failed rows, with their reasons: {errors_path}")
        done = f"{job.processed_rows:,} rows ({counts(tally)})"
        if job.status == "cancelled":
            how = "cancelled" if interrupted else "was cancelled on the server"
            raise Abort(
                f"import {_id(job)} {how}: what its first {done} did stays, "
                "the rest of the file is not imported",
                EXIT_INTERRUPTED if interrupted else EXIT_ERROR,
            )
        if job.status == "failed":
            before = f" (what its first {done} did stays)" if job.processed_rows else ""
            raise Abort(f"import {_id(job)} failed: {_reason(job.error)}{before}")
        if job.unchanged:
            ui.note(f"{job.unchanged:,} of the updated contacts were already up to date")
        if self.options.dry_run:
            ui.note("dry run on the server: nothing was written")
        ui.out(summary_line(tally, 0, elapsed))
        return Outcome(tally, errors_path=errors_path)

    def _unreachable(self, exc: httpx.TransportError) -> str:
        reason = printable(str(exc) or type(exc).__name__)
        return f"cannot reach {printable(self.options.url)}: {reason}"


def _job(response: httpx.Response) -> Job:
    try:
        return _ANSWER.decode(response.content).job
    except msgspec.DecodeError as exc:  # ValidationError included
        raise Abort(f"{UNEXPECTED}: {printable(str(exc))}") from None


#: The server names its own option in the reason of a job without an email column.
_SERVER_HINT = 'options.mapping {"COLUMN": "email"}'


def _reason(error: str | None) -> str:
    """Why the job failed, the server's hint given as this command's option."""
    return server_text(error or "no reason given").replace(_SERVER_HINT, "--map 'COLUMN=email'")


def _id(job: Job) -> str:
    return printable(job.id)


def _refusal(response: httpx.Response) -> str:
    status, text = response.status_code, error_text(response)
    if status == 401:
        return f"the server refused the API key (401): {text}"
    if status == 413:
        return f"the file is larger than the server accepts (413): {text}"
    if status == 404 and response.request.url.path == CREATE_PATH:
        return f"the server has no {CREATE_PATH} (404): is it older than import jobs?"
    return f"the server answered {status}: {text}"


def _lines(chunks: Iterator[str]) -> Iterator[str]:
    """Text cut after each `\\n` only (csv.reader takes the line breaks inside quoted cells
    as they were), whatever the sizes of the chunks that came."""
    pending = ""
    for chunk in chunks:
        parts = (pending + chunk).split("\n")
        pending = parts.pop()
        for part in parts:
            yield part + "\n"
    if pending:
        yield pending


def _check_columns(columns: list[str], local: Local) -> None:
    """The report's columns are line, email, error, then the file's header (JSON Lines: raw)."""
    expected = list(REPORT_COLUMNS) + (local.header if local.format == "csv" else ["raw"])
    if columns != expected:
        raise Stopped(f"{UNEXPECTED}: the error report's columns {describe(columns)}")


def _failure(cells: list[str], local: Local) -> tuple[int, str, str, list[str] | str]:
    """One row of the report as the errors file takes it: line, email, reason, the row."""
    if len(cells) < len(REPORT_COLUMNS) or not cells[0].isdigit():
        raise Stopped(f"{UNEXPECTED}: the error report's row {describe(cells)}")
    line, email, reason = int(cells[0]), cells[1], cells[2]
    rest = cells[len(REPORT_COLUMNS) :]
    if local.format == "jsonl":
        return line, email, reason, rest[0] if rest else ""
    return line, email, reason, rest


def _why(exc: BaseException) -> str:
    if isinstance(exc, Stopped):
        return exc.message
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return printable(str(exc) or type(exc).__name__)
