"""Send batches to `POST /api/contacts.import`, retrying what is safe to retry."""

from __future__ import annotations

import ipaddress
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

from audience.file_client.deadline import DeadlineTransport, request_deadline
from audience.file_client.untrusted import describe, printable, server_text

IMPORT_PATH = "/api/contacts.import"
#: Statuses worth another try: the import is an upsert, so sending a batch twice is safe.
RETRY_STATUSES = frozenset({500, 502, 503, 504})
TOO_LARGE = 413
MAX_DELAY = 30.0
#: Seconds a request may take in all: connect, send, and the whole answer (`--timeout`).
DEFAULT_DEADLINE = 120.0
#: Bounds of each network operation within that deadline.
PER_OPERATION = httpx.Timeout(300.0, connect=10.0)
ACTIONS = frozenset({"create", "update", "error"})
UNEXPECTED = "unexpected answer from the server"


class Stopped(Exception):
    """The import cannot go on; `message` says why, for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Rejected(Stopped):
    """The server refused the request itself (401, 400, ...): retrying would not help."""


class Unreachable(Stopped):
    """Connection errors, timeouts or 5xx answers until the retries ran out."""


class CannotConnect(Stopped):
    """The first request found no server at the URL: no point retrying."""


@dataclass(frozen=True, slots=True)
class Operation:
    """The server's answer for one contact: `action` is create, update or error."""

    action: str
    error: str | None


@dataclass
class Sender:
    """Posts one batch and returns one Operation per contact, in order."""

    http: httpx.Client
    url: str
    key: str
    workspace: str
    lists: tuple[str, ...] = ()
    list_status: str = "subscribed"
    merge: str = "overwrite"
    retries: int = 6
    backoff: float = 0.5
    on_retry: Callable[[str], None] = lambda message: None
    stop: threading.Event = field(default_factory=threading.Event)
    #: Waits out a back-off; True when the import is stopping. Default: `stop.wait`.
    pause: Callable[[float], bool] | None = None
    #: Seconds each request may take in all (enforced by the transport of `build_http_client`).
    timeout: float = DEFAULT_DEADLINE
    #: Set at the first answer: from then on, connection errors are worth retrying.
    answered: threading.Event = field(default_factory=threading.Event)

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
        deadline = time.monotonic() + self.timeout
        try:
            with request_deadline(self.timeout):
                response = self.http.post(
                    self.url.rstrip("/") + IMPORT_PATH,
                    content=body,
                    headers={
                        "Authorization": f"Bearer {self.key}",
                        "Content-Type": "application/json",
                    },
                )
        except httpx.TimeoutException as exc:
            if time.monotonic() >= deadline - 0.01:  # (a timer may end a hair early)
                url = printable(self.url)
                return f"no complete answer from {url} within {self.timeout:g}s (--timeout)", None
            return self._unreachable(exc), None
        except httpx.ConnectError as exc:
            if not self.answered.is_set():
                raise CannotConnect(cannot_connect(self.url, exc)) from None
            return self._unreachable(exc), None
        except httpx.TransportError as exc:
            return self._unreachable(exc), None
        self.answered.set()
        if response.status_code in RETRY_STATUSES:
            return f"server error {response.status_code}: {error_text(response)}", response
        return None, response

    def _unreachable(self, exc: httpx.TransportError) -> str:
        return f"cannot reach {printable(self.url)}: {printable(str(exc) or type(exc).__name__)}"

    def _body(self, contacts: Sequence[dict[str, Any]]) -> bytes:
        payload: dict[str, Any] = {"workspace_id": self.workspace, "contacts": contacts}
        if self.lists:
            payload["subscribe_to_lists"] = self.lists
        if self.list_status != "subscribed":
            payload["list_status"] = self.list_status
        if self.merge != "overwrite":
            payload["merge"] = self.merge
        return msgspec.json.encode(payload)

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Exponential back-off with jitter, or the server's Retry-After when it gives one."""
        retry_after = response.headers.get("Retry-After") if response is not None else None
        if retry_after and retry_after.isdigit():
            return min(float(retry_after), MAX_DELAY)
        delay = min(self.backoff * 2.0**attempt, MAX_DELAY)
        return delay * random.uniform(0.75, 1.0)


def _operations(response: httpx.Response, expected: int) -> list[Operation]:
    """The operations of a 200 answer; an answer not shaped like one stops the import.

    Extra keys are ignored. An operation that is not understood (an unknown action, a
    missing one, a value of the wrong type, another contact's index) fails its contact.
    """
    if response.status_code != 200:
        raise Rejected(_rejection(response))
    try:
        answer = msgspec.json.decode(response.content)
    except msgspec.DecodeError as exc:
        raise Stopped(f"{UNEXPECTED}: {exc}") from None
    if not isinstance(answer, dict):
        raise Stopped(f"{UNEXPECTED}: {describe(answer)} is not a JSON object")
    error = answer.get("error")
    if error is not None and not isinstance(error, str):
        raise Stopped(f"{UNEXPECTED}: error {describe(error)}")
    if error:
        raise Stopped(f"{UNEXPECTED}: {server_text(error)}")
    operations = answer.get("operations")
    if operations is not None and not isinstance(operations, list):
        raise Stopped(f"{UNEXPECTED}: operations {describe(operations)}")
    operations = operations or []
    if len(operations) != expected:
        raise Stopped(f"{UNEXPECTED}: {len(operations)} operations for {expected} contacts")
    return [_operation(op, position) for position, op in enumerate(operations)]


def _operation(op: Any, position: int) -> Operation:
    problem = _malformed(op, position)
    if problem is not None:
        return Operation("error", f"{UNEXPECTED}: {problem}")
    if op["action"] == "error":
        error = op.get("error")
        return Operation("error", server_text(error) if error else None)
    return Operation(op["action"], None)


def _malformed(op: Any, position: int) -> str | None:
    """What is wrong with one operation of an answer, or None."""
    if not isinstance(op, dict):
        return f"operation {describe(op)}"
    if "action" not in op:
        return "no action"
    action = op["action"]
    if not isinstance(action, str) or action not in ACTIONS:
        return f"action {describe(action)}"
    for name in ("error", "email"):
        value = op.get(name)
        if value is not None and not isinstance(value, str):
            return f"{name} {describe(value)}"
    index = op.get("index", position)
    if type(index) is not int or index != position:
        return f"index {describe(index)} for contact {position} of the batch"
    return None


def _rejection(response: httpx.Response) -> str:
    status, text = response.status_code, error_text(response)
    if status == 401:
        return f"the server refused the API key (401): {text}"
    if status == 400 and "exceeds the maximum" in text:
        return f"the server rejected the request (400): {text}; use a smaller --batch-size"
    if status == 400:
        return f"the server rejected the request (400): {text}"
    return f"the server answered {status}: {text}"


def error_text(response: httpx.Response) -> str:
    """The `error` of an error body, else the start of whatever came back (escaped)."""
    try:
        data = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return server_text(data["error"])
    return server_text(response.text[:200].strip()) or printable(response.reason_phrase)


def cannot_connect(url: str, exc: httpx.ConnectError) -> str:
    """`cannot connect to URL: connection refused; is the server running, ...?`"""
    cause: BaseException | None = exc
    for _ in range(10):  # the OSError under httpx's and httpcore's errors
        if cause is None or isinstance(cause, OSError):
            break
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ConnectionRefusedError):
        reason = "connection refused"
    elif isinstance(cause, socket.gaierror):
        host = httpx.URL(url).host
        reason = f"unknown host {host} ({cause.strerror or cause})"
    elif isinstance(cause, ssl.SSLCertVerificationError):
        reason = f"its TLS certificate is not trusted ({cause.verify_message})"
    elif isinstance(cause, ssl.SSLError):
        reason = f"TLS failed ({cause.reason or cause})"
    elif isinstance(cause, OSError) and cause.strerror:
        reason = cause.strerror[:1].lower() + cause.strerror[1:]
    else:
        reason = str(exc) or type(exc).__name__
    shown = printable(f"{url}: {reason}")
    return f"cannot connect to {shown}; is the server running, and is --url right?"


def check_url(url: str) -> str | None:
    """Why `url` cannot be the server's base URL, or None when it can."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"--url {url!r} is not a URL: {exc}"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return f"--url {url!r} must look like http://host:port"
    if parsed.port is not None and not 0 < parsed.port < 65536:
        return f"--url {url!r} has an invalid port: {parsed.port} (1-65535)"
    return None


def plain_http_warning(url: str) -> str | None:
    """The warning for a key about to travel unencrypted beyond this machine, or None."""
    parsed = httpx.URL(url)
    if parsed.scheme != "http" or is_loopback(parsed.host):
        return None
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return (
        f"warning: the API key is sent unencrypted over http:// to {printable(host)}; use https://"
    )


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (also as an IPv4-mapped address)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def build_http_client(concurrency: int) -> httpx.Client:
    """The client of a real run: one keep-alive connection per batch in flight, each request
    bounded by the deadline its sender sets (see deadline.py)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.Client(transport=DeadlineTransport(limits), timeout=PER_OPERATION)
