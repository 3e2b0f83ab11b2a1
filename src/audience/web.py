"""The HTTP edge shared by every router: transactions, bodies, scoping and the error envelope."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, TypeVar

import msgspec
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audience.api_keys import service as api_keys
from audience.api_keys.schemas import Caller
from audience.db.session import transaction
from audience.errors import AppError, BadRequest, PayloadTooLarge, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)


# --- transactions: one per request, committed here at the edge -------------------------------


def _read_db(request: Request) -> Iterator[Connection]:
    with transaction(request.app.state.engine, write=False) as conn:
        yield conn


def _write_db(request: Request) -> Iterator[Connection]:
    with transaction(request.app.state.engine, write=True) as conn:
        yield conn


# scope="function": the transaction ends (commits) before the response is sent, so a failed
# commit is a 500, never a 200 for work that was not saved.
ReadDb = Annotated[Connection, Depends(_read_db, scope="function")]
WriteDb = Annotated[Connection, Depends(_write_db, scope="function")]


# --- bodies -----------------------------------------------------------------------------------


async def _raw_body(request: Request) -> bytes:
    content_type = request.headers.get("content-type", "application/json")
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"unsupported Content-Type {media_type!r}: send application/json"
        )
    body = await request.body()
    try:
        # msgspec leaves strings it skips (and Raw parts) unchecked; ASCII needs no decoding.
        body.isascii() or body.decode()
    except UnicodeDecodeError as exc:
        raise BadRequest(f"invalid JSON body: invalid UTF-8 at byte {exc.start}") from None
    return body


#: The request body as bytes: read only after authentication (DESIGN §1 rule 1), JSON by
#: Content-Type (or none given), valid UTF-8.
RawBody = Annotated[bytes, Depends(_raw_body)]


def decode_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or `invalid JSON body: <reason>`."""
    try:
        data = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise BadRequest(f"invalid JSON body: {json_error_reason(exc)}") from None
    if not isinstance(data, dict):
        raise BadRequest("invalid JSON body: expected a JSON object")
    return data


def json_error_reason(exc: Exception) -> str:
    """Why a body is not JSON, in words a client can act on."""
    if isinstance(exc, RecursionError):
        return "nesting too deep"
    text = str(exc)
    if text == "Input data was truncated":
        return "unexpected end of input or invalid string escape"
    return text.removeprefix("JSON is malformed: ")


def scope_to_workspace(caller: Caller, workspace_id: Any) -> str:
    """The request's workspace_id, present and the caller's own (400, then 401)."""
    if workspace_id is None or workspace_id == "":
        raise BadRequest("workspace_id is required")
    if not isinstance(workspace_id, str):
        raise BadRequest("workspace_id must be a string")
    api_keys.check_workspace(caller, workspace_id)
    return workspace_id


def parse_body(body: bytes, model: type[M], caller: Caller) -> M:
    """Decode, scope and validate a JSON body into `model`."""
    data = decode_json_object(body)
    scope_to_workspace(caller, data.get("workspace_id"))
    for key, value in data.items():
        if isinstance(value, str) and "\x00" in value:
            raise BadRequest(f"{key}: must not contain NUL characters")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(describe_validation_error(exc.errors())) from None


def describe_validation_error(errors: Any) -> str:
    """`field: message` for the first error pydantic or FastAPI found."""
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "header")]
    message = str(first.get("msg", "invalid value"))
    return f"{'.'.join(loc)}: {message}" if loc else message


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """openapi_extra documenting a JSON body that the route reads itself."""
    DOCUMENTED_BODIES[model.__name__] = model
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


#: Body models documented by body_schema, added to the OpenAPI components by the app.
DOCUMENTED_BODIES: dict[str, type[BaseModel]] = {}


# --- limits -----------------------------------------------------------------------------------


class RequestGuardMiddleware:
    """Refuses what no route can use: NUL in the query string (400), a body over the limit
    (413, decided from Content-Length or while the body streams in)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rejection = self._reject(scope)
        if rejection is not None:
            await error_response(rejection)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge("request body too large")
            return message

        await self.app(scope, limited_receive, send)

    def _reject(self, scope: Scope) -> AppError | None:
        query = scope.get("query_string", b"").lower()
        if b"%00" in query or b"\x00" in query:
            return BadRequest("query parameters must not contain NUL characters")
        for name, value in scope["headers"]:
            if name != b"content-length":
                continue
            if not value.isdigit():
                return BadRequest("invalid Content-Length header")
            if int(value) > self.max_bytes:
                return PayloadTooLarge("request body too large")
        return None


# --- the error envelope -------------------------------------------------------------------------


class ErrorResponse(BaseModel):
    """Every error answer of the API."""

    error: str


def error_response(exc: AppError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.status_code)


def install_error_handlers(app: FastAPI) -> None:
    """Every failure, expected or not, answers {"error": "..."}; never a traceback."""

    async def on_app_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return error_response(exc)

    async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"error": describe_validation_error(exc.errors())}, status_code=400)

    async def on_http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, exc.detail)
        return JSONResponse(
            {"error": str(message)}, status_code=exc.status_code, headers=exc.headers
        )

    async def on_unexpected(_request: Request, _exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "internal server error"}, status_code=500)

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


def required(value: str | None, name: str) -> str:
    """A query parameter that must be present and non-empty."""
    if not value:
        raise BadRequest(f"{name} is required")
    return value
