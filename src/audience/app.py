"""The ASGI application, built from explicit settings."""

from __future__ import annotations

import gc
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from audience import __version__
from audience.config import Settings
from audience.console.router import router as console_router
from audience.contacts.router import router as contacts_router
from audience.db.engine import build_engine
from audience.db.statistics import StatisticsKeeper
from audience.import_jobs.router import router as imports_router
from audience.import_jobs.worker import Workers
from audience.kit import metrics
from audience.kit.gil import hand_over_sooner
from audience.kit.memory import return_large_buffers_to_the_os
from audience.lists.router import router as lists_router
from audience.web.access import EdgeMiddleware
from audience.web.errors import install_error_handlers
from audience.web.guard import RequestGuardMiddleware
from audience.web.openapi import install_docs
from audience.web.protocol import UPLOAD_PATHS


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
        app.state.import_slots = threading.BoundedSemaphore(settings.max_concurrent_imports)
        workers = Workers(engine, settings, settings.import_workers)
        keeper = StatisticsKeeper(engine, settings.statistics_check_seconds)
        workers.start()
        keeper.start()
        try:
            yield
        finally:
            keeper.stop()
            workers.stop()
            engine.dispose()

    app = FastAPI(
        title="Audience",
        version=__version__,
        description="Self-hosted contacts service with a Notifuse-compatible API.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(
        RequestGuardMiddleware,
        max_bytes=settings.max_body_bytes,
        # The multipart envelope around the file is allowed on top of the file's own limit.
        uploads=dict.fromkeys(UPLOAD_PATHS, settings.max_upload_bytes + 1024 * 1024),
    )
    app.add_middleware(
        EdgeMiddleware,
        max_concurrent=settings.max_concurrent_requests,
        access_log=settings.access_log,
    )
    install_error_handlers(app)
    app.include_router(contacts_router)
    app.include_router(lists_router)
    app.include_router(imports_router)
    app.include_router(console_router)
    install_docs(app)

    @app.get("/healthz", tags=["health"], operation_id="health")
    def healthz() -> JSONResponse:
        """200 when the database answers, 503 otherwise."""
        try:
            with app.state.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                conn.rollback()
        except Exception:
            return JSONResponse({"error": "database unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    if settings.metrics:

        @app.get("/metrics", include_in_schema=False)
        def prometheus() -> Response:
            """Every worker's samples in the Prometheus text format."""
            body, content_type = metrics.exposition()
            return Response(body, media_type=content_type)

    return app


def worker_app() -> FastAPI:
    """The app of one `audience serve` worker: the parent process has migrated already.

    The worker's process is tuned here, once, not in every app a test builds: what startup
    imported and built lives as long as the process, so the cycle collector stops walking it
    on every full collection a large import triggers; glibc hands large request buffers
    back when they are freed; and a thread asking for the GIL gets it within 1 ms
    (audience.kit.gil).
    """
    app = create_app(migrate=False)
    gc.collect()
    gc.freeze()
    return_large_buffers_to_the_os()
    hand_over_sooner()
    return app
