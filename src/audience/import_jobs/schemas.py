"""Import jobs: the stored job and its options, the rows it could not import, and the API's
request and answer shapes (imports.create, get, list, cancel, errors)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from audience.contacts.schemas import ListStatus, Merge
from audience.kit.clock import isoformat_utc
from audience.schemas import NO_NUL, Answer, Timestamp

#: The statuses a client sees; `uploading` is a job whose file is still being stored.
JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
FINISHED = ("completed", "failed", "cancelled")
Format = Literal["csv", "jsonl"]


class JobOptions(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What to do with the file's rows: the options of contacts.import, plus how columns map
    to fields (`{"Column header": "field"}`; null or "" leaves the column out), whether an
    empty cell clears its field, the file's time zone and its decimal comma."""

    subscribe_to_lists: list[str] = []
    list_status: ListStatus = "subscribed"
    merge: Merge = "overwrite"
    dry_run: bool = False
    mapping: dict[str, str | None] = {}
    empty_clears: bool = False
    timezone: str | None = None
    decimal_comma: bool = False


class Job(msgspec.Struct, kw_only=True):
    """A job as stored."""

    workspace_id: str
    id: str
    status: str
    file_name: str
    format: str
    file_bytes: int
    options: JobOptions
    header: list[str] | None = None
    total_rows: int | None = None
    processed_rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: int = 0
    error: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class RowFailure(msgspec.Struct, frozen=True, gc=False):
    """A row of the file that was not imported: its line, its email, why, and the row as it
    was (CSV: its cells as a JSON array; JSON Lines: the line)."""

    line: int
    email: str
    error: str
    raw: str


class Counts(msgspec.Struct, gc=False):
    """What one batch did: rows read, and contacts by outcome."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: int = 0


# --- answers ---------------------------------------------------------------------------------


class JobOut(Answer):
    """An import job. The counts only grow; created + updated + unchanged + errors =
    processed_rows, and = total_rows once the job has completed."""

    id: str
    workspace_id: str
    status: JobStatus
    file_name: str
    format: Format
    total_rows: int | None = Field(description="Known once the file has been read through")
    processed_rows: int
    created: int
    updated: int
    unchanged: int
    errors: int
    dry_run: bool
    error: str | None = Field(description="Why the whole job failed (status failed)")
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            id=job.id,
            workspace_id=job.workspace_id,
            status="queued" if job.status == "uploading" else job.status,
            file_name=job.file_name,
            format=job.format,
            total_rows=job.total_rows,
            processed_rows=job.processed_rows,
            created=job.created,
            updated=job.updated,
            unchanged=job.unchanged,
            errors=job.errors,
            dry_run=job.options.dry_run,
            error=job.error,
            created_at=isoformat_utc(job.created_at),
            started_at=None if job.started_at is None else isoformat_utc(job.started_at),
            finished_at=None if job.finished_at is None else isoformat_utc(job.finished_at),
        )


class JobResponse(Answer):
    """`{"import": Job}` (`import` is a Python keyword: the field is `import_`)."""

    model_config = ConfigDict(
        json_schema_serialization_defaults_required=True, validate_by_name=True
    )

    import_: Annotated[JobOut, Field(alias="import")]


class JobsPage(Answer):
    imports: list[JobOut]
    next_cursor: str | None


# --- requests ----------------------------------------------------------------------------------


class CancelRequest(BaseModel):
    workspace_id: Annotated[str, Field(json_schema_extra={"minLength": 1})]
    # no NUL: the body's strings are refused with one (web/bodies.py)
    id: Annotated[str, Field(json_schema_extra={"minLength": 1, "pattern": NO_NUL})]


class CreateForm(BaseModel):
    """The multipart form of imports.create (documentation: the route reads it itself)."""

    # The route reads these fields and no other (and refuses a form of more than 10).
    model_config = ConfigDict(extra="forbid")

    workspace_id: Annotated[str, Field(json_schema_extra={"minLength": 1})]
    file: Annotated[
        bytes,
        Field(
            json_schema_extra={"format": "binary"},
            description="CSV (`,` `;` or tab; UTF-8 with or without BOM) or JSON Lines, "
            "gzip-compressed or not",
        ),
    ]
    # A form field is text, never null: left out when there are no options.
    options: str = Field(
        default="",
        description="A JSON object: subscribe_to_lists, list_status, merge, dry_run (as in "
        'contacts.import), mapping ({"Column header": "field"}), empty_clears, timezone '
        "(for date-times without an offset), decimal_comma",
    )
