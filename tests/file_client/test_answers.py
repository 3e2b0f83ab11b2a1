"""Answers the client does not understand, and server text that must not reach a terminal raw.

An operation that is not understood fails its contact (exit 1); an answer that is wrong as a
whole stops the run (exit 2, resume state kept). Whatever the server says is shown escaped,
on the terminal and in the errors file.
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from audience.cli import app
from audience.file_client import command
from audience.file_client.batches import Batch, Item
from audience.file_client.errors_file import ErrorsFile
from audience.file_client.resume import State
from audience.file_client.run import Run
from audience.file_client.sender import Operation, Rejected, Sender, Stopped, Unreachable
from audience.file_client.untrusted import describe, printable, server_text
from tests.file_client.conftest import Captured, read_csv, write_csv
from tests.file_client.servers import (
    RawServer,
    answer_json,
    answer_ok,
    answer_with,
    fake_api,
    operations,
    response,
)

ESC = "\x1b"
PWNED = "\x1b[31mPWNED"
CONTACTS = [{"email": "a@example.com"}, {"email": "b@example.com"}]


def mock_sender(
    *answers: Callable[[httpx.Request], httpx.Response], notes: list[str] | None = None
) -> Sender:
    """A sender whose n-th request gets the n-th answer (the last one repeats)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[min(len(seen), len(answers)) - 1](request)

    return Sender(
        httpx.Client(transport=httpx.MockTransport(handle)),
        "http://audience.invalid",
        "key_1",
        "acme",
        retries=1,
        pause=lambda delay: False,
        on_retry=(notes if notes is not None else []).append,
    )


def answering(status: int, payload: Any, headers: dict[str, str] | None = None) -> Any:
    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return lambda request: httpx.Response(status, content=content, headers=headers)


def ops(first: Any, second: Any | None = None) -> dict[str, Any]:
    second = second or {"index": 1, "email": "b@example.com", "action": "update", "error": None}
    return {"operations": [first, second], "error": None}


def send(payload: Any, status: int = 200) -> list[Operation]:
    client = mock_sender(answering(status, payload))
    with client.http:
        return client.send(CONTACTS)


# --- one operation not understood: that contact fails --------------------------------------


@pytest.mark.parametrize(
    ("operation", "problem"),
    [
        ({"index": 0, "action": PWNED}, "action '\\x1b[31mPWNED'"),
        ({"index": 0, "action": "delete"}, "action 'delete'"),
        ({"index": 0, "action": "Create"}, "action 'Create'"),
        ({"index": 0, "email": "a@example.com"}, "no action"),
        ({"index": 0, "action": None}, "action null"),
        ({"index": 0, "action": 5}, "action 5"),
        ({"index": 0, "action": ["create"]}, 'action ["create"]'),
        ("create", "operation 'create'"),
        (None, "operation null"),
        ({"index": 0, "action": "error", "error": {"x": 1}}, 'error {"x":1}'),
        ({"index": 0, "action": "create", "email": 5}, "email 5"),
        ({"index": 0, "action": "create", "error": False}, "error false"),
        ({"index": "0", "action": "create"}, "index '0' for contact 0 of the batch"),
        ({"index": True, "action": "create"}, "index true for contact 0 of the batch"),
        ({"index": 1, "action": "create"}, "index 1 for contact 0 of the batch"),
        ({"index": 0, "action": "x" * 1000}, f"action '{'x' * 60}…'"),
    ],
)
def test_an_operation_not_understood_fails_that_contact(operation: Any, problem: str) -> None:
    assert send(ops(operation)) == [
        Operation("error", f"unexpected answer from the server: {problem}"),
        Operation("update", None),
    ]


def test_extra_keys_in_an_answer_are_ignored() -> None:
    answer = {
        "operations": [
            {"index": 0, "email": "a", "action": "create", "error": None, "changed_fields": []},
            {"action": "update", "lists": ["news"], "changed_fields": ["first_name"]},
        ],
        "error": None,
        "summary": {"created": 1, "updated": 1},
        "dry_run": False,
    }
    assert send(answer) == [Operation("create", None), Operation("update", None)]


def test_a_servers_reason_for_a_contact_is_kept_escaped() -> None:
    error = {"index": 0, "action": "error", "error": "bad\r\n\x1b[2Jvalue\u202e"}
    assert send(ops(error))[0] == Operation("error", "bad\\r\\n\\x1b[2Jvalue\\u202e")


# --- an answer wrong as a whole: the run stops ---------------------------------------------


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"<html>oops</html>", "unexpected answer from the server: JSON is malformed: "),
        ([], "unexpected answer from the server: [] is not a JSON object"),
        ({"operations": {"0": {}}}, 'unexpected answer from the server: operations {"0":{}}'),
        ({"operations": [{"action": "create"}]}, "1 operations for 2 contacts"),
        ({"error": None}, "unexpected answer from the server: 0 operations for 2 contacts"),
        ({"error": f"{ESC}]0;pwned\x07{ESC}[2J"}, "server: \\x1b]0;pwned\\x07\\x1b[2J"),
        ({"error": 5, "operations": []}, "unexpected answer from the server: error 5"),
    ],
)
def test_an_answer_wrong_as_a_whole_stops_the_import(payload: Any, message: str) -> None:
    with pytest.raises(Stopped) as caught:
        send(payload)
    assert type(caught.value) is Stopped
    assert message in caught.value.message
    assert ESC not in caught.value.message


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (401, {"error": f"{ESC}[2J{ESC}[Hbad key"}, "(401): \\x1b[2J\\x1b[Hbad key"),
        (400, f"plain\r{ESC}[1Atext".encode(), "(400): plain\\r\\x1b[1Atext"),
        (403, {"error": "\x9b31m\u2028"}, "answered 403: \\x9b31m\\u2028"),
    ],
)
def test_a_refusal_is_shown_escaped(status: int, body: Any, message: str) -> None:
    with pytest.raises(Rejected) as caught:
        send(body, status)
    assert caught.value.message.endswith(message)


def test_a_retried_server_error_is_shown_escaped_and_cut() -> None:
    notes: list[str] = []
    client = mock_sender(answering(503, {"error": ESC + "c" + "x" * 5000}), notes=notes)
    with client.http, pytest.raises(Unreachable) as caught:
        client.send(CONTACTS)
    assert notes[0].startswith("server error 503: \\x1bc" + "x" * 498 + "…; retrying in ")
    assert ESC not in caught.value.message


def test_printable_escapes_what_a_terminal_would_obey() -> None:
    assert printable("Zoë · naïve → ok ✓") == "Zoë · naïve → ok ✓"
    assert printable(f"{ESC}[31m\x07\x08\x00\x7f") == "\\x1b[31m\\x07\\x08\\x00\\x7f"
    assert printable("a\r\nb\tc") == "a\\r\\nb\\tc"
    assert printable("\x9b\x85\u2028\u2029\u202e\u2066\ufeff") == (
        "\\x9b\\x85\\u2028\\u2029\\u202e\\u2066\\ufeff"
    )
    assert printable("\U000e0001") == "\\U000e0001"
    assert server_text("ab" * 300, limit=3) == "aba…"
    assert describe("x'y") == '"x\'y"'
    assert describe({"a": [1, None]}) == '{"a":[1,null]}'


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_the_errors_file_keeps_reasons_as_one_printable_line(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"e.{fmt}"
    if fmt == "csv":
        errors = ErrorsFile(path, fmt="csv", header=["email"])
        errors.write(2, "a@example.com", f"bad{ESC}[2J\r\nline", ["a@example.com"])
    else:
        errors = ErrorsFile(path, fmt="jsonl")
        errors.write(2, "a@example.com", f"bad{ESC}[2J\r\nline", '{"email": "a@example.com"}')
    errors.close()
    text = path.read_text()
    reason = read_csv(path)[0]["_error"] if fmt == "csv" else json.loads(text)["_error"]
    assert reason == "bad\\x1b[2J\\r\\nline"
    assert ESC not in text and "\\u001b" not in text and "\r" not in text
    assert text.count("\n") == (2 if fmt == "csv" else 1)


# --- the same, as a user runs it: against a hostile server on a real socket ----------------


def audience(path: Path, url: str, *args: str) -> Result:
    arguments = ["import", str(path), "-w", "acme", "--url", url, "--key", "key_1", *args]
    return CliRunner().invoke(app, arguments)


def hostile(contacts: list[dict[str, Any]]) -> dict[str, Any]:
    """created, an unknown action, updated (with keys of a later version), a refusal."""
    answer = operations(contacts)
    answer[1]["action"] = PWNED
    answer[2].update(action="update", changed_fields=["first_name"], lists=[])
    answer[3].update(action="error", error=f"no such thing{ESC}[2J{ESC}[H")
    return {"operations": answer, "error": None, "summary": {}, "dry_run": False}


def test_an_unknown_action_is_a_failed_row_and_exits_1(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [[f"u{i}@example.com"] for i in range(4)])
    with fake_api(answer_with(hostile)) as api:
        result = audience(path, api.url)
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("created 1 · updated 1 · failed 2 · ")
    assert ESC not in result.stdout and ESC not in result.stderr
    errors = tmp_path / "c.errors.csv"
    assert [(row["_line"], row["_error"]) for row in read_csv(errors)] == [
        ("3", "unexpected answer from the server: action '\\x1b[31mPWNED'"),
        ("5", "no such thing\\x1b[2J\\x1b[H"),
    ]
    assert ESC not in errors.read_text()


def test_json_lines_errors_of_a_hostile_answer_are_escaped(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("".join(f'{{"email": "u{i}@example.com"}}\n' for i in range(4)))
    with fake_api(answer_with(hostile)) as api:
        result = audience(path, api.url)
    assert result.exit_code == 1, result.output
    text = (tmp_path / "c.errors.jsonl").read_text()
    assert ESC not in text and "\\u001b" not in text
    assert [json.loads(line)["_error"] for line in text.splitlines()] == [
        "unexpected answer from the server: action '\\x1b[31mPWNED'",
        "no such thing\\x1b[2J\\x1b[H",
    ]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            answer_json(200, {"operations": [], "error": f"{ESC}]0;pwned\x07{ESC}[2J"}),
            "error: unexpected answer from the server: \\x1b]0;pwned\\x07\\x1b[2J",
        ),
        (
            answer_with(lambda contacts: {"operations": operations(contacts)[:1]}),
            "error: unexpected answer from the server: 1 operations for 2 contacts",
        ),
        (answer_json(200, b"\x1b[2J not json"), "error: unexpected answer from the server: "),
        (
            answer_json(401, {"error": f"{ESC}[2J{ESC}[Hinvalid API key"}),
            "error: the server refused the API key (401): \\x1b[2J\\x1b[Hinvalid API key",
        ),
    ],
    ids=["error", "count", "not JSON", "401"],
)
def test_a_hostile_answer_stops_the_run_escaped(tmp_path: Path, answer: Any, message: str) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"], ["b@example.com"]])
    with fake_api(answer) as api:
        result = audience(path, api.url)
    assert result.exit_code == 2
    assert message in result.stderr
    assert ESC not in result.stdout and ESC not in result.stderr
    assert (tmp_path / "c.errors.state.json").exists()


def test_a_retry_note_from_a_hostile_server_is_escaped(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    busy = answer_json(503, {"error": f"busy{ESC}[2K\r"}, headers="Retry-After: 0\r\n")
    with fake_api(busy, answer_ok) as api:
        result = audience(path, api.url)
    assert result.exit_code == 0, result.output
    assert "server error 503: busy\\x1b[2K\\r; retrying in 0.0s" in result.stderr
    assert ESC not in result.stderr


def test_a_hostile_reason_phrase_is_escaped(tmp_path: Path) -> None:
    def teapot(conn: socket.socket, server: RawServer, contacts: list[dict[str, Any]]) -> None:
        conn.sendall(response(418, b"", reason="I'm \x9b5ma teapot"))

    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    with fake_api(teapot) as api:
        result = audience(path, api.url)
    assert result.exit_code == 2
    assert "\x9b" not in result.stderr
    assert "error: the server answered 418: " in result.stderr


def test_a_terminal_gets_escaped_notes(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, highlight=False, width=200)
    monkeypatch.setattr(command, "Console", lambda **kwargs: console)
    ui = command.terminal_ui()
    ui.note(f"error: {ESC}[2J{ESC}[Hcleared")
    assert f"{ESC}[2J" not in screen.getvalue()
    assert "error: \\x1b[2J\\x1b[Hcleared" in screen.getvalue()


def test_a_run_never_counts_an_action_it_does_not_know(tmp_path: Path) -> None:
    errors = ErrorsFile(tmp_path / "c.errors.csv", fmt="csv", header=["email"])
    view = Captured().ui().progress(None, 0)
    run = Run(errors, State(sha256="", options=""), tmp_path / "state.json", view)
    items = [Item(2, ["a@example.com"], "a@example.com", contact={"email": "a@example.com"})]
    run.settle(Batch(0, items, 1), [Operation(PWNED, None)])
    errors.close()
    assert (run.tally.created, run.tally.updated, run.tally.failed) == (0, 0, 1)
    [row] = read_csv(tmp_path / "c.errors.csv")
    assert row["_error"] == "unexpected answer from the server: action '\\x1b[31mPWNED'"
