"""The contacts pages: search with filters and paging, bulk changes, one contact's fields
and memberships. Each route parses, calls the contacts service, renders (contacts.html,
contact.html); views.py builds what the templates show."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from audience.console import forms, views
from audience.console.deps import (
    Change,
    ContactsRead,
    ContactsWrite,
    ContactsWritePage,
    Form,
    ListsWrite,
)
from audience.console.render import page
from audience.console.routing import ConsoleRoute
from audience.contacts import service
from audience.contacts.schemas import ContactSearch
from audience.errors import BadRequest
from audience.web.deps import ReadDb, WriteDb

router = APIRouter(route_class=ConsoleRoute)

Text = Annotated[str, Query()]
Cursor = Annotated[str | None, Query()]
EmailQuery = Annotated[str, Query(min_length=1)]


@router.get("/contacts")
def contacts(
    request: Request,
    session: ContactsRead,
    db: ReadDb,
    q: Text = "",
    list_id: Text = "",
    status: Text = "",
    after: Cursor = None,
    before: Cursor = None,
) -> HTMLResponse:
    """Contacts matching a search and filters, a page at a time, with the total."""
    search = ContactSearch(forms.contact_filter(q, list_id, status), after or None, before or None)
    found = service.search_contacts(db, workspace_id=session.caller.workspace_id, search=search)
    return views.contacts(request, session, db, found, search.filter)


@router.post("/contacts/bulk")
def bulk(request: Request, session: Change, form: Form, db: WriteDb) -> HTMLResponse:
    """A bulk change of the selected contacts; a delete is confirmed first, naming the count."""
    selection, action = forms.selection(form), forms.bulk_action(form)
    if action == "delete" and forms.text(form, "confirmed") != "1":
        count = service.count_selected(
            db, caller=session.caller, selection=selection, action=action
        )
        return views.confirm_bulk_delete(request, session, db, selection, count)
    outcome = service.bulk_change(
        db,
        caller=session.caller,
        selection=selection,
        action=action,
        list_id=forms.text(form, "target_list") or None,
    )
    return views.after_bulk(request, session, db, selection, outcome)


@router.get("/contact")
def contact(request: Request, session: ContactsRead, db: ReadDb, email: EmailQuery) -> HTMLResponse:
    """One contact: every field, its memberships, the edit form."""
    found = service.get_by_email(db, workspace_id=session.caller.workspace_id, email=email)
    return views.contact(request, session, found)


@router.post("/contact")
def edit_contact(request: Request, session: ContactsWrite, form: Form, db: WriteDb) -> HTMLResponse:
    """Save the edit form by the rules of contacts.upsert; an error is shown by its field."""
    email = forms.text(form, "email")
    try:
        found = service.edit_contact(
            db, workspace_id=session.caller.workspace_id, contact=forms.contact(form, email)
        )
    except BadRequest as exc:
        return views.contact_form_refused(request, session, db, email, form, forms.field_error(exc))
    return views.contact(request, session, found, block="contact_form", notice="Saved.")


@router.post("/contact/status")
def change_status(request: Request, session: ListsWrite, form: Form, db: WriteDb) -> HTMLResponse:
    """Set the status of one of the contact's memberships."""
    email, list_id = forms.text(form, "email"), forms.text(form, "list_id")
    service.update_membership_status(
        db,
        workspace_id=session.caller.workspace_id,
        email=email,
        list_id=list_id,
        status=forms.membership_status(form),
    )
    found = service.get_by_email(db, workspace_id=session.caller.workspace_id, email=email)
    notice = f"Status in {list_id} changed."
    return views.contact(request, session, found, block="memberships", membership_notice=notice)


@router.get("/contact/delete")
def confirm_delete(
    request: Request, session: ContactsWritePage, db: ReadDb, email: EmailQuery
) -> HTMLResponse:
    """Ask before deleting a contact."""
    found, _ = service.get_by_email(db, workspace_id=session.caller.workspace_id, email=email)
    return page(
        request,
        "confirm.html",
        session,
        title=f"Delete {found.email}?",
        detail="This deletes the contact and all its list memberships. It cannot be undone.",
        action="/console/contact/delete",
        hidden={"email": found.email},
        button="Delete contact",
        cancel=views.contact_href(found.email),
    )


@router.post("/contact/delete")
def delete_contact(session: ContactsWrite, form: Form, db: WriteDb) -> RedirectResponse:
    """Delete a contact and its memberships."""
    service.delete_contact(
        db, workspace_id=session.caller.workspace_id, email=forms.text(form, "email")
    )
    return RedirectResponse("/console/contacts", status_code=303)
