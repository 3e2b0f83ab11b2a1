"""Contacts: decoding structs for the import hot path, the stored records, and the API shapes.

The pydantic models document the contacts API in /openapi.json; the import's are named and
shaped field for field as in the contract (docs/spec/contacts-import.openapi.md):
BatchImportContactsRequest, ContactInput, UpsertContactOperation, ...
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from audience.db.models import (
    DATETIME_FIELDS,
    FIELDS,
    JSON_FIELDS,
    NUMBER_FIELDS,
    TEXT_FIELDS,
    MembershipStatus,
)
from audience.kit.clock import isoformat_utc
from audience.schemas import Answer, Timestamp

# --- decoding (hot path) ------------------------------------------------------------------------

NULL = msgspec.Raw(b"null")


class ImportEnvelope(msgspec.Struct):
    """The import body's top level; each part is decoded on its own so errors keep their order."""

    workspace_id: msgspec.Raw = NULL
    contacts: msgspec.Raw = NULL
    subscribe_to_lists: msgspec.Raw = NULL


class UpsertEnvelope(msgspec.Struct):
    """The contacts.upsert body's top level, decoded like the import's."""

    workspace_id: msgspec.Raw = NULL
    contact: msgspec.Raw = NULL


class ImportRequest(msgspec.Struct):
    """An import body once parsed: its workspace is the caller's, `contacts` a non-empty
    array of undecoded contacts, `subscribe_to_lists` distinct list ids in request order."""

    workspace_id: str
    contacts: list[msgspec.Raw]
    subscribe_to_lists: list[str]


class ImportLimits(msgspec.Struct, frozen=True):
    """The bounds of one import request (Settings: AUDIENCE_MAX_*)."""

    max_contacts: int = 10_000
    max_lists: int = 100
    max_memberships: int = 200_000


AwareDateTime = Annotated[datetime, msgspec.Meta(tz=True)]


def _contact_struct() -> type[msgspec.Struct]:
    fields: list[tuple[str, Any, Any]] = [("email", Any, UNSET)]
    fields += [(name, str | None | UnsetType, UNSET) for name in TEXT_FIELDS]
    fields += [(name, float | None | UnsetType, UNSET) for name in NUMBER_FIELDS]
    fields += [(name, AwareDateTime | None | UnsetType, UNSET) for name in DATETIME_FIELDS]
    # JSON values stay undecoded (Raw, null included): validation checks their bytes.
    fields += [(name, msgspec.Raw, UNSET) for name in JSON_FIELDS]
    # gc=False: decoded JSON holds no reference cycles, and 10,000 tracked structs per
    # request would only feed the cycle collector.
    return msgspec.defstruct("ContactStruct", fields, gc=False)


#: One decoded contact: every field UNSET (absent), None (null) or a typed value; custom_json
#: fields UNSET or their raw JSON (`null` included).
ContactStruct = _contact_struct()


# --- stored records -----------------------------------------------------------------------------


class Membership(msgspec.Struct, frozen=True):
    """A contact's membership of a list."""

    list_id: str
    status: MembershipStatus
    created_at: datetime
    updated_at: datetime


class Contact(msgspec.Struct, frozen=True):
    """A stored contact: its email, every ContactInput field (FIELDS order), its timestamps."""

    email: str
    values: tuple[Any, ...]
    created_at: datetime
    updated_at: datetime


class Operation(msgspec.Struct, gc=False):
    """One line of an import's answer (UpsertContactOperation, plus its input index)."""

    index: int
    email: str
    action: str
    error: str | None = None


# --- OpenAPI documentation of the import (field for field with the contract) ------------------

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
Email = Annotated[
    str,
    Field(json_schema_extra={"format": "email", "minLength": 1}, examples=["user@example.com"]),
]


class ContactInput(BaseModel):
    """A contact to create or update. Absent fields keep their value; null clears them."""

    model_config = ConfigDict(extra="ignore")

    email: Email
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


#: Documented as non-empty; an empty one is refused by the rules (e.g. `list not found: `).
Identifier = Annotated[str, Field(json_schema_extra={"minLength": 1})]


class BatchImportContactsRequest(BaseModel):
    """Create or update up to MAX_CONTACTS_PER_IMPORT contacts, optionally subscribing them."""

    workspace_id: Annotated[
        str, Field(json_schema_extra={"minLength": 1}, examples=["ws_1234567890"])
    ]
    contacts: Annotated[list[ContactInput], Field(min_length=1)]
    subscribe_to_lists: Annotated[
        list[str] | None, Field(default=None, examples=[["newsletter", "product_updates"]])
    ]


class UpsertContactOperation(Answer):
    """The outcome for contacts[index]."""

    index: int
    email: str
    action: Literal["create", "update", "error"]
    error: str | None


class BatchImportContactsResponse(Answer):
    operations: list[UpsertContactOperation]
    error: str | None = None


# --- the other routes -----------------------------------------------------------------------------


class UpsertContactRequest(BaseModel):
    workspace_id: Identifier
    contact: ContactInput


class UpsertContactResponse(Answer):
    email: str
    action: Literal["create", "update"]


class DeleteContactRequest(BaseModel):
    workspace_id: Identifier
    email: Email


class UpdateStatusRequest(BaseModel):
    workspace_id: Identifier
    email: Email
    list_id: Identifier
    status: MembershipStatus


class ContactListQuery(BaseModel):
    """The query of contacts.list: a page size, a cursor and filters (all optional)."""

    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: str | None = None
    email: str | None = None
    external_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    country: str | None = None
    language: str | None = None
    list_id: str | None = None
    contact_list_status: MembershipStatus | None = None
    with_contact_lists: bool = False

    def contains(self) -> dict[str, str]:
        """The text filters given: each field matched by case-insensitive substring."""
        texts = {
            "email": self.email,
            "external_id": self.external_id,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "phone": self.phone,
            "country": self.country,
            "language": self.language,
        }
        return {name: needle for name, needle in texts.items() if needle}


class ContactListOut(Answer):
    list_id: str
    status: MembershipStatus
    created_at: Timestamp
    updated_at: Timestamp


class ContactOut(Answer):
    """A stored contact: every ContactInput field, its timestamps and, when asked, its
    memberships."""

    email: str
    external_id: str | None
    timezone: str | None
    language: str | None
    first_name: str | None
    last_name: str | None
    full_name: str | None
    phone: str | None
    address_line_1: str | None
    address_line_2: str | None
    country: str | None
    postcode: str | None
    state: str | None
    job_title: str | None
    custom_string_1: str | None
    custom_string_2: str | None
    custom_string_3: str | None
    custom_string_4: str | None
    custom_string_5: str | None
    custom_number_1: float | None
    custom_number_2: float | None
    custom_number_3: float | None
    custom_number_4: float | None
    custom_number_5: float | None
    custom_datetime_1: Timestamp | None
    custom_datetime_2: Timestamp | None
    custom_datetime_3: Timestamp | None
    custom_datetime_4: Timestamp | None
    custom_datetime_5: Timestamp | None
    custom_json_1: JsonField
    custom_json_2: JsonField
    custom_json_3: JsonField
    custom_json_4: JsonField
    custom_json_5: JsonField
    created_at: Timestamp
    updated_at: Timestamp
    contact_lists: list[ContactListOut] | None = None

    @classmethod
    def of(cls, contact: Contact, memberships: Sequence[Membership] | None) -> ContactOut:
        """The answer shape of a stored contact; its memberships when they were asked for."""
        values: dict[str, Any] = dict(zip(FIELDS, contact.values, strict=True))
        for name in DATETIME_FIELDS:
            if values[name] is not None:
                values[name] = isoformat_utc(values[name])
        lists = None
        if memberships is not None:
            lists = [
                ContactListOut(
                    list_id=m.list_id,
                    status=m.status,
                    created_at=isoformat_utc(m.created_at),
                    updated_at=isoformat_utc(m.updated_at),
                )
                for m in memberships
            ]
        return cls(
            email=contact.email,
            **values,
            created_at=isoformat_utc(contact.created_at),
            updated_at=isoformat_utc(contact.updated_at),
            contact_lists=lists,
        )


class ContactResponse(Answer):
    contact: ContactOut


class ContactsPage(Answer):
    contacts: list[ContactOut]
    next_cursor: str | None


class CountResponse(Answer):
    total_contacts: int
