"""The ASGI application, built from explicit settings."""

from __future__ import annotations

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
from audience.db.migrate import upgrade
from audience.lists.router import router as lists_router
from audience.web import DOCUMENTED_BODIES, RequestGuardMiddleware, install_error_handlers


def create_app(settings: Settings | None = None, *, migrate: bool | None = None) -> FastAPI:
    """The application; the lifespan builds the engine (and migrates when AUTO_MIGRATE)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = build_engine(settings)
        if settings.auto_migrate if migrate is None else migrate:
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
        app.openapi_schema = schema
    return app.openapi_schema
