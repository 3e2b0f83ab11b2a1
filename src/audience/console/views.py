"""What the console's templates show, built from the records the services return: the
contacts page, one contact, and the notices of changes. No rule is decided here."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Connection
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse

from audience.api_keys.schemas import Permission
from audience.console.forms import CONTACT_FIELDS, FieldError, text
from audience.console.render import json_text, number_text, page
from audience.contacts import service as contacts_service
from audience.contacts.schemas import (
    BulkOutcome,
    Contact,
    ContactFilter,
    ContactOut,
    ContactSearch,
    Membership,
    SearchPage,
    Selection,
)
from audience.db.models import DATETIME_FIELDS, JSON_FIELDS, NUMBER_FIELDS, MembershipStatus
from audience.lists import service as lists
from audience.lists.schemas import ListRecord
from audience.sessions.schemas import ActiveSession

STATUSES = tuple(s.value for s in MembershipStatus)
HINTS = {
    "timezone": "An IANA name, e.g. Europe/Paris",
    **{name: "RFC 3339 with an offset, e.g. 2024-05-01T09:00:00Z" for name in DATETIME_FIELDS},
    **{name: "A JSON object or array" for name in JSON_FIELDS},
}
BULK_DONE = {
    "add_to_list": "Added {changed} of {selected} selected contacts to {list_id}.",
    "remove_from_list": "Removed {changed} of {selected} selected contacts from {list_id}.",
    "unsubscribe": "Unsubscribed {changed} of {selected} selected contacts from {list_id}.",
    "delete": "Deleted {changed} contacts.",
}


def _label(name: str) -> str:
    """`External ID`, `Address line 1`, `Custom JSON 1`, `Custom date-time 1`."""
    words = name.replace("datetime", "date-time").split("_")
    label = " ".join({"id": "ID", "json": "JSON"}.get(word, word) for word in words)
    return label[0].upper() + label[1:]


LABELS = {name: _label(name) for name in CONTACT_FIELDS}


def contact_href(email: str) -> str:
    return "/console/contact?" + urlencode({"email": email})


def _visible_lists(db: Connection, session: ActiveSession) -> list[ListRecord]:
    """The lists the filters and the bulk form offer: none for a key without lists:read."""
    if not session.caller.can(Permission.LISTS_READ):
        return []
    return lists.list_lists(db, workspace_id=session.caller.workspace_id)


def contacts(
    request: Request,
    session: ActiveSession,
    db: Connection,
    found: SearchPage | None,
    chosen: ContactFilter,
    **values: Any,
) -> HTMLResponse:
    """The contacts page, or its results for htmx (a search, a page, a bulk change)."""
    rows = [ContactOut.of(c, m) for c, m in found.items] if found else []
    return page(
        request,
        "contacts.html",
        session,
        block="results",
        page=found,
        rows=rows,
        q=chosen.search,
        list_id=chosen.list_id or "",
        status=chosen.status.value if chosen.status else "",
        lists=_visible_lists(db, session),
        statuses=STATUSES,
        **values,
    )


def confirm_bulk_delete(
    request: Request, session: ActiveSession, db: Connection, selection: Selection, count: int
) -> HTMLResponse:
    confirm = {"count": count, "all": selection.emails is None, "emails": selection.emails or ()}
    return contacts(request, session, db, None, selection.filter, confirm=confirm)


def after_bulk(
    request: Request,
    session: ActiveSession,
    db: Connection,
    selection: Selection,
    outcome: BulkOutcome,
) -> HTMLResponse:
    """The first page of the same filter, saying what the change did."""
    found = contacts_search(db, session, selection.filter)
    notice = BULK_DONE[outcome.action].format(
        changed=outcome.changed, selected=outcome.selected, list_id=outcome.list_id
    )
    return contacts(request, session, db, found, selection.filter, notice=notice)


def contacts_search(db: Connection, session: ActiveSession, chosen: ContactFilter) -> SearchPage:
    search = ContactSearch(chosen)
    return contacts_service.search_contacts(
        db, workspace_id=session.caller.workspace_id, search=search
    )


def contact(
    request: Request,
    session: ActiveSession,
    found: tuple[Contact, list[Membership]],
    *,
    block: str | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
    **more: Any,
) -> HTMLResponse:
    """One contact's page, or one of its parts (the edit form, the memberships) for htmx."""
    shown = ContactOut.of(*found)
    return page(
        request,
        "contact.html",
        session,
        block=block,
        status_code=status_code,
        contact=shown,
        values=values if values is not None else display_values(shown),
        fields=CONTACT_FIELDS,
        labels=LABELS,
        hints=HINTS,
        json_fields=JSON_FIELDS,
        statuses=STATUSES,
        **more,
    )


def contact_form_refused(
    request: Request,
    session: ActiveSession,
    db: Connection,
    email: str,
    form: FormData,
    error: FieldError,
) -> HTMLResponse:
    """The edit form again, as it was sent, with the error beside its field (400)."""
    found = contacts_service.get_by_email(db, workspace_id=session.caller.workspace_id, email=email)
    values = {name: text(form, name) for name in CONTACT_FIELDS}
    return contact(
        request, session, found, block="contact_form", values=values, error=error, status_code=400
    )


def display_values(shown: ContactOut) -> dict[str, str]:
    """Each field as the edit form shows it: numbers without a needless `.0`, JSON compact."""
    values: dict[str, str] = {}
    for name in CONTACT_FIELDS:
        value = getattr(shown, name)
        if name in NUMBER_FIELDS:
            values[name] = number_text(value)
        elif name in JSON_FIELDS:
            values[name] = json_text(value)
        else:
            values[name] = "" if value is None else str(value)
    return values
