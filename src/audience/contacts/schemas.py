"""Contacts: decoding structs for the import hot path, the stored records, and the API shapes.

The pydantic models document the contacts API in /openapi.json; the import's are named and
shaped field for field as in the contract (docs/spec/contacts-import.openapi.md):
BatchImportContactsRequest, ContactInput, UpsertContactOperation, ...
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, Union

import msgspec
from msgspec import UNSET, UnsetType
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from typing_extensions import TypeAliasType

from audience.db.models import (
    DATETIME_FIELDS,
    FIELDS,
    JSON_FIELDS,
    NUMBER_FIELDS,
    TEXT_FIELDS,
    TEXT_MAX_LENGTH,
    MembershipStatus,
)
from audience.kit.clock import isoformat_utc
from audience.schemas import (
    EMAIL_SCHEMA,
    LIST_ID_SCHEMA,
    NO_NUL,
    NUL_FREE_EXTRAS,
    Answer,
    Timestamp,
)

# --- decoding (hot path) ------------------------------------------------------------------------

NULL = msgspec.Raw(b"null")


#: What subscribe_to_lists does to each listed membership (docs/import.md, "Lists").
LIST_STATUSES = ("subscribed", "active", "unsubscribed")
#: How an import treats the fields of a contact that exists (docs/import.md, "Merge").
MERGE_POLICIES = ("overwrite", "fill_blanks")
ListStatus = Literal["subscribed", "active", "unsubscribed"]
Merge = Literal["overwrite", "fill_blanks"]


class ImportEnvelope(msgspec.Struct):
    """The import body's top level; each part is decoded on its own so errors keep their order."""

    workspace_id: msgspec.Raw = NULL
    contacts: msgspec.Raw = NULL
    subscribe_to_lists: msgspec.Raw = NULL
    dry_run: msgspec.Raw = NULL
    merge: msgspec.Raw = NULL
    list_status: msgspec.Raw = NULL


class UpsertEnvelope(msgspec.Struct):
    """The contacts.upsert body's top level, decoded like the import's."""

    workspace_id: msgspec.Raw = NULL
    contact: msgspec.Raw = NULL
    merge: msgspec.Raw = NULL


class ImportRequest(msgspec.Struct):
    """An import body once parsed: its workspace is the caller's, `contacts` a non-empty
    array of undecoded contacts, `subscribe_to_lists` distinct list ids in request order."""

    workspace_id: str
    contacts: list[msgspec.Raw]
    subscribe_to_lists: list[str]
    dry_run: bool = False
    merge: Merge = "overwrite"
    list_status: ListStatus = "subscribed"


class UpsertRequest(msgspec.Struct):
    """A contacts.upsert body once parsed: the contact undecoded, the merge policy."""

    contact: msgspec.Raw
    merge: Merge = "overwrite"


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
    # A contact's own list_status overrides the request's (null: the request's).
    fields.append(("list_status", ListStatus | None | UnsetType, UNSET))
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


class ListOutcome(msgspec.Struct, gc=False):
    """What an import did to one requested list of a contact."""

    list_id: str
    status: str
    previous_status: str | None


class Operation(msgspec.Struct, gc=False, omit_defaults=True):
    """One line of an import's answer (UpsertContactOperation, plus its input index, and
    for a contact written: the fields it changed and, with subscribe_to_lists, its lists)."""

    index: int
    email: str
    action: str
    error: str | None
    changed_fields: tuple[str, ...] | UnsetType = UNSET
    lists: list[ListOutcome] | UnsetType = UNSET


class Summary(msgspec.Struct, gc=False):
    """How many input contacts were created, updated (a field or a membership changed),
    left unchanged, and refused."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: int = 0


class ImportAnswer(msgspec.Struct, gc=False, omit_defaults=True):
    """The answer of contacts.import (BatchImportContactsResponse, with our additions)."""

    operations: list[Operation]
    error: None
    summary: Summary
    dry_run: bool = False


# --- OpenAPI documentation of the import (field for field with the contract) ------------------
#
# These models document the import and upsert bodies only (msgspec and contacts/validation
# decide): their constraints state the rules of docs/import.md that JSON Schema can express.

#: The largest finite double: a JSON number beyond it is refused, in any field.
FLOAT_MAX = 1.7976931348623157e308
#: RFC 3339 with an offset (`format: date-time`), within what the server takes: seconds
#: 00-59 (no leap second) and an instant within years 1-9999 in UTC, which every date but
#: the first and the last of that range guarantees.
DATETIME_PATTERN = (
    r"^(?!0000-|0001-01-01|9999-12-31)[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-5][0-9]"
)

#: Text as the server stores it: no NUL character.
NulFreeText = Annotated[str, WithJsonSchema({"type": "string", "pattern": NO_NUL})]
#: A number a double holds (a JSON number beyond one is refused, even inside custom_json).
FiniteNumber = Annotated[
    float, WithJsonSchema({"type": "number", "minimum": -FLOAT_MAX, "maximum": FLOAT_MAX})
]

Text = Annotated[
    Annotated[
        str, WithJsonSchema({"type": "string", "maxLength": TEXT_MAX_LENGTH, "pattern": NO_NUL})
    ]
    | None,
    Field(default=None),
]
Number = Annotated[FiniteNumber | None, Field(default=None)]
DateTimeField = Annotated[
    Annotated[
        datetime,
        WithJsonSchema({"type": "string", "format": "date-time", "pattern": DATETIME_PATTERN}),
    ]
    | None,
    Field(default=None),
]


class _NulFreeKeys:
    """Documents an object's keys as free of NUL, as its values are."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        return {**handler(core_schema), "propertyNames": {"pattern": NO_NUL}}


if TYPE_CHECKING:  # mypy cannot follow recursive TypeAliasTypes; only their schemas matter
    JsonObject: TypeAlias = dict[str, Any]
    JsonArray: TypeAlias = list[Any]
else:
    # The components JsonObject and JsonArray: what a custom_json_* field may hold, with no
    # NUL in any string or key. (An array right inside an array is left open: recursion
    # through array items is beyond common generators such as openapi-python-client.)
    JsonObject = TypeAliasType(
        "JsonObject",
        Annotated[
            dict[str, Union[bool, FiniteNumber, NulFreeText, "JsonArray", "JsonObject", None]],
            _NulFreeKeys(),
        ],
    )
    JsonArray = TypeAliasType(
        "JsonArray", list[bool | FiniteNumber | NulFreeText | JsonObject | list[Any] | None]
    )

JsonField = Annotated[
    Annotated[
        dict[str, bool | FiniteNumber | NulFreeText | JsonArray | JsonObject | None],
        _NulFreeKeys(),
    ]
    | list[bool | FiniteNumber | NulFreeText | JsonObject | list[Any] | None]
    | None,
    Field(
        default=None,
        description=(
            "Custom JSON field (must be a JSON object or array): at most 32 levels deep"
            " and 65536 bytes as compact JSON, no NUL character in its strings or keys"
        ),
    ),
]
#: A custom_json_* field as answers send it.
JsonOut = Annotated[
    dict[str, Any] | list[Any] | None,
    WithJsonSchema(
        {
            "anyOf": [{"type": "object"}, {"type": "array", "items": {}}, {"type": "null"}],
            "description": "Custom JSON field (a JSON object or array)",
        }
    ),
]
Email = Annotated[str, WithJsonSchema(EMAIL_SCHEMA), Field(examples=["user@example.com"])]


@lru_cache(maxsize=1)
def time_zone_pattern() -> str:
    """The IANA time zone names the server knows, as one anchored alternation."""
    names = sorted(zoneinfo.available_timezones())
    return "^(?:" + "|".join(name.replace("+", r"\+") for name in names) + ")$"


class _TimeZoneSchema:
    """Documents a time zone by the names the server accepts, computed when first needed."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        return {
            "type": "string",
            "pattern": time_zone_pattern(),
            "description": "An IANA time zone name, as the server's tz database knows it",
        }


TimeZone = Annotated[str, _TimeZoneSchema()]


class ContactInput(BaseModel):
    """A contact to create or update. Absent fields keep their value; null clears them."""

    model_config = ConfigDict(extra="ignore")

    email: Email
    external_id: Text
    timezone: Annotated[TimeZone | None, Field(default=None, examples=["America/New_York"])]
    language: Text
    first_name: Annotated[Text, Field(examples=["John"])]
    last_name: Annotated[Text, Field(examples=["Doe"])]
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
    list_status: Annotated[
        ListStatus | None,
        Field(
            default=None,
            description=(
                "This contact's own list_status, overriding the request's (an Audience "
                "addition; not stored)"
            ),
        ),
    ]


#: Documented as non-empty; an empty one is refused by the rules (e.g. `list not found: `).
Identifier = Annotated[str, Field(json_schema_extra={"minLength": 1})]
#: A list id: no list has another (an unknown one is refused, 400 on import, 404 elsewhere).
ListId = Annotated[str, WithJsonSchema(LIST_ID_SCHEMA)]


class BatchImportContactsRequest(BaseModel):
    """Create or update up to AUDIENCE_MAX_CONTACTS_PER_IMPORT contacts (10,000 by default),
    optionally subscribing them to lists."""

    workspace_id: Annotated[
        str, Field(json_schema_extra={"minLength": 1}, examples=["ws_1234567890"])
    ]
    contacts: Annotated[list[ContactInput], Field(min_length=1)]
    subscribe_to_lists: Annotated[
        list[str] | None,
        Field(
            default=None,
            examples=[["newsletter", "product_updates"]],
            description=(
                "Ids of existing lists of the workspace (400 `list not found: <id>` otherwise);"
                " needs lists:write; at most AUDIENCE_MAX_LISTS_PER_IMPORT ids (100 by default)"
                " and AUDIENCE_MAX_MEMBERSHIPS_PER_IMPORT contacts times lists (200,000)"
            ),
        ),
    ]
    dry_run: Annotated[
        bool,
        Field(
            description=(
                "Validate and plan the whole request against the data as it is, answer what "
                "the same request would answer now, and write nothing"
            )
        ),
    ] = False
    merge: Annotated[
        Merge,
        Field(
            description=(
                "overwrite: absent keeps, null clears, a value replaces; fill_blanks: a value "
                "is written only where the stored value is null or empty, null changes nothing"
            )
        ),
    ] = "overwrite"
    list_status: Annotated[
        ListStatus,
        Field(
            description=(
                "What subscribe_to_lists does: subscribed (new memberships active, or pending "
                "on a double opt-in list), active (new or pending become active), unsubscribed "
                "(new, active or pending become unsubscribed); unsubscribed, bounced and "
                "complained are never revived"
            )
        ),
    ] = "subscribed"


class ListOutcomeOut(Answer):
    """What the import did to one requested list of a contact."""

    list_id: str
    status: MembershipStatus
    previous_status: MembershipStatus | None = Field(
        description="The status before the import; null for a new membership"
    )


class SummaryOut(Answer):
    """Input contacts by outcome; the four add up to the number of contacts sent."""

    created: int
    updated: int = Field(description="Updates that changed a field or a membership")
    unchanged: int = Field(description="Updates that changed nothing (and wrote nothing)")
    errors: int


# Not Answer models: their optional fields are left out of some answers (not required).
class UpsertContactOperation(BaseModel):
    """The outcome for contacts[index]. A contact written also carries the fields it changed
    and, with subscribe_to_lists, one entry per requested list; an error carries neither."""

    index: int
    email: str
    action: Literal["create", "update", "error"]
    error: str | None
    changed_fields: list[str] = Field(
        default_factory=list,
        description=(
            "Sorted names of the fields stored non-null (create) or whose value changed (update)"
        ),
    )
    lists: list[ListOutcomeOut] = Field(
        default_factory=list, description="One entry per list of subscribe_to_lists, in its order"
    )


class BatchImportContactsResponse(BaseModel):
    operations: list[UpsertContactOperation]
    error: str | None
    summary: SummaryOut
    dry_run: bool = Field(default=False, description="true on a dry run (else left out)")


# --- the other routes -----------------------------------------------------------------------------


class UpsertContactRequest(BaseModel):
    workspace_id: Identifier
    contact: ContactInput
    merge: Annotated[Merge, Field(description="As in contacts.import")] = "overwrite"


class UpsertContactResponse(Answer):
    email: str
    action: Literal["create", "update"]
    #: For a create, the fields stored non-null; for an update, the fields it changed.
    changed_fields: list[str]

    @classmethod
    def of(cls, operation: Operation) -> UpsertContactResponse:
        changed = operation.changed_fields
        return cls(
            email=operation.email,
            action="create" if operation.action == "create" else "update",
            changed_fields=[] if isinstance(changed, UnsetType) else list(changed),
        )


class DeleteContactRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra=NUL_FREE_EXTRAS)

    workspace_id: Identifier
    email: Email


class UpdateStatusRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra=NUL_FREE_EXTRAS)

    workspace_id: Identifier
    email: Email
    list_id: ListId
    status: MembershipStatus


#: A cursor is URL-safe base64 without padding (kit/pagination).
CURSOR_PATTERN = r"^[A-Za-z0-9_-]*$"
Cursor = Annotated[
    Annotated[str, WithJsonSchema({"type": "string", "pattern": CURSOR_PATTERN})] | None,
    Field(description="The next_cursor of the previous page; any other value is refused (400)"),
]
#: A filter: contacts whose field contains it, ignoring case.
Contains = Annotated[str | None, Field(description="Case-insensitive substring of the field")]


class ContactListQuery(BaseModel):
    """The query of contacts.list: a page size, a cursor and filters (all optional)."""

    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Cursor = None
    email: Contains = None
    external_id: Contains = None
    first_name: Contains = None
    last_name: Contains = None
    phone: Contains = None
    country: Contains = None
    language: Contains = None
    list_id: Annotated[str | None, Field(description="Only the members of this list")] = None
    contact_list_status: Annotated[
        MembershipStatus | None,
        Field(description="Only contacts with a membership in this status (of list_id if given)"),
    ] = None
    with_contact_lists: Annotated[
        bool, Field(description="Send each contact's memberships (contact_lists; null otherwise)")
    ] = False

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
    custom_json_1: JsonOut
    custom_json_2: JsonOut
    custom_json_3: JsonOut
    custom_json_4: JsonOut
    custom_json_5: JsonOut
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


# --- the console: search, selections and bulk changes ---------------------------------------------


class ContactFilter(msgspec.Struct, frozen=True):
    """Contacts whose email, first name or last name contains `search` (ignoring case), and
    that have a membership of `list_id` and/or in `status` when given."""

    search: str = ""
    list_id: str | None = None
    status: MembershipStatus | None = None


class ContactSearch(msgspec.Struct, frozen=True):
    """A page of a filter's contacts by email: after one cursor, or before another."""

    filter: ContactFilter = ContactFilter()
    after: str | None = None
    before: str | None = None
    limit: int = 25


class SearchPage(msgspec.Struct, frozen=True):
    """A page of contacts with their memberships, how many match in all, and the cursors of
    the pages around it (None where there is none)."""

    items: list[tuple[Contact, list[Membership]]]
    total: int
    next_cursor: str | None
    previous_cursor: str | None


class Selection(msgspec.Struct, frozen=True):
    """The contacts a bulk change applies to: these emails, or (emails None) every contact
    that matches the filter."""

    emails: tuple[str, ...] | None
    filter: ContactFilter = ContactFilter()


#: What a bulk change does to the selected contacts: membership changes of one list, or delete.
BulkAction = Literal["add_to_list", "remove_from_list", "unsubscribe", "delete"]
BULK_ACTIONS: tuple[BulkAction, ...] = ("add_to_list", "remove_from_list", "unsubscribe", "delete")


class BulkOutcome(msgspec.Struct, frozen=True):
    """What a bulk change did: the contacts selected, and the rows it changed (memberships
    added, removed or unsubscribed; contacts deleted)."""

    action: BulkAction
    selected: int
    changed: int
    list_id: str | None = None
