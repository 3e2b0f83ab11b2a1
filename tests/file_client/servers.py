"""Small raw socket servers on loopback for the client's network tests: slow, silent, hostile.

`RawServer` hands every accepted connection to a handler in its own thread. `FakeApi` speaks
just enough HTTP/1.1 to answer `POST /api/contacts.import` the way a test scripts it.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

TLS = Path(__file__).parent / "tls"
CERT, KEY = TLS / "localhost.crt", TLS / "localhost.key"

Handler = Callable[[socket.socket, "RawServer"], None]


def client_tls() -> ssl.SSLContext:
    """A client context that trusts the tests' self-signed certificate (localhost, 127.0.0.1)."""
    return ssl.create_default_context(cafile=str(CERT))


def server_tls() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERT, KEY)
    return context


class RawServer:
    """A TCP server on 127.0.0.1; `handle(conn, server)` runs for each connection.

    Leaving the block shuts every connection down (which wakes its handler), closes every
    socket and joins every thread. `stopped` tells handlers to give up.
    """

    def __init__(self, handle: Handler, *, tls: bool = False, rcvbuf: int | None = None) -> None:
        self.handle, self.tls, self.rcvbuf = handle, tls, rcvbuf
        self.stopped = threading.Event()
        self.port = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener: threading.Thread | None = None
        self._listening = threading.Event()
        self._tls = server_tls() if tls else None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def __enter__(self) -> RawServer:
        self.listen()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.stop_listening()
        self.drop_connections()
        for thread in self._threads:
            thread.join(10)

    def listen(self) -> None:
        """Accept connections (again, on the same port, after `stop_listening`)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.rcvbuf is not None:  # inherited by accepted sockets: a small window
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        sock.settimeout(0.02)
        self.port = sock.getsockname()[1]
        self._listening.set()
        self._listener = threading.Thread(target=self._accept, args=(sock,), daemon=True)
        self._listener.start()

    def stop_listening(self) -> None:
        """Close the listening socket: from now on, connecting is refused."""
        self._listening.clear()
        if self._listener is not None:
            self._listener.join(10)
            self._listener = None

    def drop_connections(self) -> None:
        """Shut down every open connection (their handlers see the end and return)."""
        with self._lock:
            for conn in self._open:
                with suppress(OSError):
                    socket.socket.shutdown(conn, socket.SHUT_RDWR)

    def wrap(self, conn: socket.socket) -> socket.socket:
        """The connection after the TLS handshake (when the server speaks TLS)."""
        if self._tls is None:
            return conn
        with self._lock:
            self._open.discard(conn)
        wrapped = self._tls.wrap_socket(conn, server_side=True)
        with self._lock:
            self._open.add(wrapped)
        return wrapped

    def _accept(self, sock: socket.socket) -> None:
        with sock:
            while self._listening.is_set():
                try:
                    conn, _ = sock.accept()
                except TimeoutError:
                    continue
                conn.settimeout(10)
                with self._lock:
                    self._open.add(conn)
                    self.connections += 1
                thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _serve(self, conn: socket.socket) -> None:
        current = conn
        try:
            current = self.wrap(conn)
            self.handle(current, self)
        except (OSError, ValueError):
            pass  # the client went away, or the test is over
        finally:
            with self._lock:
                self._open.discard(current)
                self._open.discard(conn)
            current.close()
            conn.close()


def read_request(conn: socket.socket) -> tuple[bytes, bytes] | None:
    """(head, body) of the next request on the connection, or None at its end."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head, body


def response(status: int, body: bytes, reason: str = "OK", headers: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{headers}\r\n"
    ).encode() + body


def dribble(conn: socket.socket, server: RawServer, data: bytes, interval: float) -> None:
    """Send `data` one byte at a time, `interval` seconds apart, until the test is over."""
    for byte in data:
        if server.stopped.wait(interval):
            return
        conn.sendall(bytes([byte]))


#: The start of an answer whose headers never end.
ENDLESS_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: " + b"a" * 100_000

Answer = Callable[[socket.socket, RawServer, list[dict[str, Any]]], None]


def operations(contacts: list[dict[str, Any]], action: str = "create") -> list[dict[str, Any]]:
    return [
        {"index": i, "email": c.get("email"), "action": action, "error": None}
        for i, c in enumerate(contacts)
    ]


def answer_json(status: int, payload: Any, headers: str = "") -> Answer:
    """An answer with this status and body, whatever was sent."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()

    def answer(conn: socket.socket, server: RawServer, contacts: list[dict[str, Any]]) -> None:
        conn.sendall(response(status, body, headers=headers))

    return answer


def answer_ok(conn: socket.socket, server: RawServer, contacts: list[dict[str, Any]]) -> None:
    """What the real server answers when every contact is new."""
    body = json.dumps({"operations": operations(contacts), "error": None}).encode()
    conn.sendall(response(200, body))


def answer_with(
    edit: Callable[[list[dict[str, Any]]], dict[str, Any]],
) -> Answer:
    """A 200 answer whose body is `edit(contacts)`."""

    def answer(conn: socket.socket, server: RawServer, contacts: list[dict[str, Any]]) -> None:
        conn.sendall(response(200, json.dumps(edit(contacts)).encode()))

    return answer


def answer_slowly(interval: float, head: bytes = ENDLESS_HEAD) -> Answer:
    """Dribble `head` a byte at a time: an answer that never completes."""

    def answer(conn: socket.socket, server: RawServer, contacts: list[dict[str, Any]]) -> None:
        dribble(conn, server, head, interval)

    return answer


class FakeApi:
    """`POST /api/contacts.import` as scripted: the n-th request gets the n-th answer (the
    last one repeats); keep-alive as the real server does."""

    def __init__(self, *answers: Answer, tls: bool = False) -> None:
        self.answers = list(answers) or [answer_ok]
        self.requests: list[dict[str, Any]] = []
        self.heads: list[bytes] = []
        self._lock = threading.Lock()
        self.server = RawServer(self._handle, tls=tls)

    @property
    def url(self) -> str:
        return self.server.url

    def _handle(self, conn: socket.socket, server: RawServer) -> None:
        while not server.stopped.is_set():
            request = read_request(conn)
            if request is None:
                return
            head, body = request
            payload = json.loads(body)
            with self._lock:
                self.requests.append(payload)
                self.heads.append(head)
                answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
            answer(conn, server, payload["contacts"])


@contextmanager
def fake_api(*answers: Answer, tls: bool = False) -> Iterator[FakeApi]:
    api = FakeApi(*answers, tls=tls)
    with api.server:
        yield api


@contextmanager
def raw_server(
    handle: Handler, *, tls: bool = False, rcvbuf: int | None = None
) -> Iterator[RawServer]:
    with RawServer(handle, tls=tls, rcvbuf=rcvbuf) as server:
        yield server


@contextmanager
def elapsed() -> Iterator[list[float]]:
    """`with elapsed() as took:` then `took[0]` is the block's duration in seconds."""
    took = [0.0]
    started = time.monotonic()
    try:
        yield took
    finally:
        took[0] = time.monotonic() - started
