"""The ASGI application, built from explicit settings."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy import text

from audience import __version__
from audience.config import Settings
from audience.contacts.router import router as contacts_router
from audience.db.engine import build_engine
from audience.kit.memory import return_large_buffers_to_the_os
from audience.lists.router import router as lists_router
from audience.web import (
    DOCUMENTED_BODIES,
    ErrorResponse,
    RequestGuardMiddleware,
    install_error_handlers,
)


def create_app(settings: Settings | None = None, *, migrate: bool | None = None) -> FastAPI:
    """The application; the lifespan builds the engine (and migrates when AUTO_MIGRATE)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = build_engine(settings)
        if settings.auto_migrate if migrate is None else migrate:
            from audience.db.migrate import upgrade  # Alembic only when it is needed

            upgrade(engine)
        app.state.settings = settings
        app.state.engine = engine
        app.state.secret_key = settings.resolved_secret_key()
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="Audience",
        version=__version__,
        description="Self-hosted contacts service with a Notifuse-compatible API.",
        lifespan=lifespan,
    )
    app.add_middleware(RequestGuardMiddleware, max_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    app.include_router(contacts_router)
    app.include_router(lists_router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> JSONResponse:
        """200 when the database answers, 503 otherwise."""
        try:
            with app.state.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                conn.rollback()
        except Exception:
            return JSONResponse({"error": "database unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def worker_app() -> FastAPI:
    """The app of one `audience serve` worker: the parent process has migrated already.

    The worker's process is tuned here, once, not in every app a test builds: what startup
    imported and built lives as long as the process, so the cycle collector stops walking it
    on every full collection a large import triggers; and glibc hands large request buffers
    back when they are freed.
    """
    app = create_app(migrate=False)
    gc.collect()
    gc.freeze()
    return_large_buffers_to_the_os()
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the bodies that routes decode themselves."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, model in DOCUMENTED_BODIES.items():
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components[name] = model_schema
        _document_errors(schema)
        app.openapi_schema = schema
    return app.openapi_schema


_ERROR_REF = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
_ERRORS = {
    "400": "Bad request: the body or a parameter is invalid",
    "401": "Missing, malformed, unknown or revoked API key, or another workspace",
    "403": "The API key lacks the permission this route needs",
    "404": "Not found",
    "413": "Request body too large",
    "415": "Content-Type is not application/json",
    "500": "Internal server error: nothing of the request was written",
}
#: Query parameters the routes require (declared optional so that a missing one gets our
#: error message, not FastAPI's).
_REQUIRED_QUERY = {"workspace_id", "email", "id", "external_id"}


def _document_errors(schema: dict[str, Any]) -> None:
    """Every /api/ operation documents the {"error"} answers it can give; none gives 422."""
    components = schema["components"]["schemas"]
    components["ErrorResponse"] = ErrorResponse.model_json_schema()
    for schema_name in ("HTTPValidationError", "ValidationError"):
        components.pop(schema_name, None)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if not path.startswith("/api/"):
                continue
            for code, description in _ERRORS.items():
                if method == "get" and code in ("413", "415"):
                    continue
                if path == "/api/contacts.import" and code in ("403", "404"):
                    continue  # the spec answers a missing permission with 400
                responses.setdefault(code, {"description": description, "content": _ERROR_REF})
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and parameter["name"] in _REQUIRED_QUERY:
                    parameter["required"] = True
                    parameter["schema"] = {"type": "string", "minLength": 1}
