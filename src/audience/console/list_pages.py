"""The lists pages: every list with its counts per status, create, edit, delete. Each
route parses its form, calls the lists service, renders lists.html or list_edit.html."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import Connection

from audience.console import forms
from audience.console.deps import Form, ListsRead, ListsWrite, ListsWritePage
from audience.console.render import page
from audience.console.routing import ConsoleRoute
from audience.console.views import STATUSES
from audience.errors import BadRequest
from audience.lists import service
from audience.lists.schemas import ListRecord
from audience.sessions.schemas import ActiveSession
from audience.web.deps import ReadDb, WriteDb

router = APIRouter(route_class=ConsoleRoute)
LISTS = "/console/lists"
EMPTY_FORM = {"id": "", "name": "", "description": "", "is_double_optin": False}


@router.get("/lists")
def lists_page(request: Request, session: ListsRead, db: ReadDb) -> HTMLResponse:
    """Every list with its memberships counted per status."""
    return _lists(request, session, db)


@router.post("/lists")
def create_list(request: Request, session: ListsWrite, form: Form, db: WriteDb) -> Any:
    """Create a list from the form; its errors are shown by their fields."""
    try:
        service.create_list(
            db,
            workspace_id=session.caller.workspace_id,
            data=forms.new_list(form, session.caller.workspace_id),
        )
    except BadRequest as exc:
        return _lists(
            request, session, db, error=forms.field_error(exc), form=_sent(form), status_code=400
        )
    return RedirectResponse(LISTS, status_code=303)


@router.get("/lists/{list_id}")
def edit_page(request: Request, session: ListsWritePage, db: ReadDb, list_id: str) -> HTMLResponse:
    """The edit form of a list."""
    found = service.get_list(db, workspace_id=session.caller.workspace_id, list_id=list_id)
    return _edit(request, session, found, _stored(found))


@router.post("/lists/{list_id}")
def edit_list(request: Request, session: ListsWrite, form: Form, db: WriteDb, list_id: str) -> Any:
    """Save a list's name, description and double opt-in."""
    workspace_id = session.caller.workspace_id
    try:
        service.update_list(
            db, workspace_id=workspace_id, data=forms.list_changes(form, workspace_id, list_id)
        )
    except BadRequest as exc:
        found = service.get_list(db, workspace_id=workspace_id, list_id=list_id)
        return _edit(request, session, found, _sent(form), forms.field_error(exc), 400)
    return RedirectResponse(LISTS, status_code=303)


@router.get("/lists/{list_id}/delete")
def confirm_delete(
    request: Request, session: ListsWritePage, db: ReadDb, list_id: str
) -> HTMLResponse:
    """Ask before deleting a list."""
    found = service.get_list(db, workspace_id=session.caller.workspace_id, list_id=list_id)
    return page(
        request,
        "confirm.html",
        session,
        title=f"Delete the list {found.name}?",
        detail=f"This deletes the list {found.id} and every membership of it. It cannot be undone.",
        action=f"{LISTS}/{found.id}/delete",
        hidden={},
        button="Delete list",
        cancel=LISTS,
    )


@router.post("/lists/{list_id}/delete")
def delete_list(session: ListsWrite, db: WriteDb, list_id: str) -> RedirectResponse:
    """Delete a list and its memberships."""
    service.delete_list(db, workspace_id=session.caller.workspace_id, list_id=list_id)
    return RedirectResponse(LISTS, status_code=303)


def _lists(
    request: Request, session: ActiveSession, db: Connection, status_code: int = 200, **values: Any
) -> HTMLResponse:
    found = service.lists_with_counts(db, workspace_id=session.caller.workspace_id)
    values.setdefault("form", EMPTY_FORM)
    return page(
        request,
        "lists.html",
        session,
        status_code=status_code,
        lists=found,
        statuses=STATUSES,
        **values,
    )


def _edit(
    request: Request,
    session: ActiveSession,
    found: ListRecord,
    form: dict[str, Any],
    error: forms.FieldError | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return page(
        request,
        "list_edit.html",
        session,
        status_code=status_code,
        item=found,
        form=form,
        error=error,
    )


def _stored(found: ListRecord) -> dict[str, Any]:
    return {
        "name": found.name,
        "description": found.description or "",
        "is_double_optin": found.is_double_optin,
    }


def _sent(form: Any) -> dict[str, Any]:
    return {
        "id": forms.text(form, "id"),
        "name": forms.text(form, "name"),
        "description": forms.text(form, "description"),
        "is_double_optin": forms.text(form, "is_double_optin") == "on",
    }
