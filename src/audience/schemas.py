"""API shapes that every feature shares."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

#: An RFC 3339 UTC timestamp, as kit/clock.isoformat_utc writes it.
Timestamp = Annotated[
    str, Field(json_schema_extra={"format": "date-time"}, examples=["2024-05-01T09:00:00Z"])
]


class Answer(BaseModel):
    """Base of every answer model: each field it declares is always sent, so the OpenAPI
    document lists them all as required (defaults included)."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class ErrorResponse(Answer):
    """Every error answer of the API."""

    error: str


class SuccessResponse(Answer):
    """The answer of a write that has nothing else to say."""

    success: Literal[True] = True
