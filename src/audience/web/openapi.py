"""The OpenAPI document and the interactive docs, served without internet access.

FastAPI documents every route from its signature, and the /api/ routers' route class the
body of a route that reads its own (its `DocumentedBody` dependency, web/bodies.py). The
rules below are applied to the whole document, so that it says what the server does
(tests/web checks it against the server's answers):

- a request body's schema moves into the components (referred to by its name);
- a query parameter is a string on the wire, never null: an optional one is simply not
  required, and every string one excludes NUL (web/guard.py refuses it in a query string);
- every /api/ operation lists the `{"error"}` answers it can give, 401 with its
  `WWW-Authenticate: Bearer` header and 503 with its `Retry-After`, and never FastAPI's 422.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from audience.schemas import (
    EMAIL_SCHEMA,
    LIST_ID_SCHEMA,
    NO_NUL,
    ErrorResponse,
    HealthResponse,
)

_ERROR_REF = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "The authentication scheme to use: `Bearer`",
        "required": True,
        "schema": {"type": "string", "const": "Bearer"},
    }
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}
_REPLAYED = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer of an earlier request sent with "
        "the same Idempotency-Key and body (nothing was written this time)",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
#: The headers an error answer carries, by status (errors.py).
_HEADERS = {"401": _WWW_AUTHENTICATE, "503": _RETRY_AFTER}
#: The error answers an /api/ route can give, by status.
_ERRORS = {
    "400": "Bad request: the body or a parameter is invalid",
    "401": "Missing, malformed, unknown or revoked API key, or another workspace",
    "403": "The API key lacks the permission this route needs",
    "404": "Not found",
    "409": "A request with this Idempotency-Key is in progress",
    "408": "The request's head or body did not arrive in time (`audience serve`, web/protocol.py)",
    "413": "Request body too large (decided before any route runs, whatever the method)",
    "415": "Content-Type is not application/json (imports.create: not multipart/form-data)",
    "422": "The Idempotency-Key was already used with a different request body",
    "431": "Request head too large: too many or too long headers (`audience serve`)",
    "500": "Internal server error: nothing of the request was written",
    "503": "Busy: the worker's request or import limit, or the database; retry after a while",
}
#: Answers only the routes that take an Idempotency-Key give.
_IDEMPOTENT_ONLY = {"409", "422"}
#: Answers a route cannot give: no body is read on GET; the import answers a missing
#: permission with 400; 404 only where a route looks up a contact or a list by its key.
_NOT_GIVEN = {
    "get": {"415", *_IDEMPOTENT_ONLY},
    "batchImportContacts": {"403", "404"},
    "upsertContact": {"404"},
    "deleteContact": _IDEMPOTENT_ONLY,
    "updateContactListStatus": _IDEMPOTENT_ONLY,
    "updateList": _IDEMPOTENT_ONLY,
    "deleteList": _IDEMPOTENT_ONLY,
    "listContacts": {"404"},
    "countContacts": {"404"},
    "createList": {"404", *_IDEMPOTENT_ONLY},
    "listLists": {"404"},
    "createImport": {"403", "404", *_IDEMPOTENT_ONLY},
    "cancelImport": _IDEMPOTENT_ONLY,
    "listImports": {"404"},
}
#: Query parameters whose route reads them by stricter rules than their type says.
_QUERY_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("getContactByEmail", "email"): EMAIL_SCHEMA,
    ("getList", "id"): LIST_ID_SCHEMA,
}


def install_docs(app: FastAPI) -> None:
    """/openapi.json built once, and /docs served from the package's own Swagger UI files."""
    app.openapi = lambda: _document(app)  # type: ignore[method-assign]
    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
            # No request to validator.swagger.io: the page needs nothing but this server.
            swagger_ui_parameters={"validatorUrl": None},
        )


def _document(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (ErrorResponse, HealthResponse):
            components[model.__name__] = model.model_json_schema(mode="serialization")
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                _body_to_components(operation, components)
                _document_query(operation)
                _document_errors(path, method, operation)
        _document_health(schema["paths"].get("/healthz", {}).get("get"))
        app.openapi_schema = schema
    return app.openapi_schema


def _body_to_components(operation: dict[str, Any], components: dict[str, Any]) -> None:
    """An inline request body schema becomes a component named by its title."""
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    body = content.get("schema", {})
    if "title" in body:
        components.update(body.pop("$defs", {}))
        components[body["title"]] = body
        content["schema"] = {"$ref": f"#/components/schemas/{body['title']}"}


def _document_query(operation: dict[str, Any]) -> None:
    """Query parameters as the wire has them: no null, no NUL, the stricter rules given."""
    for parameter in operation.get("parameters", []):
        if parameter.get("in") != "query":
            continue
        schema = parameter["schema"]
        options = [o for o in schema.get("anyOf", []) if o != {"type": "null"}]
        if len(options) == 1:  # `X | None`: X, keeping the title and description
            rest = {k: v for k, v in schema.items() if k != "anyOf"}
            parameter["schema"] = schema = {**rest, **options[0]}
        elif options:
            schema["anyOf"] = options
        override = _QUERY_SCHEMAS.get((operation.get("operationId", ""), parameter["name"]))
        if override is not None:
            parameter["schema"] = schema = {"title": schema.get("title"), **override}
        if schema.get("type") == "string" and "pattern" not in schema:
            schema["pattern"] = NO_NUL


def _document_errors(path: str, method: str, operation: dict[str, Any]) -> None:
    """The {"error"} answers of an /api/ operation; FastAPI's 422 is never given."""
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    if not path.startswith("/api/"):
        return
    if any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", [])):
        responses["200"].setdefault("headers", {}).update(_REPLAYED)
    skipped = _NOT_GIVEN.get(method, set()) | _NOT_GIVEN.get(operation["operationId"], set())
    for code, description in _ERRORS.items():
        if code not in skipped:
            answer: dict[str, Any] = {"description": description, "content": _ERROR_REF}
            if code in _HEADERS:
                answer["headers"] = _HEADERS[code]
            # A route may describe an error answer in its own words; its body is the same.
            given = responses.setdefault(code, answer)
            for key in ("content", "headers"):
                if key in answer:
                    given.setdefault(key, answer[key])


def _document_health(operation: dict[str, Any] | None) -> None:
    """/healthz: `{"status": "ok"}`, or 503 while the database does not answer."""
    if operation is None:
        return
    operation["responses"] = {
        "200": {
            "description": "The database answers",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/HealthResponse"}}
            },
        },
        "503": {"description": "The database does not answer", "content": _ERROR_REF},
    }
