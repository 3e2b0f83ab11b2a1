"""The OpenAPI document and the interactive docs, served without internet access.

FastAPI documents every route from its signature, and `BodyRoute` (web/bodies.py) the body
of a route that reads its own. Two rules are applied here to the whole document: a request
body's schema moves into the components (referred to by its name), and every /api/
operation lists the `{"error"}` answers it can give.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from audience.schemas import ErrorResponse

_ERROR_REF = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
#: The error answers an /api/ route can give, by status.
_ERRORS = {
    "400": "Bad request: the body or a parameter is invalid",
    "401": "Missing, malformed, unknown or revoked API key, or another workspace",
    "403": "The API key lacks the permission this route needs",
    "404": "Not found",
    "413": "Request body too large",
    "415": "Content-Type is not application/json",
    "500": "Internal server error: nothing of the request was written",
}
#: Answers a route cannot give: no body on GET; the import answers a permission with 400.
_NOT_GIVEN = {"get": {"413", "415"}, "/api/contacts.import": {"403", "404"}}


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
        )


def _document(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["ErrorResponse"] = ErrorResponse.model_json_schema()
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                _body_to_components(operation, components)
                _document_errors(path, method, operation)
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


def _document_errors(path: str, method: str, operation: dict[str, Any]) -> None:
    """The {"error"} answers of an /api/ operation; FastAPI's 422 is never given."""
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    if not path.startswith("/api/"):
        return
    skipped = _NOT_GIVEN.get(method, set()) | _NOT_GIVEN.get(path, set())
    for code, description in _ERRORS.items():
        if code not in skipped:
            responses.setdefault(code, {"description": description, "content": _ERROR_REF})
