"""Refusals before any route runs: what no route can use."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audience.errors import AppError, BadRequest, PayloadTooLarge
from audience.kit import metrics
from audience.web.errors import error_response


class RequestGuardMiddleware:
    """NUL in the query string (400); a body over the limit (413, decided from
    Content-Length or while the body streams in). Upload routes have limits of their own:
    `uploads` maps their paths to their limits."""

    def __init__(self, app: ASGIApp, max_bytes: int, uploads: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.uploads = uploads or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.uploads.get(scope.get("path", ""), self.max_bytes)
        rejection = self._reject(scope, max_bytes)
        if rejection is not None:
            await error_response(rejection)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    metrics.REFUSED.labels("body_bytes").inc()
                    raise PayloadTooLarge("request body too large")
            return message

        await self.app(scope, limited_receive, send)

    def _reject(self, scope: Scope, max_bytes: int) -> AppError | None:
        query = scope.get("query_string", b"").lower()
        if b"%00" in query or b"\x00" in query:
            return BadRequest("query parameters must not contain NUL characters")
        for name, value in scope["headers"]:
            if name != b"content-length":
                continue
            if not value.isdigit():
                return BadRequest("invalid Content-Length header")
            if int(value) > max_bytes:
                metrics.REFUSED.labels("body_bytes").inc()
                return PayloadTooLarge("request body too large")
        return None
