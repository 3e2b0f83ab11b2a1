"""Send batches to `POST /api/contacts.import`, retrying what is safe to retry."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

IMPORT_PATH = "/api/contacts.import"
#: Statuses worth another try: the import is an upsert, so sending a batch twice is safe.
RETRY_STATUSES = frozenset({500, 502, 503, 504})
TOO_LARGE = 413
MAX_DELAY = 30.0
DEFAULT_TIMEOUT = httpx.Timeout(300.0, connect=10.0)


class Stopped(Exception):
    """The import cannot go on; `message` says why, for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Rejected(Stopped):
    """The server refused the request itself (401, 400, ...): retrying would not help."""


class Unreachable(Stopped):
    """Connection errors or 5xx answers until the retries ran out."""


@dataclass(frozen=True, slots=True)
class Operation:
    """The server's answer for one contact."""

    action: str
    error: str | None


class _Operation(msgspec.Struct):
    action: str
    error: str | None = None


class _Response(msgspec.Struct):
    operations: list[_Operation] | None = None
    error: str | None = None


@dataclass
class Sender:
    """Posts one batch and returns one Operation per contact, in order."""

    http: httpx.Client
    url: str
    key: str
    workspace: str
    lists: tuple[str, ...] = ()
    retries: int = 6
    backoff: float = 0.5
    on_retry: Callable[[str], None] = lambda message: None
    stop: threading.Event = field(default_factory=threading.Event)
    #: Waits out a back-off; True when the import is stopping. Default: `stop.wait`.
    pause: Callable[[float], bool] | None = None

    def send(self, contacts: Sequence[dict[str, Any]]) -> list[Operation]:
        """Import the contacts; a batch too large for the server is split in halves."""
        response = self._post_with_retries(contacts)
        if response.status_code == TOO_LARGE:
            return self._split(contacts)
        return _operations(response, len(contacts))

    def _split(self, contacts: Sequence[dict[str, Any]]) -> list[Operation]:
        if len(contacts) == 1:
            return [Operation("error", "contact too large for the server's request size limit")]
        half = len(contacts) // 2
        return self.send(contacts[:half]) + self.send(contacts[half:])

    def _post_with_retries(self, contacts: Sequence[dict[str, Any]]) -> httpx.Response:
        body = self._body(contacts)
        for attempt in range(self.retries + 1):
            problem, response = self._post(body)
            if problem is None and response is not None:
                return response
            if attempt == self.retries:
                raise Unreachable(f"{problem}; gave up after {attempt + 1} attempts")
            delay = self._delay(attempt, response)
            self.on_retry(f"{problem}; retrying in {delay:.1f}s")
            if (self.pause or self.stop.wait)(delay):
                raise Stopped("stopped")
        raise AssertionError("unreachable")

    def _post(self, body: bytes) -> tuple[str | None, httpx.Response | None]:
        """(None, response) when the answer is final, else (what went wrong, response)."""
        try:
            response = self.http.post(
                self.url.rstrip("/") + IMPORT_PATH,
                content=body,
                headers={
                    "Authorization": f"Bearer {self.key}",
                    "Content-Type": "application/json",
                },
            )
        except httpx.TransportError as exc:
            return f"cannot reach {self.url}: {exc or type(exc).__name__}", None
        if response.status_code in RETRY_STATUSES:
            return f"server error {response.status_code}: {_error_text(response)}", response
        return None, response

    def _body(self, contacts: Sequence[dict[str, Any]]) -> bytes:
        payload: dict[str, Any] = {"workspace_id": self.workspace, "contacts": contacts}
        if self.lists:
            payload["subscribe_to_lists"] = self.lists
        return msgspec.json.encode(payload)

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Exponential back-off with jitter, or the server's Retry-After when it gives one."""
        retry_after = response.headers.get("Retry-After") if response is not None else None
        if retry_after and retry_after.isdigit():
            return min(float(retry_after), MAX_DELAY)
        delay = min(self.backoff * 2.0**attempt, MAX_DELAY)
        return delay * random.uniform(0.75, 1.0)


def _operations(response: httpx.Response, expected: int) -> list[Operation]:
    """The operations of a 200 answer; any other answer stops the import."""
    if response.status_code != 200:
        raise Rejected(_rejection(response))
    try:
        decoded = msgspec.json.decode(response.content, type=_Response)
    except msgspec.DecodeError as exc:
        raise Stopped(f"unexpected answer from the server: {exc}") from None
    operations = decoded.operations or []
    if decoded.error or len(operations) != expected:
        reason = decoded.error or f"{len(operations)} operations for {expected} contacts"
        raise Stopped(f"unexpected answer from the server: {reason}")
    return [Operation(op.action, op.error) for op in operations]


def _rejection(response: httpx.Response) -> str:
    status, text = response.status_code, _error_text(response)
    if status == 401:
        return f"the server refused the API key (401): {text}"
    if status == 400 and "exceeds the maximum" in text:
        return f"the server rejected the request (400): {text}; use a smaller --batch-size"
    if status == 400:
        return f"the server rejected the request (400): {text}"
    return f"the server answered {status}: {text}"


def _error_text(response: httpx.Response) -> str:
    """The `error` of an error body, else the start of whatever came back."""
    try:
        data = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])
    return response.text[:200].strip() or response.reason_phrase


def check_url(url: str) -> str | None:
    """Why `url` cannot be the server's base URL, or None when it can."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"--url {url!r} is not a URL: {exc}"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return f"--url {url!r} must look like http://host:port"
    return None


def build_http_client(concurrency: int) -> httpx.Client:
    """The client of a real run: one keep-alive connection per batch in flight."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.Client(timeout=DEFAULT_TIMEOUT, limits=limits)
