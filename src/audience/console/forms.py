"""What the console's forms send, turned into what the services take; and which field an
error belongs to, so that a page can show it beside that field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from audience.contacts.schemas import BULK_ACTIONS, BulkAction, ContactFilter, Selection
from audience.db.models import FIELDS, JSON_FIELDS, NUMBER_FIELDS, MembershipStatus
from audience.errors import BadRequest
from audience.import_jobs import service as import_jobs
from audience.import_jobs.schemas import JobOptions
from audience.lists.schemas import CreateListRequest, UpdateListRequest

M = TypeVar("M", bound=BaseModel)

#: Fields of the contact form, in the order the form shows them.
CONTACT_FIELDS: tuple[str, ...] = FIELDS
LIST_ID_HINT = "1-32 letters, digits or underscores"


class FieldError(BadRequest):
    """A value of a form refused, with the field it belongs to (None: the form as a whole)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field


def field_error(exc: BadRequest) -> FieldError:
    """The field a service's message is about: `<field>: <reason>`, an email message, a
    list id that exists; else the form as a whole."""
    if isinstance(exc, FieldError):
        return exc
    name, sep, _ = exc.message.partition(":")
    if sep and name in FIELDS:
        return FieldError(name, exc.message)
    if "email" in exc.message:
        return FieldError("email", exc.message)
    if exc.message.startswith("list already exists"):
        return FieldError("id", exc.message)
    return FieldError(None, exc.message)


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def contact(form: FormData, email: str) -> msgspec.Raw:
    """The contact of the edit form as contacts.upsert takes it: every field of the form
    given, an emptied one null (cleared); numbers and JSON as typed, so that the rules of
    the upsert judge them."""
    values: dict[str, Any] = {"email": email}
    for name in CONTACT_FIELDS:
        if name in form:
            values[name] = _value(name, text(form, name))
    return msgspec.Raw(msgspec.json.encode(values))


def _value(name: str, value: str) -> Any:
    if not value:
        return None
    if name in NUMBER_FIELDS:
        try:
            return float(value)
        except ValueError:
            return value  # refused by the rules: `<field>: expected a number`
    if name in JSON_FIELDS:
        try:
            msgspec.json.decode(value)
        except msgspec.DecodeError:
            raise FieldError(name, f"{name}: not valid JSON") from None
        return msgspec.Raw(value.encode())
    return value  # text and date-times: as typed


def contact_filter(q: str, list_id: str, status: str) -> ContactFilter:
    """The filter of the contacts page: empty parameters filter nothing."""
    try:
        chosen = MembershipStatus(status) if status else None
    except ValueError:
        raise BadRequest(f"status: must be one of {', '.join(MembershipStatus)}") from None
    return ContactFilter(search=q.strip(), list_id=list_id or None, status=chosen)


def selection(form: FormData) -> Selection:
    """The contacts a bulk form names: the checked emails, or every one that matches the
    page's filter when "all that match" is checked."""
    chosen = contact_filter(text(form, "q"), text(form, "list_id"), text(form, "status"))
    if text(form, "all") == "1":
        return Selection(emails=None, filter=chosen)
    emails = tuple(dict.fromkeys(v for v in form.getlist("email") if isinstance(v, str)))
    if not emails:
        raise FieldError(None, "select at least one contact, or all that match")
    return Selection(emails=emails, filter=chosen)


def new_list(form: FormData, workspace_id: str) -> CreateListRequest:
    """The create form of the lists page, validated as lists.create validates its body."""
    return _validated(
        CreateListRequest,
        workspace_id=workspace_id,
        id=text(form, "id"),
        name=text(form, "name"),
        is_double_optin=text(form, "is_double_optin") == "on",
        description=text(form, "description") or None,
    )


def list_changes(form: FormData, workspace_id: str, list_id: str) -> UpdateListRequest:
    """The edit form of a list, validated as lists.update validates its body."""
    return _validated(
        UpdateListRequest,
        workspace_id=workspace_id,
        id=list_id,
        name=text(form, "name"),
        is_double_optin=text(form, "is_double_optin") == "on",
        description=text(form, "description") or None,
    )


def _validated(model: type[M], **values: Any) -> M:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else None
        message = LIST_ID_HINT if field == "id" else str(first.get("msg", "invalid value"))
        raise FieldError(field, f"{field}: {message}") from None


def bulk_action(form: FormData) -> BulkAction:
    action = text(form, "action")
    if action not in BULK_ACTIONS:
        raise FieldError("action", f"action: must be one of {', '.join(BULK_ACTIONS)}")
    return action


def membership_status(form: FormData) -> MembershipStatus:
    try:
        return MembershipStatus(text(form, "status"))
    except ValueError:
        raise FieldError(
            "status", f"status: must be one of {', '.join(MembershipStatus)}"
        ) from None


def import_choices(form: FormData, columns: int) -> dict[str, Any]:
    """What the mapping step of an import chose, as the page shows it (again): each
    column's field (`column-<n>`, None: not imported), the lists checked, the list status,
    the merge policy, empty cells clearing, the dry run. An empty form: the defaults."""
    return {
        "fields": [text(form, f"column-{n}") or None for n in range(columns)],
        "lists": [v for v in form.getlist("lists") if isinstance(v, str) and v],
        "list_status": text(form, "list_status") or "subscribed",
        "merge": text(form, "merge") or "overwrite",
        "dry_run": text(form, "dry_run") == "on",
        "empty_clears": text(form, "empty_clears") == "on",
    }


def import_options(choices: dict[str, Any], header: Sequence[str]) -> JobOptions:
    """The choices of the mapping step as imports.create takes its `options`, checked by
    the same rules."""
    options = {
        "mapping": dict(zip(header, choices["fields"], strict=True)),
        "subscribe_to_lists": choices["lists"],
        "list_status": choices["list_status"],
        "merge": choices["merge"],
        "dry_run": choices["dry_run"],
        "empty_clears": choices["empty_clears"],
    }
    return import_jobs.parse_options(msgspec.json.encode(options).decode())
