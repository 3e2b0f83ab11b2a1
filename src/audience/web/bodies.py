"""Request bodies: read after authentication, JSON by Content-Type, decoded by our rules.

A route declares its body by taking a `JsonBody(Model)` dependency (or another
`DocumentedBody`): the same object parses the body and, through `ApiRoute` (routing.py),
documents it as the route's request body in /openapi.json.
"""

from __future__ import annotations

import codecs
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from audience.api_keys import service as api_keys
from audience.api_keys.auth import CurrentCaller
from audience.api_keys.schemas import Caller
from audience.errors import BadRequest, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)


async def _raw_body(request: Request) -> bytes:
    content_type = request.headers.get("content-type", "application/json")
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"unsupported Content-Type {media_type!r}: send application/json"
        )
    body = await request.body()
    # msgspec leaves strings it skips (and Raw parts) unchecked; ASCII needs no decoding.
    if not body.isascii():
        position = invalid_utf8_at(body)
        if position is not None:
            raise BadRequest(f"invalid JSON body: invalid UTF-8 at byte {position}")
    return body


#: Bytes decoded at a time to check a body's UTF-8: decoding a 10 MB body at once would
#: build a string of up to 40 MB only to throw it away (a worker's peak memory). 256 KiB:
#: each string made stays in the processor's cache (a 10.5 MB json-heavy body: 8.2 ms,
#: against 19.6 a MiB at a time and 11.2 at 4 KiB; bench/README.md).
UTF8_CHUNK = 1 << 18


def invalid_utf8_at(data: bytes) -> int | None:
    """The offset of the first byte that is not valid UTF-8 (None: valid), checked a chunk
    at a time."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for offset in range(0, len(data), UTF8_CHUNK):
        pending = len(decoder.getstate()[0])  # a character begun in the last chunk
        try:
            decoder.decode(view[offset : offset + UTF8_CHUNK], final=False)
        except UnicodeDecodeError as exc:
            return offset - pending + exc.start
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        return len(data) - len(exc.object) + exc.start
    return None


#: The request body as bytes: valid UTF-8, sent as JSON (or with no Content-Type).
RawBody = Annotated[bytes, Depends(_raw_body)]


def json_error_reason(exc: Exception) -> str:
    """Why a body is not JSON, in words a client can act on."""
    if isinstance(exc, RecursionError):
        return "nesting too deep"
    text = str(exc)
    if text == "Input data was truncated":
        return "unexpected end of input or invalid string escape"
    return text.removeprefix("JSON is malformed: ")


def decode_json(body: bytes | msgspec.Raw, type: Any = Any) -> Any:
    """Decode JSON into `type`; `invalid JSON body: <reason>` when it is not JSON at all."""
    try:
        return msgspec.json.decode(body, type=type)
    except msgspec.ValidationError:
        raise BadRequest("invalid JSON body: expected a JSON object") from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise BadRequest(f"invalid JSON body: {json_error_reason(exc)}") from None


def scope_to_workspace(caller: Caller, workspace_id: Any) -> str:
    """The body's workspace_id, present and the caller's own (400, then 401)."""
    if workspace_id is None or workspace_id == "":
        raise BadRequest("workspace_id is required")
    if not isinstance(workspace_id, str):
        raise BadRequest("workspace_id must be a string")
    api_keys.check_workspace(caller, workspace_id)
    return workspace_id


def describe_validation_error(errors: Any) -> str:
    """One message for the first error pydantic or FastAPI found: `<name> is required` for a
    query parameter missing or empty, else `<field>: <reason>`."""
    first = errors[0]
    where = first.get("loc", ("",))[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "header")]
    name = ".".join(loc)
    required = first.get("type") == "missing" or (
        first.get("type") == "string_too_short" and first.get("ctx", {}).get("min_length") == 1
    )
    if where == "query" and required:
        return f"{name} is required"
    message = str(first.get("msg", "invalid value"))
    return f"{name}: {message}" if name else message


class DocumentedBody:
    """A dependency that reads the request body itself; `model` documents it in OpenAPI."""

    model: type[BaseModel]


class JsonBody(DocumentedBody, Generic[M]):
    """The body as `model`: a JSON object, scoped to the caller's workspace, no NUL in the
    strings of its fields, then validated (400 with the first problem)."""

    def __init__(self, model: type[M]) -> None:
        self.model = model

    def __call__(self, caller: CurrentCaller, body: RawBody) -> M:
        data = decode_json(body)
        if not isinstance(data, dict):
            raise BadRequest("invalid JSON body: expected a JSON object")
        scope_to_workspace(caller, data.get("workspace_id"))
        known = self.model.model_fields  # an unknown field is ignored, NUL or not
        for key, value in data.items():
            if isinstance(value, str) and "\x00" in value and key in known:
                raise BadRequest(f"{key}: must not contain NUL characters")
        try:
            return self.model.model_validate(data)  # type: ignore[return-value]
        except ValidationError as exc:
            raise BadRequest(describe_validation_error(exc.errors())) from None
