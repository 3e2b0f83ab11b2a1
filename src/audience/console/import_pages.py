"""The imports pages: upload a file, map its columns (a preview of its first rows), start
the job, follow its progress, cancel it, download its failed rows; the workspace's import
history. Each route parses its form, calls the import jobs service (drafts.py for the
mapping step), renders imports.html or import.html."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from audience.console import forms
from audience.console.deps import ContactsRead, ContactsWrite, Form
from audience.console.render import page
from audience.console.routing import ConsoleRoute
from audience.contact_files.mapping import ALL_FIELDS
from audience.contacts.schemas import LIST_STATUSES, MERGE_POLICIES
from audience.db.session import transaction
from audience.errors import BadRequest
from audience.import_jobs import drafts, service
from audience.import_jobs.schemas import FINISHED, Job
from audience.lists import service as lists
from audience.sessions.schemas import ActiveSession
from audience.web.deps import ReadDb, SettingsDep, WriteDb
from audience.web.downloads import csv_attachment
from audience.web.protocol import UPLOAD_PATHS

router = APIRouter(route_class=ConsoleRoute)
IMPORTS = "/console/imports"
UPLOAD_PATH = f"{IMPORTS}/upload"
assert UPLOAD_PATH in UPLOAD_PATHS  # its body has the upload timeout
HISTORY_ROWS = 20
Cursor = Annotated[str | None, Query()]


@router.get("/imports")
def imports_page(
    request: Request, session: ContactsRead, db: ReadDb, cursor: Cursor = None
) -> HTMLResponse:
    """The upload form and the workspace's imports, newest first."""
    return _history(request, session, db, cursor)


@router.post("/imports/upload")
async def upload(request: Request, session: ContactsWrite, form: Form, cfg: SettingsDep) -> Any:
    """Store the file as a draft, then on to its mapping step."""
    engine = request.app.state.engine
    file = form.get("file")
    try:
        if not isinstance(file, UploadFile) or not file.filename:
            raise BadRequest("choose a file to upload")
        job = await run_in_threadpool(
            drafts.upload_draft,
            engine,
            caller=session.caller,
            file_name=file.filename,
            file=file.file,
            max_bytes=cfg.max_upload_bytes,
        )
    except BadRequest as exc:
        return await run_in_threadpool(_refused_upload, request, session, exc.message)
    return RedirectResponse(f"{IMPORTS}/{job.id}", status_code=303)


def _refused_upload(request: Request, session: ActiveSession, message: str) -> HTMLResponse:
    with transaction(request.app.state.engine, write=False) as conn:
        return _history(request, session, conn, error=message, status_code=400)


@router.get("/imports/{job_id}")
def import_page(request: Request, session: ContactsRead, db: ReadDb, job_id: str) -> HTMLResponse:
    """A draft's mapping step, or a job's progress (htmx asks for the progress alone)."""
    job = drafts.get_draft_or_job(db, workspace_id=session.caller.workspace_id, job_id=job_id)
    if drafts.is_draft(job):
        return _mapping(request, session, db, job, drafts.preview(request.app.state.engine, job))
    return page(request, "import.html", session, block="progress", job=job, finished=FINISHED)


@router.post("/imports/{job_id}/start")
def start(
    request: Request, session: ContactsWrite, form: Form, db: ReadDb, cfg: SettingsDep, job_id: str
) -> Any:
    """Start a draft with the mapping and options of the form; its errors are shown on it."""
    engine = request.app.state.engine
    job = drafts.get_draft_or_job(db, workspace_id=session.caller.workspace_id, job_id=job_id)
    if not drafts.is_draft(job):
        return RedirectResponse(f"{IMPORTS}/{job.id}", status_code=303)
    preview = drafts.preview(engine, job)
    chosen = forms.import_choices(form, len(preview.header))
    try:
        drafts.start_draft(
            engine,
            caller=session.caller,
            job_id=job_id,
            header=preview.header,
            options=forms.import_options(chosen, preview.header),
            max_lists=cfg.max_lists_per_import,
        )
    except BadRequest as exc:
        error = exc.message.removeprefix("options: ")
        return _mapping(request, session, db, job, preview, chosen, error)
    return RedirectResponse(f"{IMPORTS}/{job_id}", status_code=303)


@router.post("/imports/{job_id}/cancel")
def cancel(session: ContactsWrite, db: WriteDb, job_id: str) -> RedirectResponse:
    """Stop a job: what it imported stays, the rest is not imported."""
    service.cancel_job(db, workspace_id=session.caller.workspace_id, job_id=job_id)
    return RedirectResponse(f"{IMPORTS}/{job_id}", status_code=303)


@router.post("/imports/{job_id}/discard")
def discard(session: ContactsWrite, db: WriteDb, job_id: str) -> RedirectResponse:
    """Forget an upload that was never started."""
    drafts.discard_draft(db, workspace_id=session.caller.workspace_id, job_id=job_id)
    return RedirectResponse(IMPORTS, status_code=303)


@router.get("/imports/{job_id}/errors")
def errors(
    request: Request, session: ContactsRead, cfg: SettingsDep, job_id: str
) -> StreamingResponse:
    """The job's failed rows as CSV (what imports.errors answers)."""
    lines = service.error_report(
        request.app.state.engine,
        workspace_id=session.caller.workspace_id,
        job_id=job_id,
        kept_days=cfg.import_report_days,
    )
    return csv_attachment(lines, f"{job_id}.errors.csv")


def _history(
    request: Request,
    session: ActiveSession,
    db: Connection,
    cursor: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    jobs, next_cursor = service.list_jobs(
        db, workspace_id=session.caller.workspace_id, limit=HISTORY_ROWS, cursor=cursor
    )
    return page(
        request,
        "imports.html",
        session,
        status_code=status_code,
        jobs=jobs,
        next_cursor=next_cursor,
        error=error,
        finished=FINISHED,
    )


def _mapping(
    request: Request,
    session: ActiveSession,
    db: Connection,
    job: Job,
    preview: drafts.Preview,
    chosen: dict[str, Any] | None = None,
    error: str | None = None,
) -> HTMLResponse:
    if chosen is None:  # the defaults, each column's field as the API's matching suggests
        chosen = forms.import_choices(FormData(), 0) | {"fields": preview.suggested}
    return page(
        request,
        "import_mapping.html",
        session,
        status_code=400 if error else 200,
        job=job,
        preview=preview,
        chosen=chosen,
        error=error,
        fields=ALL_FIELDS,
        lists=lists.list_lists(db, workspace_id=session.caller.workspace_id),
        list_statuses=LIST_STATUSES,
        merge_policies=MERGE_POLICIES,
    )
