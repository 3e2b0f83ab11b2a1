"""The outermost middleware: a request id, a bound on concurrent requests, one access-log line
and the request metrics, for every HTTP request.

The access log says who did what, never with what: method, route, status, duration, the
workspace and key id of the caller when known, and the request id; never the Authorization
header, a key, a query string or a body.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audience.errors import ServiceUnavailable
from audience.kit import metrics
from audience.web.errors import error_response, unexpected_response

access_logger = logging.getLogger("audience.access")
error_logger = logging.getLogger("audience.errors")

REQUEST_ID_HEADER = b"x-request-id"
#: A request id a client may choose: short, and nothing a log line could be forged with.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
#: Routes that answer even when the worker is at its limit (an operator must see it).
_UNLIMITED = frozenset({"/healthz", "/metrics"})


class EdgeMiddleware:
    """Request id, concurrency limit (503 + Retry-After), access log and metrics."""

    def __init__(self, app: ASGIApp, max_concurrent: int, access_log: bool) -> None:
        self.app = app
        self.max_concurrent = max_concurrent
        self.access_log = access_log
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status, started_response = message["status"], True
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, request_id)]
            await send(message)

        try:
            if self.active >= self.max_concurrent and scope["path"] not in _UNLIMITED:
                metrics.REFUSED.labels("concurrent_requests").inc()
                busy = ServiceUnavailable("server busy, retry later")
                await error_response(busy)(scope, receive, send_with_id)
                return
            self.active += 1
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:  # answered here, so nothing logs the exception's text
                log_unexpected(exc, request_id)
                if not started_response:
                    await unexpected_response()(scope, receive, send_with_id)
            finally:
                self.active -= 1
        finally:
            self._record(scope, status, time.perf_counter() - started, request_id)

    def _record(self, scope: Scope, status: int, seconds: float, request_id: bytes) -> None:
        route = _route_of(scope)
        method = scope["method"]
        metrics.REQUESTS.labels(method, route, str(status)).inc()
        metrics.LATENCY.labels(method, route).observe(seconds)
        if self.access_log:
            state: dict[str, Any] = scope.get("state", {})
            access_logger.info(
                "%s %s %d %.1fms workspace=%s key=%s request_id=%s",
                method,
                route,
                status,
                seconds * 1000,
                state.get("workspace_id", "-"),
                state.get("key_id", "-"),
                request_id.decode(),
                extra={
                    "http_method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                    "workspace": state.get("workspace_id"),
                    "key_id": state.get("key_id"),
                    "request_id": request_id.decode(),
                },
            )


def _request_id(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _SANE_REQUEST_ID.fullmatch(value):
            return bytes(value)
    return uuid.uuid4().hex.encode()


def _route_of(scope: Scope) -> str:
    """The matched route's path template; an unmatched path is not a label (it is anything)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "(unmatched)"


def log_unexpected(exc: BaseException, request_id: bytes) -> None:
    """The traceback of a failure, without the exception's message: a driver's message can
    quote the row it failed on (an email), and that must not reach the log."""
    state = getattr(getattr(exc, "orig", None), "sqlstate", None) or getattr(exc, "sqlstate", None)
    frames = "".join(traceback.format_tb(exc.__traceback__))
    error_logger.error(
        "unexpected %s%s (request_id=%s)\n%s",
        type(exc).__name__,
        f" sqlstate={state}" if state else "",
        request_id.decode(),
        frames.rstrip(),
    )
