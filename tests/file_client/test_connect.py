"""Where the key goes and whether anyone is there: the plain-http warning, and a first request
that cannot connect failing at once (while a server that answered once is waited for)."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from audience.cli import app
from audience.file_client.options import EXIT_ERROR, Abort, Options
from audience.file_client.run import run_import
from audience.file_client.sender import CannotConnect, Sender, plain_http_warning
from tests.file_client.conftest import Captured, write_csv
from tests.file_client.servers import (
    CERT,
    RawServer,
    answer_ok,
    elapsed,
    fake_api,
    operations,
    response,
)

CONTACTS = [{"email": "a@example.com"}]
HINT = "; is the server running, and is --url right?"


def warning(host: str) -> str:
    return f"warning: the API key is sent unencrypted over http:// to {host}; use https://"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://db.example.com", "db.example.com"),
        ("http://DB.example.com:8000/base/", "db.example.com"),
        ("http://10.0.0.5:8000", "10.0.0.5"),
        ("http://192.168.1.20", "192.168.1.20"),
        ("http://[2001:db8::1]:8000", "[2001:db8::1]"),
        ("http://localhost.example.com", "localhost.example.com"),
        ("http://127.0.0.1.example.com", "127.0.0.1.example.com"),
    ],
)
def test_plain_http_beyond_this_machine_is_warned_about(url: str, host: str) -> None:
    assert plain_http_warning(url) == warning(host)


@pytest.mark.parametrize(
    "url",
    [
        "https://db.example.com",
        "https://10.0.0.5:8443",
        "http://127.0.0.1:8000",
        "http://127.10.20.30",
        "http://localhost:8000",
        "http://LocalHost.:8000",
        "http://[::1]:8000",
        "http://[::ffff:127.0.0.1]:8000",
    ],
)
def test_no_warning_for_https_or_loopback(url: str) -> None:
    assert plain_http_warning(url) is None


def test_the_warning_comes_before_anything_is_sent(tmp_path: Path) -> None:
    captured = Captured()
    notes_at_first_request: list[list[str]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        notes_at_first_request.append(list(captured.notes))
        contacts = httpx.Response(200, content=request.content).json()["contacts"]
        return httpx.Response(200, json={"operations": operations(contacts), "error": None})

    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    options = Options(path=path, workspace="acme", url="http://db.example.com", key="k")
    with httpx.Client(transport=httpx.MockTransport(handle)) as http:
        assert run_import(options, captured.ui(), http).exit_code == 0
    assert notes_at_first_request[0] == [warning("db.example.com")]
    assert captured.notes.count(warning("db.example.com")) == 1


def test_a_dry_run_sends_no_key_and_warns_of_nothing(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    captured = Captured()
    options = Options(path=path, workspace="acme", url="http://db.example.com", dry_run=True)
    run_import(options, captured.ui())
    assert not [line for line in captured.notes + captured.out if "warning" in line]


def audience(path: Path, url: str) -> Result:
    arguments = ["import", str(path), "-w", "acme", "--url", url, "--key", "key_1"]
    return CliRunner().invoke(app, arguments)


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def test_a_refused_first_connection_fails_at_once(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    with elapsed() as took:
        result = audience(path, url)
    assert result.exit_code == 2
    # With the default 6 retries, back-off alone would take over 20 s.
    assert took[0] < 5
    assert result.stderr == f"error: cannot connect to {url}: connection refused{HINT}\n"
    assert (tmp_path / "c.errors.state.json").exists()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_an_unknown_host_fails_at_once_after_the_warning(tmp_path: Path, scheme: str) -> None:
    url = f"{scheme}://audience.invalid:8000"
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    with elapsed() as took:
        result = audience(path, url)
    assert result.exit_code == 2
    assert took[0] < 5
    lines = result.stderr.splitlines()
    if scheme == "http":
        assert lines.pop(0) == warning("audience.invalid")
    [line] = lines
    assert line.startswith(f"error: cannot connect to {url}: unknown host audience.invalid (")
    assert line.endswith(HINT)


@pytest.mark.parametrize(
    ("port", "problem"),
    [("0", "has an invalid port: 0 (1-65535)"), ("99999", "has an invalid port: 99999 (1-65535)")],
)
def test_an_invalid_port_fails_at_once(tmp_path: Path, port: str, problem: str) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    result = audience(path, f"http://127.0.0.1:{port}")
    assert result.exit_code == 2
    assert result.stderr == f"error: --url 'http://127.0.0.1:{port}' {problem}\n"
    assert not (tmp_path / "c.errors.state.json").exists()


def test_a_loopback_server_gets_no_warning(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    with fake_api() as api:
        result = audience(path, api.url)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_a_first_request_that_times_out_connecting_is_retried() -> None:
    calls: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ConnectTimeout("timed out")
        return httpx.Response(200, json={"operations": operations(CONTACTS), "error": None})

    with httpx.Client(transport=httpx.MockTransport(handle)) as http:
        sender = Sender(http, "http://x.invalid", "k", "acme", pause=lambda delay: False)
        assert len(sender.send(CONTACTS)) == 1
    assert len(calls) == 2


def test_a_first_request_refused_is_not_retried() -> None:
    calls: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    def pause(delay: float) -> bool:
        calls.append(delay)
        return False

    with httpx.Client(transport=httpx.MockTransport(handle)) as http:
        sender = Sender(http, "http://x.invalid", "k", "acme", pause=pause)
        with pytest.raises(CannotConnect):
            sender.send(CONTACTS)
    assert calls == []


def gone_after_one_answer(
    restart_after: float | None,
) -> tuple[Any, list[threading.Timer]]:
    """An answer after which the server stops listening (and listens again later)."""
    timers: list[threading.Timer] = []

    def answer(conn: socket.socket, server: RawServer, contacts: list[dict[str, Any]]) -> None:
        if timers or server.connections > 1:
            answer_ok(conn, server, contacts)
            return
        server.stop_listening()
        body = json.dumps({"operations": operations(contacts), "error": None}).encode()
        conn.sendall(response(200, body, headers="Connection: close\r\n"))
        conn.shutdown(socket.SHUT_RDWR)
        timer = threading.Timer(restart_after or 0, server.listen)
        timers.append(timer)
        if restart_after is not None:
            timer.start()

    return answer, timers


def run(url: str, path: Path, captured: Captured, **options: Any) -> Any:
    settings: dict[str, Any] = {"workspace": "acme", "url": url, "key": "key_1"}
    return run_import(Options(path=path, **{**settings, **options}), captured.ui())


def test_once_the_server_answered_a_refused_connection_is_retried(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [[f"u{i}@example.com"] for i in range(3)])
    answer, timers = gone_after_one_answer(restart_after=1.0)
    captured = Captured()
    with fake_api(answer) as api:
        outcome = run(api.url, path, captured, batch_size=1, concurrency=1, backoff=0.2)
        for timer in timers:
            timer.join()
    assert (outcome.tally.created, outcome.exit_code) == (3, 0)
    retries = [note for note in captured.notes if "retrying in" in note]
    assert retries[0].startswith(f"cannot reach {api.url}: ")
    assert "Connection refused; retrying in " in retries[0]
    assert [len(r["contacts"]) for r in api.requests] == [1, 1, 1]


def test_once_the_server_answered_its_absence_ends_after_the_retries(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [[f"u{i}@example.com"] for i in range(3)])
    answer, _ = gone_after_one_answer(restart_after=None)
    with fake_api(answer) as api, pytest.raises(Abort) as caught:
        run(api.url, path, Captured(), batch_size=1, concurrency=1, retries=2, backoff=0.0)
    assert caught.value.code == EXIT_ERROR
    assert caught.value.message.startswith(f"cannot reach {api.url}: ")
    assert caught.value.message.endswith(
        "; gave up after 3 attempts (1 rows done; run again with --resume to continue)"
    )


def test_an_untrusted_certificate_fails_at_once(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    with fake_api(tls=True) as api, elapsed() as took:
        result = audience(path, api.url)
    assert result.exit_code == 2
    assert took[0] < 5
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: cannot connect to {api.url}: its TLS certificate is not ")
    assert line.endswith(f"trusted (self-signed certificate){HINT}")
    assert api.requests == []


def test_https_verifies_with_ssl_cert_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(CERT))
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"], ["b@example.com"]])
    with fake_api(tls=True) as api:
        result = audience(path, api.url)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.startswith("created 2 · updated 0 · failed 0 · ")
    assert b"Authorization: Bearer key_1" in api.heads[0]


def test_proxy_variables_are_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = f"http://127.0.0.1:{closed_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, nowhere)
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    with fake_api() as api:
        result = audience(path, api.url)
    assert result.exit_code == 0, result.output
    assert len(api.requests) == 1
