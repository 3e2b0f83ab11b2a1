"""uvicorn's HTTP protocol with the limits it lacks, so that no client can hold a worker.

uvicorn (httptools) refuses malformed requests and closes idle keep-alive connections, but it
accepts request heads of any size and number of headers, and waits forever for a client that
sends its head or its body slowly. This subclass, selected by `audience serve` (cli.py),
adds, per connection:

- the request head (request line and headers) is at most `max_header_bytes` bytes and
  `max_header_count` headers, counted as the bytes arrive: a longer one gets 431 at once and
  is never buffered;
- the head must arrive within `header_timeout` seconds of the connection opening (or, on a
  kept-alive connection, of its first byte: an idle one is closed by uvicorn's keep-alive
  timeout); after that the connection gets 408 and is closed, however slowly bytes are still
  trickling in;
- the body must arrive within `body_timeout` seconds of its head (`upload_timeout` for the
  upload routes, UPLOAD_PATHS); after that the request gets 408 and the connection is
  closed (the application sees a disconnect).
"""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from audience.config import Settings
from audience.kit import metrics

_HEAD_END = b"\r\n\r\n"
#: The routes that receive files: their bodies have AUDIENCE_UPLOAD_TIMEOUT_SECONDS.
UPLOAD_PATHS = frozenset({"/api/imports.create", "/console/imports/upload"})


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    max_header_bytes: int
    max_header_count: int
    header_timeout: float
    body_timeout: float
    upload_timeout: float = 3600.0

    @classmethod
    def of(cls, settings: Settings) -> EdgeLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_header_count=settings.max_header_count,
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            upload_timeout=settings.upload_timeout_seconds,
        )


@functools.cache
def _limits() -> EdgeLimits:
    """The limits of this worker process, from its environment (as its app's settings)."""
    return EdgeLimits.of(Settings())


def _answer(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with bounded request heads and deadlines for heads and bodies."""

    limits: EdgeLimits | None = None  # tests set it; a worker reads its settings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = self.limits or _limits()
        self._head_bytes = 0
        self._head_tail = b""
        self._header_count = 0
        self._reading_head = True
        self._refused = False
        self._body_pending = False  # the head was read, its body is still arriving
        self._answered = False  # the answer went out before the whole body arrived
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    # --- the request head ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expect_head()
        self._start_head_timer()  # a new connection must send its head in time

    def _expect_head(self) -> None:
        """The next bytes begin a request head; on a kept-alive connection its deadline
        starts with its first byte (until then uvicorn's keep-alive timeout applies)."""
        self._reading_head = True
        self._head_bytes = self._header_count = 0
        self._head_tail = b""
        self._cancel(self._head_timer)
        self._head_timer = None

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self._limits.header_timeout, self._head_late)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading_head and self._head_timer is None:
            self._start_head_timer()
        if self._reading_head and not self._head_fits(data):
            self._refuse(431, "Request Header Fields Too Large", "request headers too large")
            metrics.REFUSED.labels("header_bytes").inc()
            return
        super().data_received(data)

    def _head_fits(self, data: bytes) -> bool:
        """Count the head's bytes up to its blank line (the body that follows is not head)."""
        window = self._head_tail + data
        end = window.find(_HEAD_END)
        if end < 0:
            self._head_bytes += len(data)
            self._head_tail = window[-3:]
        else:
            self._head_bytes += end + len(_HEAD_END) - len(self._head_tail)
            self._reading_head = False  # on_headers_complete confirms it
        return self._head_bytes <= self._limits.max_header_bytes

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count <= self._limits.max_header_count:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._cancel(self._head_timer)
        if self._header_count > self._limits.max_header_count:
            self._refuse(431, "Request Header Fields Too Large", "too many request headers")
            metrics.REFUSED.labels("header_count").inc()
            return
        super().on_headers_complete()
        self._body_pending, self._answered = True, False
        if self._has_body():
            upload = self.scope.get("path") in UPLOAD_PATHS
            timeout = self._limits.upload_timeout if upload else self._limits.body_timeout
            self._body_timer = self.loop.call_later(timeout, self._body_late)

    def _has_body(self) -> bool:
        headers = dict(self.headers)
        length = headers.get(b"content-length", b"0")
        return (length.isdigit() and int(length) > 0) or b"transfer-encoding" in headers

    # --- the request body ------------------------------------------------------------------------

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel(self._body_timer)
        self._body_pending = False
        if not self._refused:
            super().on_message_complete()
        if self._answered and not self.transport.is_closing():
            # Answered before its body was read: the connection is idle from now on.
            self._expect_head()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self._body_pending:  # the rest of this body is not the next request's head
            self._answered = True
            return
        self._expect_head()

    # --- refusals ------------------------------------------------------------------------------

    def _head_late(self) -> None:
        if self._reading_head and not self.transport.is_closing():
            self._refuse(408, "Request Timeout", "request headers not received in time")
            metrics.REFUSED.labels("header_timeout").inc()

    def _body_late(self) -> None:
        cycle = self.cycle
        if cycle is None or cycle.response_started or self.transport.is_closing():
            return
        self._refuse(408, "Request Timeout", "request body not received in time")
        metrics.REFUSED.labels("body_timeout").inc()

    def _refuse(self, status: int, reason: str, message: str) -> None:
        self._refused = True
        self._cancel(self._head_timer)
        self._cancel(self._body_timer)
        if not self.transport.is_closing():
            self.transport.write(_answer(status, reason, message))
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel(self._head_timer)
        self._cancel(self._body_timer)
        super().connection_lost(exc)

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()
