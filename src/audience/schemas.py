"""API shapes that every feature shares, and the string rules the document states for them.

The patterns below only document what the server enforces (they validate nothing): each
admits a subset of what the server accepts, so that a request built to the document is
never refused for its shape. They are ECMA-262 regular expressions, as JSON Schema wants,
written so that Python's `re` reads them the same way.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import BaseModel, ConfigDict, Field

from audience.db.models import EMAIL_MAX_LENGTH

#: An RFC 3339 UTC timestamp, as kit/clock.isoformat_utc writes it.
Timestamp = Annotated[
    str, Field(json_schema_extra={"format": "date-time"}, examples=["2024-05-01T09:00:00Z"])
]

#: Text without NUL: the server refuses NUL in the query string and in the strings it reads.
NO_NUL = r"^[^\u0000]*$"

#: Text with something besides white space (which the server trims), and no NUL.
NOT_BLANK = r"^[^\u0000]*[^\s\u0085\u0000][^\u0000]*$"
#: A body read whole (web/bodies.JsonBody) refuses NUL in any top-level string, even in a
#: property it then ignores: what its model's schema says of the properties it does not list.
NUL_FREE_EXTRAS: dict[str, Any] = {
    "additionalProperties": {"not": {"type": "string", "pattern": "\\u0000"}}
}

#: A list id, as lists.create requires it; no list has any other id.
LIST_ID_PATTERN = r"^[A-Za-z0-9_]{1,32}$"
LIST_ID_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 32,
    "pattern": LIST_ID_PATTERN,
}


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in word)


def _email_pattern() -> str:
    """Dot-atom addresses at a domain email-validator accepts: labels of 1-63 letters,
    digits and single inner hyphens, a top-level domain of letters that is not a special-use
    one (`.test`, `.local`, ...) in any case. (The server takes local parts longer than
    RFC 5321's 64 characters: only the whole address is bounded, by maxLength.)"""
    atext = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
    label = r"(?=[A-Za-z0-9-]{1,63}\.)[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*"
    special = "|".join(_any_case(name) for name in sorted(SPECIAL_USE_DOMAIN_NAMES))
    return (
        rf"^{atext}+(?:\.{atext}+)*"
        rf"@(?:{label}\.)+(?!(?:{special})$)[A-Za-z]{{2,24}}$"
    )


#: What the document says of an email address the server reads (docs/import.md, rule 5).
EMAIL_SCHEMA: dict[str, Any] = {
    "type": "string",
    "format": "email",
    "minLength": 1,
    "maxLength": EMAIL_MAX_LENGTH,
    "pattern": _email_pattern(),
    "description": (
        "An email address, trimmed and lower-cased by the server. The pattern is the common"
        " form, which the server always accepts; it may accept other addresses that"
        " email-validator deems valid (internationalised ones, for instance)."
    ),
}


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


class HealthResponse(Answer):
    """The answer of /healthz while the database answers."""

    status: Literal["ok"] = "ok"
