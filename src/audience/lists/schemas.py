"""Lists: the stored record, and the request and answer shapes of the lists API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from audience.kit.clock import isoformat_utc
from audience.schemas import Answer, Timestamp


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

ListId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,32}$")]
ListName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Description = Annotated[str, StringConstraints(max_length=10_000)]
#: Documented as non-empty; an empty one is refused by the rules (e.g. `list not found: `).
Identifier = Annotated[str, Field(json_schema_extra={"minLength": 1})]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    workspace_id: Identifier


class CreateListRequest(_Body):
    id: ListId = Field(description="1-32 letters, digits or underscores")
    name: ListName
    is_double_optin: bool = False
    is_public: bool = False
    description: Description | None = None


class UpdateListRequest(_Body):
    """Fields left out keep their value; `description: null` clears it, and the other fields
    are documented as never null, because null is refused for them."""

    id: Identifier
    name: Annotated[
        ListName | None, WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 255})
    ] = None
    is_double_optin: Annotated[bool | None, WithJsonSchema({"type": "boolean"})] = None
    is_public: Annotated[bool | None, WithJsonSchema({"type": "boolean"})] = None
    description: Description | None = None


class DeleteListRequest(_Body):
    id: Identifier


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
