"""Shapes of the contacts API: msgspec structs for the import hot path, pydantic for the rest.

The pydantic models below also document the import in /openapi.json; their names and fields
are those of the spec (BatchImportContactsRequest, ContactInput, UpsertContactOperation, ...).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from audience.contacts.fields import DATETIME_FIELDS, JSON_FIELDS, NUMBER_FIELDS, TEXT_FIELDS

# --- decoding (hot path) ------------------------------------------------------------------------


class ImportEnvelope(msgspec.Struct):
    """The import body's top level; each part is decoded on its own so errors keep their order."""

    workspace_id: msgspec.Raw = msgspec.Raw(b"null")
    contacts: msgspec.Raw = msgspec.Raw(b"null")
    subscribe_to_lists: msgspec.Raw = msgspec.Raw(b"null")


class UpsertEnvelope(msgspec.Struct):
    """The contacts.upsert body's top level, decoded like the import's."""

    workspace_id: msgspec.Raw = msgspec.Raw(b"null")
    contact: msgspec.Raw = msgspec.Raw(b"null")


AwareDateTime = Annotated[datetime, msgspec.Meta(tz=True)]


def _contact_struct() -> type[msgspec.Struct]:
    fields: list[tuple[str, Any, Any]] = [("email", Any, UNSET)]
    fields += [(name, str | None | UnsetType, UNSET) for name in TEXT_FIELDS]
    fields += [(name, float | None | UnsetType, UNSET) for name in NUMBER_FIELDS]
    fields += [(name, AwareDateTime | None | UnsetType, UNSET) for name in DATETIME_FIELDS]
    fields += [(name, dict[str, Any] | list[Any] | None | UnsetType, UNSET) for name in JSON_FIELDS]
    # gc=False: decoded JSON holds no reference cycles, and 10,000 tracked structs per
    # request would only feed the cycle collector.
    return msgspec.defstruct("ContactStruct", fields, gc=False)


#: One decoded contact: every field UNSET (absent), None (null) or a typed value.
ContactStruct = _contact_struct()


# --- OpenAPI documentation of the import (field for field with the spec) ----------------------

Text = Annotated[str | None, Field(default=None)]
Number = Annotated[float | None, Field(default=None)]
DateTimeField = Annotated[datetime | None, Field(default=None)]
JsonField = Annotated[
    dict[str, Any] | list[Any] | None,
    WithJsonSchema(
        {
            "anyOf": [{"type": "object"}, {"type": "array", "items": {}}, {"type": "null"}],
            "description": "Custom JSON field (must be a JSON object or array)",
        }
    ),
    Field(default=None),
]


class ContactInput(BaseModel):
    """A contact to create or update. Absent fields keep their value; null clears them."""

    model_config = ConfigDict(extra="ignore")

    email: Annotated[
        str, Field(json_schema_extra={"format": "email"}, examples=["user@example.com"])
    ]
    external_id: Text
    timezone: Annotated[str | None, Field(default=None, examples=["America/New_York"])]
    language: Text
    first_name: Annotated[str | None, Field(default=None, examples=["John"])]
    last_name: Annotated[str | None, Field(default=None, examples=["Doe"])]
    full_name: Text
    phone: Text
    address_line_1: Text
    address_line_2: Text
    country: Text
    postcode: Text
    state: Text
    job_title: Text
    custom_string_1: Text
    custom_string_2: Text
    custom_string_3: Text
    custom_string_4: Text
    custom_string_5: Text
    custom_number_1: Number
    custom_number_2: Number
    custom_number_3: Number
    custom_number_4: Number
    custom_number_5: Number
    custom_datetime_1: DateTimeField
    custom_datetime_2: DateTimeField
    custom_datetime_3: DateTimeField
    custom_datetime_4: DateTimeField
    custom_datetime_5: DateTimeField
    custom_json_1: JsonField
    custom_json_2: JsonField
    custom_json_3: JsonField
    custom_json_4: JsonField
    custom_json_5: JsonField


class BatchImportContactsRequest(BaseModel):
    """Create or update up to MAX_CONTACTS_PER_IMPORT contacts, optionally subscribing them."""

    workspace_id: Annotated[str, Field(examples=["ws_1234567890"])]
    contacts: Annotated[list[ContactInput], Field(min_length=1)]
    subscribe_to_lists: Annotated[
        list[str] | None, Field(default=None, examples=[["newsletter", "product_updates"]])
    ]


class UpsertContactOperation(BaseModel):
    """The outcome for contacts[index]."""

    index: int
    email: str
    action: Literal["create", "update", "error"]
    error: str | None


class BatchImportContactsResponse(BaseModel):
    operations: list[UpsertContactOperation]
    error: str | None = None


# --- the other routes -----------------------------------------------------------------------------


class UpsertContactRequest(BaseModel):
    workspace_id: str
    contact: ContactInput


class UpsertContactResponse(BaseModel):
    email: str
    action: Literal["create", "update"]


class DeleteContactRequest(BaseModel):
    workspace_id: str
    email: str


class UpdateStatusRequest(BaseModel):
    workspace_id: str
    email: str
    list_id: str
    status: Literal["active", "pending", "unsubscribed", "bounced", "complained"]


class ContactListOut(BaseModel):
    list_id: str
    status: str
    created_at: str
    updated_at: str


class ContactOut(ContactInput):
    """A stored contact: every ContactInput field, its timestamps and its memberships."""

    created_at: str
    updated_at: str
    contact_lists: list[ContactListOut] | None = None


class ContactResponse(BaseModel):
    contact: ContactOut


class ContactsPage(BaseModel):
    contacts: list[ContactOut]
    next_cursor: str | None


class CountResponse(BaseModel):
    total_contacts: int


class SuccessResponse(BaseModel):
    success: bool
