"""`audience import` against the real app served on a port, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from audience.file_client.options import EXIT_ERROR, EXIT_INTERRUPTED, Abort
from audience.file_client.resume import load_state
from audience.file_client.sender import DEFAULT_DEADLINE
from tests.file_client.conftest import Captured, Live, read_csv, run, write_csv
from tests.file_client.servers import elapsed

HEADER = ["E-mail Address", "First Name", "Time Zone", "Score", "Joined", "Prefs", "Address"]
MAP = ("Score=custom_number_1", "Joined=custom_datetime_1", "Prefs=custom_json_1")


def good_row(i: int) -> list[str]:
    return [
        f"user{i}@example.com",
        f"First{i}",
        "Europe/Paris",
        str(i),
        "2024-05-01 09:30Z",
        json.dumps({"n": i}),
        f"{i} Main St\nFloor {i % 7}",
    ]


class Flaky(httpx.BaseTransport):
    """Answers 503 to the first `failures` requests, then passes requests to the server."""

    def __init__(self, failures: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.failures = failures
        self.calls = 0
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.calls += 1
            fail = self.calls <= self.failures
        if fail:
            return httpx.Response(503, json={"error": "service unavailable"})
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class DiesAfter(httpx.BaseTransport):
    """Passes `alive` requests to the server, then the connection is refused for good."""

    def __init__(self, alive: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.alive = alive
        self.calls = 0
        self.sizes: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls > self.alive:
            raise httpx.ConnectError("Connection refused")
        self.sizes.append(len(json.loads(request.read())["contacts"]))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_a_full_import_creates_updates_and_reports_failures(live: Live, tmp_path: Path) -> None:
    existing = write_csv(
        tmp_path / "existing.csv", ["email"], [[f"user{i}@example.com"] for i in range(20)]
    )
    assert run(live, existing).tally.created == 20

    rows = [good_row(i) for i in range(120)]
    rows[30][3] = "thirty"  # the converter refuses: never sent
    rows[31][4] = "next tuesday"  # likewise
    rows[32][0] = ""  # no email
    rows[50][0] = "not-an-email"  # the server refuses
    rows[51][2] = "Mars/Olympus"  # the server refuses
    path = write_csv(tmp_path / "contacts.csv", HEADER, rows)
    captured = Captured()
    outcome = run(live, path, captured, mappings=MAP, batch_size=25, concurrency=3)

    assert (outcome.tally.created, outcome.tally.updated, outcome.tally.failed) == (95, 20, 5)
    assert outcome.exit_code == 1
    assert outcome.errors_path == tmp_path / "contacts.errors.csv"
    assert captured.out[-1].startswith("created 95 · updated 20 · failed 5 · skipped 0 · ")
    assert captured.done[-1] == 120
    assert live.count() == 115
    contact = live.get("USER7@example.com")
    assert contact is not None
    assert contact["first_name"] == "First7"
    assert contact["timezone"] == "Europe/Paris"
    assert contact["custom_number_1"] == 7
    assert contact["custom_datetime_1"] == "2024-05-01T09:30:00Z"
    assert contact["custom_json_1"] == {"n": 7}
    assert contact["address_line_1"] == "7 Main St\nFloor 0"
    assert live.get("user30@example.com") is None

    failures = read_csv(outcome.errors_path)
    # Line numbers count the two lines of every earlier (quoted, multi-line) address.
    assert [(f["_line"], f["_email"], f["_error"]) for f in failures] == [
        ("62", "user30@example.com", "custom_number_1: expected a number, got 'thirty'"),
        (
            "64",
            "user31@example.com",
            "custom_datetime_1: expected a date or date-time such as 2024-05-01 or "
            "2024-05-01T09:30:00Z, got 'next tuesday'",
        ),
        ("66", "", "email is required"),
        ("102", "not-an-email", "invalid email format"),
        (
            "104",
            "user51@example.com",
            "timezone: unknown time zone 'Mars/Olympus' (expected an IANA name)",
        ),
    ]
    assert [f["First Name"] for f in failures] == [
        "First30",
        "First31",
        "First32",
        "First50",
        "First51",
    ]
    assert not (tmp_path / "contacts.errors.state.json").exists()


def test_the_errors_file_once_fixed_imports_as_is(live: Live, tmp_path: Path) -> None:
    rows = [good_row(i) for i in range(10)]
    rows[2][3] = "3,5"
    rows[6][0] = "six@"
    path = write_csv(tmp_path / "contacts.csv", HEADER, rows)
    first = run(live, path, mappings=MAP, batch_size=4)
    assert first.tally.failed == 2
    errors = tmp_path / "contacts.errors.csv"
    text = errors.read_text(encoding="utf-8")
    errors.write_text(text.replace(',"3,5",', ",3.5,"), encoding="utf-8")

    again = run(live, errors, mappings=MAP)
    assert (again.tally.created, again.tally.failed) == (1, 1)
    contact = live.get("user2@example.com")
    assert contact is not None and contact["custom_number_1"] == 3.5
    assert contact["address_line_1"] == "2 Main St\nFloor 2"
    [still] = read_csv(tmp_path / "contacts.errors.errors.csv")
    assert (still["_line"], still["_error"], still["E-mail Address"]) == (
        "4",
        "invalid email format",
        "six@",
    )


def test_empty_cells_keep_stored_values_unless_empty_clears(live: Live, tmp_path: Path) -> None:
    full = write_csv(
        tmp_path / "full.csv", ["email", "first_name", "phone"], [["a@example.com", "Ann", "+1555"]]
    )
    run(live, full)
    sparse = write_csv(
        tmp_path / "sparse.csv", ["email", "first_name", "phone"], [["a@example.com", "", "+1666"]]
    )
    assert run(live, sparse).tally.updated == 1
    contact = live.get("a@example.com")
    assert contact is not None and (contact["first_name"], contact["phone"]) == ("Ann", "+1666")
    assert run(live, sparse, empty_clears=True).tally.updated == 1
    contact = live.get("a@example.com")
    assert contact is not None and (contact["first_name"], contact["phone"]) == (None, "+1666")


def test_lists_are_subscribed(live: Live, tmp_path: Path) -> None:
    live.create_list("newsletter")
    live.create_list("product")
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"], ["b@example.com"]])
    assert run(live, path, lists=("newsletter", "product")).exit_code == 0
    contact = live.get("b@example.com")
    assert contact is not None
    assert {(m["list_id"], m["status"]) for m in contact["contact_lists"]} == {
        ("newsletter", "active"),
        ("product", "active"),
    }


def test_a_batch_is_retried_after_a_503(live: Live, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [[f"u{i}@example.com"] for i in range(30)])
    transport = Flaky(failures=2)
    captured = Captured()
    with httpx.Client(transport=transport) as http:
        outcome = run(live, path, captured, http, batch_size=10, concurrency=1)
    assert (outcome.tally.created, outcome.tally.failed, outcome.exit_code) == (30, 0, 0)
    assert transport.calls == 3 + 2
    retries = [note for note in captured.notes if "retrying in" in note]
    assert len(retries) == 2
    assert retries[0].startswith("server error 503: service unavailable; retrying in ")
    assert live.count() == 30


def test_an_interrupted_run_resumes_where_it_stopped(live: Live, tmp_path: Path) -> None:
    rows = [[f"u{i}@example.com", "x" if i in (3, 17) else str(i)] for i in range(50)]
    path = write_csv(tmp_path / "c.csv", ["email", "custom_number_1"], rows)
    dying = DiesAfter(alive=2)
    with httpx.Client(transport=dying) as http, pytest.raises(Abort) as caught:
        run(live, path, http=http, batch_size=10, concurrency=1, retries=1)
    assert caught.value.code == EXIT_ERROR
    assert "cannot reach" in caught.value.message
    assert "20 rows done; run again with --resume to continue" in caught.value.message
    state = load_state(tmp_path / "c.errors.state.json")
    assert state is not None and (state.rows_done, state.created, state.failed) == (20, 18, 2)
    assert live.count() == 18

    counting = DiesAfter(alive=1000)
    captured = Captured()
    with httpx.Client(transport=counting) as http:
        outcome = run(live, path, captured, http, batch_size=10, concurrency=2, resume=True)
    assert counting.sizes == [10, 10, 10]
    assert (outcome.tally.created, outcome.skipped, outcome.earlier_failed) == (30, 20, 2)
    assert outcome.exit_code == 1
    assert "resuming after row 20 of an earlier run" in captured.notes
    assert live.count() == 48
    assert [f["_line"] for f in read_csv(tmp_path / "c.errors.csv")] == ["5", "19"]
    assert not (tmp_path / "c.errors.state.json").exists()


def test_resume_starts_over_when_the_file_changed(live: Live, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [[f"u{i}@example.com"] for i in range(20)])
    with httpx.Client(transport=DiesAfter(alive=1)) as http, pytest.raises(Abort):
        run(live, path, http=http, batch_size=5, concurrency=1, retries=0)
    write_csv(path, ["email"], [[f"v{i}@example.com"] for i in range(20)])
    captured = Captured()
    outcome = run(live, path, captured, batch_size=5, resume=True)
    assert (outcome.tally.created, outcome.skipped) == (20, 0)
    assert any("the file changed" in note for note in captured.notes)


def test_an_interrupt_keeps_the_state_and_exits_130(live: Live, tmp_path: Path) -> None:
    class Interrupting(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            raise KeyboardInterrupt

    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    with httpx.Client(transport=Interrupting()) as http, pytest.raises(Abort) as caught:
        run(live, path, http=http)
    assert caught.value.code == EXIT_INTERRUPTED
    assert (tmp_path / "c.errors.state.json").exists()


def test_duplicates_across_batches_are_applied_in_file_order(live: Live, tmp_path: Path) -> None:
    rows = [[" Dup@Example.com " if i % 2 else "dup@example.com", f"v{i}"] for i in range(24)]
    path = write_csv(tmp_path / "c.csv", ["email", "first_name"], rows)
    outcome = run(live, path, batch_size=1, concurrency=4)
    assert (outcome.tally.created, outcome.tally.updated) == (1, 23)
    contact = live.get("dup@example.com")
    assert contact is not None and contact["first_name"] == "v23"


def test_a_refused_key_stops_with_a_clear_message(live: Live, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    with pytest.raises(Abort) as caught:
        run(live, path, key="aud_wrong")
    assert caught.value.code == EXIT_ERROR
    assert caught.value.message.startswith("the server refused the API key (401): ")
    assert live.count() == 0


def test_a_request_level_400_stops_with_the_servers_message(live: Live, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    with pytest.raises(Abort) as caught:
        run(live, path, lists=("nope",))
    assert caught.value.message.startswith(
        "the server rejected the request (400): list not found: nope"
    )


def test_an_unreachable_server_is_a_connection_error(live: Live, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    with socket_closed() as url, pytest.raises(Abort) as caught:
        run(live, path, url=url, retries=1)
    assert caught.value.code == EXIT_ERROR
    assert caught.value.message == (
        f"cannot connect to {url}: connection refused; is the server running, and is --url right?"
    )


def test_json_lines(live: Live, tmp_path: Path) -> None:
    lines = [
        {"email": "a@example.com", "custom_number_1": 1.5, "custom_json_1": {"k": [1]}},
        {"email": "b@example.com", "custom_number_1": "1.5"},
        {"first_name": "no email"},
        {"email": "c@example.com", "city": "Rome", "_error": "old reason"},
    ]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n{oops\n")
    captured = Captured()
    outcome = run(live, path, captured)
    assert (outcome.tally.created, outcome.tally.failed) == (2, 3)
    contact = live.get("a@example.com")
    assert contact is not None and contact["custom_json_1"] == {"k": [1]}
    assert "keys not imported (no such field): city" in captured.notes
    errors = [json.loads(line) for line in (tmp_path / "c.errors.jsonl").read_text().splitlines()]
    assert [(e["_line"], e["_error"]) for e in errors] == [
        (2, "custom_number_1: expected a number"),
        (3, "email is required"),
        (5, "invalid JSON: JSON is malformed: object keys must be strings (byte 1)"),
    ]
    assert errors[0]["custom_number_1"] == "1.5"


def test_a_dry_run_sends_nothing(live: Live, tmp_path: Path) -> None:
    rows = [good_row(i) for i in range(5)]
    rows[1][0] = "bad@"
    rows[3][4] = "soon"
    path = write_csv(tmp_path / "c.csv", [*HEADER, "City"], [[*r, "Paris"] for r in rows])
    captured = Captured()
    outcome = run(live, path, captured, mappings=MAP, dry_run=True, key=None)
    assert outcome.exit_code == 1
    assert live.count() == 0
    assert "  'E-mail Address' → email" in captured.out
    assert "  line 4: invalid email format" in captured.out
    assert any(
        line.startswith("  line 8: custom_datetime_1: expected a date") for line in captured.out
    )
    assert any("'City'" in line and "not imported" in line for line in captured.out)
    assert captured.out[-1] == "checked 5 rows: 3 valid, 2 failed; nothing was sent"
    assert not (tmp_path / "c.errors.csv").exists()


@contextmanager
def socket_closed() -> Iterator[str]:
    """The URL of a port where nothing listens."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    yield f"http://127.0.0.1:{port}"


def test_a_10000_contact_batch_ends_well_within_the_default_deadline(
    live: Live, tmp_path: Path
) -> None:
    rows = [[f"u{i}@example.com", f"First{i}", "Europe/Paris", str(i)] for i in range(10_000)]
    path = write_csv(tmp_path / "c.csv", ["email", "first_name", "timezone", "Score"], rows)
    captured = Captured()
    with elapsed() as took:
        outcome = run(live, path, captured, mappings=("Score=custom_number_1",), batch_size=10_000)
    assert (outcome.tally.created, outcome.exit_code) == (10_000, 0)
    assert not [note for note in captured.notes if "retrying" in note]
    assert took[0] < DEFAULT_DEADLINE / 4
