"""Request and response shapes of the lists API."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

ListId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,32}$")]
ListName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Description = Annotated[str, StringConstraints(max_length=10_000)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    workspace_id: str


class CreateListRequest(_Body):
    id: ListId = Field(description="1-32 letters, digits or underscores")
    name: ListName
    is_double_optin: bool = False
    is_public: bool = False
    description: Description | None = None


class UpdateListRequest(_Body):
    """Fields left out keep their value."""

    id: str
    name: ListName | None = None
    is_double_optin: bool | None = None
    is_public: bool | None = None
    description: Description | None = None


class DeleteListRequest(_Body):
    id: str


class ListOut(BaseModel):
    id: str
    name: str
    is_double_optin: bool
    is_public: bool
    description: str | None
    created_at: str
    updated_at: str


class ListResponse(BaseModel):
    list: ListOut


class ListsResponse(BaseModel):
    lists: list[ListOut]


class SuccessResponse(BaseModel):
    success: bool
