"""The overall deadline of a request (`--timeout`), against real slow servers on loopback.

httpx's own read timeout starts again at every byte; these servers send a byte every 50 ms,
or nothing at all, or never read what they are sent. Every request must end by its deadline.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from audience.cli import app
from audience.file_client import command
from audience.file_client.deadline import DeadlineTransport
from audience.file_client.options import EXIT_ERROR, Abort, Options, Outcome, Ui
from audience.file_client.progress import Tally
from audience.file_client.resume import load_state
from audience.file_client.run import run_import
from audience.file_client.sender import (
    DEFAULT_DEADLINE,
    PER_OPERATION,
    Operation,
    Sender,
    Unreachable,
    build_http_client,
)
from tests.file_client.conftest import Captured, write_csv
from tests.file_client.servers import (
    Answer,
    RawServer,
    answer_ok,
    answer_slowly,
    client_tls,
    elapsed,
    fake_api,
    operations,
    raw_server,
    response,
)

DEADLINE = 0.5
#: How far past its deadline a request may end on a loaded machine.
SLACK = 2.5
CONTACTS = [{"email": "a@example.com"}, {"email": "b@example.com"}]


@contextmanager
def http_client(tls: bool) -> Iterator[httpx.Client]:
    """The client of a real run (trusting the tests' certificate for https)."""
    if not tls:
        with build_http_client(1) as http:
            yield http
        return
    transport = DeadlineTransport(httpx.Limits(max_connections=1), client_tls())
    with httpx.Client(transport=transport, timeout=PER_OPERATION) as http:
        yield http


def sender(
    http: httpx.Client, url: str, retries: int = 0, notes: list[str] | None = None
) -> Sender:
    return Sender(
        http,
        url,
        "key_1",
        "acme",
        retries=retries,
        timeout=DEADLINE,
        pause=lambda delay: False,
        on_retry=(notes if notes is not None else []).append,
    )


def late(url: str, attempts: int = 1) -> str:
    return (
        f"no complete answer from {url} within {DEADLINE:g}s (--timeout); "
        f"gave up after {attempts} attempts"
    )


def body_dribbled() -> Answer:
    body = b'{"operations": [], "error": null}' + b" " * 10_000
    return answer_slowly(0.05, head=response(200, body))


def silent(conn: socket.socket, server: RawServer, contacts: list[dict[str, Any]]) -> None:
    server.stopped.wait()


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
@pytest.mark.parametrize(
    "answer",
    [answer_slowly(0.05), body_dribbled(), silent],
    ids=["headers dribbled", "body dribbled", "no answer"],
)
def test_a_slow_answer_is_cut_off_at_the_deadline(tls: bool, answer: Answer) -> None:
    with fake_api(answer, tls=tls) as api, http_client(tls) as http:
        with elapsed() as took, pytest.raises(Unreachable) as caught:
            sender(http, api.url).send(CONTACTS)
        assert caught.value.message == late(api.url)
        assert len(api.requests) == 1
    assert DEADLINE <= took[0] < DEADLINE + SLACK


def wait_for_the_end(conn: socket.socket, server: RawServer) -> None:
    """Accept the connection, then neither read nor answer."""
    server.stopped.wait()


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_a_server_that_reads_nothing_is_cut_off_while_sending(tls: bool) -> None:
    big = [{"email": "a@example.com", "notes": "x" * 16_000_000}]
    # A small receive window, never emptied: the request's body cannot all be sent.
    with raw_server(wait_for_the_end, tls=tls, rcvbuf=4096) as server, http_client(tls) as http:
        with elapsed() as took, pytest.raises(Unreachable) as caught:
            sender(http, server.url).send(big)
        assert caught.value.message == late(server.url)
    assert DEADLINE <= took[0] < DEADLINE + SLACK


def test_a_server_that_never_starts_tls_is_cut_off() -> None:
    with raw_server(wait_for_the_end) as server, http_client(True) as http:
        url = server.url.replace("http://", "https://")
        with elapsed() as took, pytest.raises(Unreachable) as caught:
            sender(http, url).send(CONTACTS)
        assert caught.value.message == late(url)
    assert DEADLINE <= took[0] < DEADLINE + SLACK


def test_a_slow_answer_that_ends_within_the_deadline_is_taken() -> None:
    def slow_but_complete(
        conn: socket.socket, server: RawServer, contacts: list[dict[str, Any]]
    ) -> None:
        body = json.dumps({"operations": operations(contacts), "error": None}).encode()
        answer_slowly(0.002, head=response(200, body))(conn, server, contacts)

    with fake_api(slow_but_complete) as api, build_http_client(1) as http:
        client = sender(http, api.url)
        client.timeout = 30.0
        assert client.send(CONTACTS) == [Operation("create", None)] * 2


def test_the_deadline_holds_on_a_reused_keep_alive_connection() -> None:
    with fake_api(answer_ok, answer_slowly(0.05)) as api, build_http_client(1) as http:
        client = sender(http, api.url)
        assert len(client.send(CONTACTS)) == 2
        with elapsed() as took, pytest.raises(Unreachable, match=r"within 0\.5s"):
            client.send(CONTACTS)
        assert api.server.connections == 1
    assert DEADLINE <= took[0] < DEADLINE + SLACK


def test_a_request_past_its_deadline_is_retried_like_a_connection_error() -> None:
    notes: list[str] = []
    with fake_api(answer_slowly(0.05), answer_ok) as api, build_http_client(1) as http:
        assert len(sender(http, api.url, retries=2, notes=notes).send(CONTACTS)) == 2
        assert len(api.requests) == 2
    assert len(notes) == 1
    assert notes[0].startswith(
        f"no complete answer from {api.url} within 0.5s (--timeout); retrying in "
    )


def run(url: str, path: Path, captured: Captured, **options: Any) -> Outcome:
    settings: dict[str, Any] = {"workspace": "acme", "url": url, "key": "key_1", "backoff": 0.0}
    return run_import(Options(path=path, **{**settings, **options}), captured.ui())


def test_a_run_stopped_by_the_deadline_keeps_its_resume_state(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [[f"u{i}@example.com"] for i in range(6)])
    captured = Captured()
    with fake_api(answer_ok, answer_slowly(0.05)) as api:
        with elapsed() as took, pytest.raises(Abort) as caught:
            run(api.url, path, captured, batch_size=2, concurrency=1, retries=1, timeout=0.5)
        assert caught.value.code == EXIT_ERROR
        assert caught.value.message == (
            f"{late(api.url, attempts=2)} (2 rows done; run again with --resume to continue)"
        )
        assert took[0] < 2 * DEADLINE + SLACK
        assert next(n for n in captured.notes if "retrying in" in n).startswith(
            f"no complete answer from {api.url} within 0.5s"
        )
        state = load_state(tmp_path / "c.errors.state.json")
        assert state is not None and (state.rows_done, state.created) == (2, 2)

        api.answers = [answer_ok]  # the server is well again
        outcome = run(api.url, path, Captured(), batch_size=2, concurrency=1, resume=True)
    assert (outcome.tally.created, outcome.skipped, outcome.exit_code) == (4, 2, 0)
    assert [len(r["contacts"]) for r in api.requests] == [2, 2, 2, 2, 2]
    assert not (tmp_path / "c.errors.state.json").exists()


def test_timeout_defaults_to_120_seconds_and_is_an_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Options] = []

    def record(options: Options, ui: Ui) -> Outcome:
        seen.append(options)
        return Outcome(Tally())

    monkeypatch.setattr(command, "run_import", record)
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    base = ["import", str(path), "-w", "acme", "--key", "k"]
    assert CliRunner().invoke(app, base).exit_code == 0
    assert CliRunner().invoke(app, [*base, "--timeout", "2.5"]).exit_code == 0
    assert [options.timeout for options in seen] == [DEFAULT_DEADLINE, 2.5] == [120.0, 2.5]
    refused = CliRunner().invoke(app, [*base, "--timeout", "0"])
    assert refused.exit_code == 2
    assert "--timeout" in refused.output
