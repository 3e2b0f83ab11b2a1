"""Lists: the stored record, and the request and answer shapes of the lists API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from audience.kit.clock import isoformat_utc
from audience.schemas import (
    LIST_ID_PATTERN,
    LIST_ID_SCHEMA,
    NO_NUL,
    NOT_BLANK,
    NUL_FREE_EXTRAS,
    Answer,
    Timestamp,
)


class ListRecord(msgspec.Struct, frozen=True):
    """A list as stored."""

    id: str
    name: str
    is_double_optin: bool
    is_public: bool
    description: str | None
    created_at: datetime
    updated_at: datetime


# --- requests -------------------------------------------------------------------------------

NAME_MAX_LENGTH = 255
DESCRIPTION_MAX_LENGTH = 10_000

ListId = Annotated[str, StringConstraints(pattern=LIST_ID_PATTERN)]
#: Trimmed, then 1-255 characters; documented as not blank (and, as every string, no NUL).
ListName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": NAME_MAX_LENGTH, "pattern": NOT_BLANK}
    ),
]
Description = Annotated[
    str,
    StringConstraints(max_length=DESCRIPTION_MAX_LENGTH),
    WithJsonSchema({"type": "string", "maxLength": DESCRIPTION_MAX_LENGTH, "pattern": NO_NUL}),
]
#: Documented as non-empty; an empty one is refused by the rules (e.g. `list not found: `).
Identifier = Annotated[str, Field(json_schema_extra={"minLength": 1})]
#: The id of an existing list: documented by the pattern of lists.create, as no list has
#: another id (any other is answered 404).
ExistingListId = Annotated[str, WithJsonSchema(LIST_ID_SCHEMA)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, json_schema_extra=NUL_FREE_EXTRAS)

    workspace_id: Identifier


class CreateListRequest(_Body):
    id: Annotated[ListId, WithJsonSchema(LIST_ID_SCHEMA)] = Field(
        description="1-32 letters, digits or underscores"
    )
    name: ListName
    is_double_optin: bool = False
    is_public: bool = False
    description: Description | None = None


class UpdateListRequest(_Body):
    """Fields left out keep their value; `description: null` clears it, and the other fields
    are documented as never null, because null is refused for them."""

    id: ExistingListId
    name: Annotated[
        ListName | None,
        WithJsonSchema(
            {"type": "string", "minLength": 1, "maxLength": NAME_MAX_LENGTH, "pattern": NOT_BLANK}
        ),
    ] = None
    is_double_optin: Annotated[bool | None, WithJsonSchema({"type": "boolean"})] = None
    is_public: Annotated[bool | None, WithJsonSchema({"type": "boolean"})] = None
    description: Description | None = None


class DeleteListRequest(_Body):
    id: ExistingListId


# --- answers --------------------------------------------------------------------------------


class ListOut(Answer):
    id: str
    name: str
    is_double_optin: bool
    is_public: bool
    description: str | None
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, record: ListRecord) -> ListOut:
        return cls(
            id=record.id,
            name=record.name,
            is_double_optin=record.is_double_optin,
            is_public=record.is_public,
            description=record.description,
            created_at=isoformat_utc(record.created_at),
            updated_at=isoformat_utc(record.updated_at),
        )


class ListResponse(Answer):
    list: ListOut


class ListsResponse(Answer):
    lists: list[ListOut]


class ListCounts(msgspec.Struct, frozen=True):
    """A list and how many of its memberships are in each status (every status present,
    zero included), by status value."""

    list: ListRecord
    counts: dict[str, int]
