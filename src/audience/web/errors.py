"""The error envelope: every failure, expected or not, answers {"error": "..."}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from audience.errors import AppError, DatabaseBusy
from audience.kit import metrics
from audience.web.bodies import describe_validation_error

logger = logging.getLogger("audience.errors")


def error_response(exc: AppError) -> JSONResponse:
    return JSONResponse(
        {"error": exc.message}, status_code=exc.status_code, headers=dict(exc.headers)
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to the envelope; an unexpected one is a 500, never a traceback."""

    async def on_app_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        if isinstance(exc, DatabaseBusy):
            metrics.REFUSED.labels("database_busy").inc()
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

    async def on_disconnect(request: Request, _exc: Exception) -> Response:
        request_id = request.scope.get("state", {}).get("request_id", b"-")
        logger.warning(
            "client disconnected before its request was read: %s %s (request_id=%s)",
            request.method,
            request.url.path,
            request_id.decode() if isinstance(request_id, bytes) else request_id,
        )
        return Response(status_code=400)  # nobody is left to read it

    async def on_unexpected(_request: Request, _exc: Exception) -> JSONResponse:
        return unexpected_response()

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
    app.add_exception_handler(Exception, on_unexpected)


def unexpected_response() -> JSONResponse:
    return JSONResponse({"error": "internal server error"}, status_code=500)
