"""HTTP routes of import jobs (Notifuse-style names): parse, authorise, call one service.

imports.create reads its multipart form itself (the file is spooled to a temporary file by
Starlette as it arrives, then stored in the database by the service), after the key was
checked: no anonymous request gets its upload read.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException

from audience.api_keys.auth import ContactsRead, ContactsWrite, CurrentCaller
from audience.errors import BadRequest, UnsupportedMediaType
from audience.import_jobs import service
from audience.import_jobs.schemas import (
    CancelRequest,
    CreateForm,
    Job,
    JobOut,
    JobResponse,
    JobsPage,
)
from audience.web.bodies import JsonBody, scope_to_workspace
from audience.web.deps import ReadDb, SettingsDep, WriteDb
from audience.web.downloads import csv_attachment
from audience.web.protocol import UPLOAD_PATHS
from audience.web.routing import ApiRoute

router = APIRouter(prefix="/api", tags=["imports"], route_class=ApiRoute)

UPLOAD_PATH = "/api/imports.create"
assert UPLOAD_PATH in UPLOAD_PATHS  # its body has the upload timeout
CancelBody = Annotated[CancelRequest, Depends(JsonBody(CancelRequest))]
RequiredQuery = Annotated[str, Query(min_length=1)]
#: A form without its file (urlencoded) is read too, to say that the file is missing.
_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")

_FORM_SCHEMA = CreateForm.model_json_schema()
_CREATE_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": _FORM_SCHEMA}},
    },
    "responses": {
        "413": {"description": "The file is larger than AUDIENCE_MAX_UPLOAD_BYTES"},
        "415": {"description": "The body is not multipart/form-data"},
    },
}


def _answer(job: Job, status_code: int = 200) -> JSONResponse:
    return JSONResponse(JobResponse(import_=JobOut.of(job)).model_dump(by_alias=True), status_code)


@router.post(
    "/imports.create",
    status_code=202,
    operation_id="createImport",
    response_model=JobResponse,
    openapi_extra=_CREATE_DOC,
)
async def create_import(request: Request, caller: CurrentCaller, cfg: SettingsDep) -> JSONResponse:
    """Upload a CSV or JSON Lines file (gzip or not) to be imported in the background.

    Answers 202 with the queued job; follow it with imports.get, stop it with imports.cancel
    and download its failed rows with imports.errors.
    """
    content_type = request.headers.get("content-type", "").lower()
    if not content_type.startswith(_FORM_TYPES):
        raise UnsupportedMediaType(
            "imports.create takes a multipart/form-data body (workspace_id, file, options)"
        )
    form = await _form(request)
    try:
        workspace_id = scope_to_workspace(caller, form.get("workspace_id"))
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequest("file is required")
        options = form.get("options")
        if options is not None and not isinstance(options, str):
            raise BadRequest("options: must be a JSON object as text, not a file")
        job = await run_in_threadpool(
            service.create_job,
            request.app.state.engine,
            caller=caller,
            file_name=upload.filename or "upload",
            file=upload.file,
            options=service.parse_options(options),
            max_bytes=cfg.max_upload_bytes,
            max_lists=cfg.max_lists_per_import,
        )
        assert job.workspace_id == workspace_id
    finally:
        await form.close()
    return _answer(job, 202)


async def _form(request: Request) -> FormData:
    try:
        return await request.form(max_files=1, max_fields=10, max_part_size=1024 * 1024)
    except MultiPartException as exc:
        raise BadRequest(f"invalid multipart body: {exc.message}") from None


@router.get("/imports.get", operation_id="getImport")
def get_import(caller: ContactsRead, db: ReadDb, id: RequiredQuery) -> JobResponse:
    """One import job: its status and counts."""
    job = service.get_job(db, workspace_id=caller.workspace_id, job_id=id)
    return JobResponse(import_=JobOut.of(job))


@router.get("/imports.list", operation_id="listImports")
def list_imports(
    caller: ContactsRead,
    db: ReadDb,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> JobsPage:
    """The workspace's import jobs, newest first (kept AUDIENCE_IMPORT_JOB_DAYS days)."""
    jobs, next_cursor = service.list_jobs(
        db, workspace_id=caller.workspace_id, limit=limit, cursor=cursor
    )
    return JobsPage(imports=[JobOut.of(job) for job in jobs], next_cursor=next_cursor)


@router.post("/imports.cancel", operation_id="cancelImport")
def cancel_import(data: CancelBody, caller: ContactsWrite, db: WriteDb) -> JobResponse:
    """Stop a job: the rows already imported stay, the rest is not imported."""
    job = service.cancel_job(db, workspace_id=caller.workspace_id, job_id=data.id)
    return JobResponse(import_=JobOut.of(job))


@router.get(
    "/imports.errors",
    operation_id="getImportErrors",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def import_errors(
    caller: ContactsRead, request: Request, cfg: SettingsDep, id: RequiredQuery
) -> StreamingResponse:
    """Every failed row of a job in file order, as CSV: `line`, `email`, `error`, then the
    file's own columns (JSON Lines: `raw`, the line), ready to be fixed and uploaded again."""
    lines = service.error_report(
        request.app.state.engine,
        workspace_id=caller.workspace_id,
        job_id=id,
        kept_days=cfg.import_report_days,
    )
    return csv_attachment(lines, f"{id}.errors.csv")
