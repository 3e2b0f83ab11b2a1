"""`audience import FILE --server-side`: the file uploaded as an import job and followed to its
end, against the real app with an import worker, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import json
import os
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from audience.cli import app
from audience.config import Settings
from audience.file_client import server_side as server_side_module
from audience.file_client.options import EXIT_ERROR, EXIT_INTERRUPTED, Abort, Options, Ui
from audience.file_client.progress import ProgressView, Tally
from audience.file_client.resume import State, save_state
from audience.file_client.run import run_import
from tests.conftest import SECRET
from tests.file_client.conftest import Captured, Live, read_csv, run, write_csv
from tests.file_client.servers import RawServer, elapsed, raw_server, read_request, response
from tests.file_client.test_import_live import HEADER, MAP, good_row


@pytest.fixture
def workers() -> int:
    """Import workers of the server (a test parametrizes it to have none)."""
    return 1


@pytest.fixture
def settings(database_url: str, workers: int) -> Settings:
    """The tests' settings, with an import worker that looks for jobs often, in small
    batches (the progress has steps to show)."""
    return Settings(
        database_url=database_url,
        secret_key=SECRET,
        auto_migrate=False,
        import_workers=workers,
        import_poll_seconds=0.05,
        import_batch_size=40,
    )


@pytest.fixture(autouse=True)
def no_audience_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AUDIENCE_"):
            monkeypatch.delenv(name)


def server_side(live: Live, path: Path, captured: Captured | None = None, **options: Any) -> Any:
    return run(live, path, captured, server_side=True, poll_seconds=0.05, **options)


def audience(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["import", *map(str, args)])


def against(live: Live) -> tuple[str, ...]:
    return ("--workspace", live.tenant.id, "--url", live.url, "--key", live.tenant.key)


def jobs(live: Live) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{live.url}/api/imports.list",
        params={"workspace_id": live.tenant.id},
        headers=live.tenant.headers,
    )
    response.raise_for_status()
    listed: list[dict[str, Any]] = response.json()["imports"]
    return listed


def bad_rows() -> list[list[str]]:
    """120 rows of HEADER, 5 of which fail: 3 in the converter, 2 on the server."""
    rows = [good_row(i) for i in range(120)]
    rows[30][3] = "thirty"
    rows[31][4] = "next tuesday"
    rows[32][0] = ""
    rows[50][0] = "not-an-email"
    rows[51][2] = "Mars/Olympus"
    return rows


# --- what a job does, and the errors file it leaves ---------------------------------------------


def test_a_csv_file_imports_as_a_job_with_exact_counts(live: Live, tmp_path: Path) -> None:
    existing = write_csv(
        tmp_path / "existing.csv", ["email"], [[f"user{i}@example.com"] for i in range(20)]
    )
    assert server_side(live, existing).tally.created == 20
    path = write_csv(tmp_path / "contacts.csv", HEADER, bad_rows())
    captured = Captured()
    outcome = server_side(live, path, captured, mappings=MAP)

    assert (outcome.tally.created, outcome.tally.updated, outcome.tally.failed) == (95, 20, 5)
    assert outcome.exit_code == 1
    assert outcome.errors_path == tmp_path / "contacts.errors.csv"
    assert captured.out[-1].startswith("created 95 · updated 20 · failed 5 · skipped 0 · ")
    assert f"failed rows, with their reasons: {tmp_path / 'contacts.errors.csv'}" in captured.notes
    assert any(note.startswith("uploaded contacts.csv: import imp_") for note in captured.notes)
    # The total is shown once the server has counted the rows; the last step is all of them.
    assert captured.totals[-1] == 120
    assert captured.done[-1] == 120
    assert live.count() == 115
    contact = live.get("user7@example.com")
    assert contact is not None
    assert (contact["first_name"], contact["custom_number_1"]) == ("First7", 7)
    assert contact["address_line_1"] == "7 Main St\nFloor 0"

    failures = read_csv(tmp_path / "contacts.errors.csv")
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
    assert [f["First Name"] for f in failures] == [f"First{i}" for i in (30, 31, 32, 50, 51)]
    [job, _] = jobs(live)
    assert (job["status"], job["total_rows"], job["created"], job["errors"]) == (
        "completed",
        120,
        95,
        5,
    )


def test_unchanged_contacts_count_as_updated_as_they_do_client_side(
    live: Live, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "c.csv", ["Email", "First Name"], [["a@example.com", "A"]])
    assert server_side(live, path).tally.created == 1
    captured = Captured()
    again = server_side(live, path, captured)
    assert (again.tally.created, again.tally.updated, again.exit_code) == (0, 1, 0)
    assert "1 of the updated contacts were already up to date" in captured.notes
    assert run(live, path).tally.updated == 1  # the client-side path counts it the same


def test_the_errors_file_is_the_one_the_client_side_path_writes(live: Live, tmp_path: Path) -> None:
    """Same input (`;`, a BOM, quoted line breaks, a short and a long row), same file."""
    rows = bad_rows()[25:60]
    rows[0] = rows[0][:3]  # a short row: the errors file pads it as the client does
    rows[1][0] = "bad@"
    rows[1].append("an extra cell")
    path = tmp_path / "contacts.csv"
    write_csv(path, [*HEADER, "_error"], [[*row[:7], "old reason", *row[7:]] for row in rows])
    text = path.read_text(encoding="utf-8").replace(",", ";")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())

    server = server_side(live, path, errors=tmp_path / "server.csv", mappings=MAP)
    client = run(live, path, errors=tmp_path / "client.csv", mappings=MAP)
    assert server.tally.failed == client.tally.failed == 7
    assert (tmp_path / "server.csv").read_bytes() == (tmp_path / "client.csv").read_bytes()
    first = (tmp_path / "server.csv").read_bytes().splitlines()[0]
    assert first == b"\xef\xbb\xbf_line;_email;_error;" + ";".join(HEADER).encode()


JSONL = [
    {"email": "a@example.com", "first_name": "A", "Score": 1},
    {"email": "b@example.com", "custom_number_1": "x"},
    {"email": "not-an-email"},
    "{broken",
    {"email": "c@example.com", "Score": 2},
]


def write_jsonl(path: Path) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in JSONL]
    path.write_text("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n")
    return path


def test_a_json_lines_file_imports_as_a_job(live: Live, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "people.jsonl")
    outcome = server_side(live, path, mappings=("Score=custom_number_1",))
    assert (outcome.tally.created, outcome.tally.updated, outcome.tally.failed) == (2, 0, 3)
    assert outcome.errors_path == tmp_path / "people.errors.jsonl"
    written = [json.loads(line) for line in outcome.errors_path.read_text().splitlines()]
    assert [(w["_line"], w["_email"]) for w in written] == [
        (2, "b@example.com"),
        (3, "not-an-email"),
        (5, ""),
    ]
    assert written[0]["custom_number_1"] == "x"
    assert written[2]["_raw"] == "{broken"
    contact = live.get("c@example.com")
    assert contact is not None
    assert contact["custom_number_1"] == 2

    client = run(live, path, errors=tmp_path / "client.jsonl", mappings=("Score=custom_number_1",))
    assert client.tally.failed == 3
    assert (tmp_path / "client.jsonl").read_bytes() == outcome.errors_path.read_bytes()


@pytest.mark.parametrize("side", ["client", "server"])
def test_json_lines_errors_named_csv_are_csv(live: Live, tmp_path: Path, side: str) -> None:
    path = write_jsonl(tmp_path / "people.jsonl")
    errors = tmp_path / "bad.csv"
    outcome = (server_side if side == "server" else run)(live, path, errors=errors)
    assert outcome.tally.failed == 3
    assert outcome.errors_path == errors
    assert errors.read_text().splitlines()[0] == "_line,_email,_error,_raw"
    failures = read_csv(errors)
    assert [(f["_line"], f["_email"], f["_raw"]) for f in failures] == [
        ("2", "b@example.com", json.dumps(JSONL[1])),
        ("3", "not-an-email", json.dumps(JSONL[2])),
        ("5", "", "{broken"),
    ]
    assert failures[0]["_error"].startswith("custom_number_1: expected a number")
    with pytest.raises(Abort) as refused:  # for reading: its lines are in `_raw`
        run(live, errors)
    assert refused.value.message.startswith("no column maps to email")


def test_a_gzip_file_is_uploaded_as_it_is(live: Live, tmp_path: Path) -> None:
    plain = write_csv(tmp_path / "plain.csv", HEADER, bad_rows())
    path = tmp_path / "contacts.csv.gz"
    path.write_bytes(gzip.compress(plain.read_bytes()))
    outcome = server_side(live, path, mappings=MAP)
    assert (outcome.tally.created, outcome.tally.failed) == (115, 5)
    assert outcome.errors_path == tmp_path / "contacts.csv.errors.csv"
    client = run(live, path, errors=tmp_path / "client.csv", mappings=MAP)
    assert outcome.errors_path.read_bytes() == (tmp_path / "client.csv").read_bytes()
    assert outcome.errors_path.read_text().startswith("_line,_email,_error,E-mail Address,")
    assert client.tally.updated == 115


def test_options_reach_the_job(live: Live, tmp_path: Path) -> None:
    live.create_list("news")
    run(live, write_csv(tmp_path / "e.csv", ["email", "first_name"], [["a@example.com", "Ann"]]))
    path = write_csv(
        tmp_path / "c.csv",
        ["Email", "Mail 2", "Seen", "Amount", "Vorname"],
        [["a@example.com", "x", "2024-05-01 09:30", "1.234,5", "Bo"]],
    )
    outcome = server_side(
        live,
        path,
        lists=("news",),
        list_status="unsubscribed",
        merge="fill_blanks",
        mappings=("Seen=custom_datetime_1", "Amount=custom_number_1", "Mail 2="),
        timezone="Europe/Berlin",
        decimal_comma=True,
    )
    assert (outcome.tally.updated, outcome.exit_code) == (1, 0)
    contact = live.get("a@example.com")
    assert contact is not None
    assert contact["first_name"] == "Ann"  # fill_blanks: a stored value stays
    assert contact["custom_datetime_1"] == "2024-05-01T07:30:00Z"
    assert contact["custom_number_1"] == 1234.5
    assert [(m["list_id"], m["status"]) for m in contact["contact_lists"]] == [
        ("news", "unsubscribed")
    ]

    emptied = write_csv(tmp_path / "d.csv", ["Email", "Amount"], [["a@example.com", ""]])
    cleared = server_side(live, emptied, empty_clears=True, mappings=("Amount=custom_number_1",))
    assert cleared.exit_code == 0
    contact = live.get("a@example.com")
    assert contact is not None
    assert contact["custom_number_1"] is None


def test_merge_and_list_status_work_client_side_too(live: Live, tmp_path: Path) -> None:
    live.create_list("news")
    run(live, write_csv(tmp_path / "e.csv", ["email", "first_name"], [["a@example.com", "Ann"]]))
    path = write_csv(
        tmp_path / "c.csv", ["email", "first_name", "last_name"], [["a@example.com", "Bo", "B"]]
    )
    outcome = run(live, path, merge="fill_blanks", lists=("news",), list_status="unsubscribed")
    assert (outcome.tally.updated, outcome.exit_code) == (1, 0)
    contact = live.get("a@example.com")
    assert contact is not None
    assert (contact["first_name"], contact["last_name"]) == ("Ann", "B")
    assert [(m["list_id"], m["status"]) for m in contact["contact_lists"]] == [
        ("news", "unsubscribed")
    ]


# --- how a job ends ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("email,first_name\nzoe@example.com,Zo\xeb\n".encode("latin-1"), "the file is not UTF-8"),
        (gzip.compress(b"email\na@example.com\n" * 100)[:40], "the file cannot be decompressed"),
    ],
    ids=["latin-1", "truncated-gzip"],
)
def test_a_file_the_server_cannot_read_fails_its_job(
    live: Live, tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(content)
    with pytest.raises(Abort) as failed:
        server_side(live, path)
    assert failed.value.code == EXIT_ERROR
    assert failed.value.message.startswith("import imp_")
    assert f" failed: {reason}" in failed.value.message


def test_a_failed_job_prints_its_error_and_exits_2(live: Live, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["Name", "Phone"], [["Ann", "+49 30 1234567"]])
    result = audience(path, *against(live), "--server-side")
    assert result.exit_code == EXIT_ERROR, result.output
    assert "error: import imp_" in result.stderr
    assert (
        "failed: no column maps to email; name one with --map 'COLUMN=email' "
        "(columns: Name, Phone)\n" in result.stderr
    )
    assert result.stdout == ""
    assert not (tmp_path / "c.errors.csv").exists()
    [job] = jobs(live)
    assert job["status"] == "failed"


def test_the_command_exits_0_or_1_as_the_client_side_one(live: Live, tmp_path: Path) -> None:
    good = write_csv(tmp_path / "good.csv", ["Email"], [["a@example.com"], ["b@example.com"]])
    result = audience(good, *against(live), "--server-side")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("created 2 · updated 0 · failed 0 · skipped 0 · ")
    assert result.stdout.count("\n") == 1
    assert not (tmp_path / "good.errors.csv").exists()

    bad = write_csv(tmp_path / "bad.csv", ["Email"], [["c@example.com"], ["nope"]])
    result = audience(bad, *against(live), "--server-side")
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("created 1 · updated 0 · failed 1 · ")
    assert (tmp_path / "bad.errors.csv").read_text().splitlines() == [
        "_line,_email,_error,Email",
        "3,nope,invalid email format,nope",
    ]


def test_a_dry_run_job_writes_nothing(live: Live, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", HEADER, bad_rows())
    result = audience(path, *against(live), "--server-side", "--dry-run", *_maps())
    assert result.exit_code == 1, result.output
    assert "created 115 · updated 0 · failed 5 · skipped 0 · " in result.stdout
    assert "  line 62: custom_number_1: expected a number, got 'thirty'" in result.stdout
    assert "dry run on the server: nothing was written" in result.stderr
    assert live.count() == 0
    assert not (tmp_path / "c.errors.csv").exists()  # as client-side: only --errors is written
    [job] = jobs(live)
    assert (job["dry_run"], job["created"]) == (True, 115)

    errors = tmp_path / "dry.csv"
    result = audience(
        path, *against(live), "--server-side", "--dry-run", "--errors", errors, *_maps()
    )
    assert result.exit_code == 1, result.output
    assert [f["_line"] for f in read_csv(errors)] == ["62", "64", "66", "102", "104"]
    assert live.count() == 0


def _maps() -> list[str]:
    return [arg for spec in MAP for arg in ("--map", spec)]


class InterruptingUi:
    """A Ui whose progress view is interrupted (Ctrl-C) at its first step."""

    def __init__(self, captured: Captured) -> None:
        self.captured = captured

    def ui(self) -> Ui:
        def progress(total: int | None, start: int) -> ProgressView:
            return self

        return Ui(out=self.captured.out.append, note=self.captured.notes.append, progress=progress)

    def update(self, done: int, tally: Tally, total: int | None = None) -> None:
        raise KeyboardInterrupt

    def close(self) -> None:
        pass


def test_ctrl_c_cancels_the_job(live: Live, tmp_path: Path) -> None:
    rows = [[f"u{i}@example.com"] for i in range(20_000)]
    rows[3] = ["nope"]
    path = write_csv(tmp_path / "big.csv", ["Email"], rows)
    captured = Captured()
    options = Options(
        path=path,
        workspace=live.tenant.id,
        url=live.url,
        key=live.tenant.key,
        server_side=True,
        poll_seconds=0.05,
    )
    with pytest.raises(Abort) as stopped:
        run_import(options, InterruptingUi(captured).ui())
    assert stopped.value.code == EXIT_INTERRUPTED
    assert " cancelled: what its first " in stopped.value.message
    assert stopped.value.message.endswith("stays, the rest of the file is not imported")
    assert any(note.startswith("interrupted: cancelling import imp_") for note in captured.notes)
    [job] = jobs(live)
    assert job["status"] == "cancelled"
    assert job["processed_rows"] < 20_000
    assert live.count() == job["created"]


# --- what is refused ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--batch-size", "10"), "--batch-size"),
        (("--concurrency", "2"), "--concurrency"),
        (("--resume",), "--resume"),
    ],
)
def test_client_side_options_are_refused(tmp_path: Path, args: tuple[str, ...], flag: str) -> None:
    path = write_csv(tmp_path / "c.csv", ["Email"], [["a@example.com"]])
    nowhere = ("-w", "acme", "--key", "k", "--url", "http://127.0.0.1:9")
    result = audience(path, *nowhere, "--server-side", *args)
    assert result.exit_code == 2
    output = " ".join(result.output.replace("│", " ").split())
    assert f"Invalid value for '{flag}': not used with --server-side" in output


def test_a_refused_upload_stops_with_the_servers_message(live: Live, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["Email"], [["a@example.com"]])
    with pytest.raises(Abort) as refused:
        server_side(live, path, lists=("missing",))
    assert refused.value.message == "the server answered 400: list not found: missing"
    with pytest.raises(Abort) as refused:
        server_side(live, path, key="nope")
    assert refused.value.message.startswith("the server refused the API key (401): ")
    assert jobs(live) == []


def test_a_stale_client_side_resume_state_is_discarded(live: Live, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["Email"], [["a@example.com"]])
    state = tmp_path / "c.errors.state.json"
    save_state(state, State(sha256="x", options="y", rows_done=5))
    captured = Captured()
    assert server_side(live, path, captured).exit_code == 0
    assert not state.exists()
    assert f"starting over; an interrupted run's progress is discarded ({state})" in captured.notes


# --- the upload, and a server that goes away ------------------------------------------------


class Recording(httpx.BaseTransport):
    """Passes requests to the server, keeping each one's path and the sizes of the pieces its
    body was sent in; answers 503 to the first `unavailable` looks at a job, and with
    `lost`, every look at a job is a refused connection."""

    def __init__(self, unavailable: int = 0, lost: bool = False) -> None:
        self.inner = httpx.HTTPTransport()
        self.unavailable, self.lost = unavailable, lost
        self.paths: list[str] = []
        self.pieces: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if request.url.path == "/api/imports.get":
            if self.lost:
                raise httpx.ConnectError("Connection refused")
            if self.unavailable:
                self.unavailable -= 1
                return httpx.Response(503, json={"error": "service unavailable"})
        if request.url.path == "/api/imports.create":
            assert isinstance(request.stream, httpx.SyncByteStream)
            pieces = list(request.stream)
            self.pieces = [len(piece) for piece in pieces]
            request = httpx.Request(
                request.method, request.url, headers=request.headers, content=b"".join(pieces)
            )
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_the_file_is_streamed_from_disk(live: Live, tmp_path: Path) -> None:
    rows = [[f"user{i}@example.com", "x" * 200] for i in range(2000)]
    path = write_csv(tmp_path / "c.csv", ["email", "first_name"], rows)
    assert path.stat().st_size > 400_000
    recording = Recording()
    with httpx.Client(transport=recording) as http:
        outcome = run(live, path, http=http, server_side=True, poll_seconds=0.05)
    assert outcome.tally.created == 2000
    assert max(recording.pieces) <= 64 * 1024
    assert sum(recording.pieces) > path.stat().st_size


def test_looks_at_the_job_are_retried_through_5xx(live: Live, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    captured = Captured()
    with httpx.Client(transport=Recording(unavailable=2)) as http:
        outcome = server_side(live, path, captured, http=http)
    assert (outcome.tally.created, outcome.exit_code) == (1, 0)
    retried = [note for note in captured.notes if note.startswith("server error 503")]
    assert retried == ["server error 503: service unavailable; retrying in 0.0s"] * 2


def test_a_client_that_loses_the_server_leaves_the_job_going(live: Live, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [[f"u{i}@example.com"] for i in range(300)])
    with httpx.Client(transport=Recording(lost=True)) as http, pytest.raises(Abort) as lost:
        server_side(live, path, http=http, retries=2)
    assert lost.value.code == EXIT_ERROR
    message = lost.value.message
    assert message.startswith("cannot reach http://127.0.0.1:")
    assert "gave up after 3 attempts; import imp_" in message
    assert "goes on on the server (follow it with GET /api/imports.get?id=imp_" in message
    deadline = time.monotonic() + 30
    while jobs(live)[0]["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert live.count() == 300


JOB = {
    "id": "imp_0123456789abcdef",
    "workspace_id": "acme",
    "status": "queued",
    "file_name": "c.csv",
    "format": "csv",
    "total_rows": None,
    "processed_rows": 0,
    "created": 0,
    "updated": 0,
    "unchanged": 0,
    "errors": 0,
    "dry_run": False,
    "error": None,
}


def test_timeout_bounds_each_look_at_the_job(tmp_path: Path) -> None:
    """A server that takes the upload, then never answers a look at the job."""

    def handle(conn: socket.socket, server: RawServer) -> None:
        while (request := read_request(conn)) is not None:
            if not request[0].startswith(b"POST /api/imports.create "):
                server.stopped.wait(30)
                return
            conn.sendall(response(202, json.dumps({"import": JOB}).encode(), "Accepted"))

    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    options = Options(
        path=path, workspace="acme", key="k", timeout=1.0, retries=0, server_side=True
    )
    with raw_server(handle) as server, elapsed() as took, pytest.raises(Abort) as late:
        run_import(replace(options, url=server.url), Captured().ui())
    assert late.value.message == (
        "no complete answer within 1s (--timeout); gave up after 1 attempts; import "
        "imp_0123456789abcdef goes on on the server "
        "(follow it with GET /api/imports.get?id=imp_0123456789abcdef)"
    )
    assert 1.0 <= took[0] < 5


def test_an_upload_without_progress_fails_after_the_timeout(tmp_path: Path) -> None:
    def handle(conn: socket.socket, server: RawServer) -> None:
        server.stopped.wait(30)  # reads nothing, answers nothing

    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    options = Options(path=path, workspace="acme", key="k", timeout=1.0, server_side=True)
    with raw_server(handle) as server, elapsed() as took, pytest.raises(Abort) as late:
        run_import(replace(options, url=server.url), Captured().ui())
    assert late.value.message == (
        "the upload made no progress for 1s (--timeout); nothing is imported"
    )
    assert 1.0 <= took[0] < 5


def test_an_error_report_without_progress_fails_after_the_timeout(tmp_path: Path) -> None:
    ended = {**JOB, "status": "completed", "total_rows": 1, "processed_rows": 1, "errors": 1}

    def handle(conn: socket.socket, server: RawServer) -> None:
        while (request := read_request(conn)) is not None:
            if request[0].startswith(b"GET /api/imports.errors?"):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\n")
                server.stopped.wait(30)
                return
            conn.sendall(response(202, json.dumps({"import": ended}).encode(), "Accepted"))

    path = write_csv(tmp_path / "c.csv", ["email"], [["nope"]])
    options = Options(path=path, workspace="acme", key="k", timeout=1.0, server_side=True)
    with raw_server(handle) as server, elapsed() as took, pytest.raises(Abort) as late:
        run_import(replace(options, url=server.url), Captured().ui())
    assert late.value.message.startswith(
        "import imp_0123456789abcdef ended (completed) but its error report could not be read: "
    )
    assert late.value.message.endswith(
        "; download it with GET /api/imports.errors?id=imp_0123456789abcdef"
    )
    assert 1.0 <= took[0] < 5


@pytest.mark.parametrize("workers", [0])
def test_a_job_no_worker_takes_is_said_to_be_queued(
    live: Live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_side_module, "QUEUED_NOTE_AFTER", 0.2)
    notes: list[str] = []

    def note(message: str) -> None:
        notes.append(message)
        if " is queued: " in message:
            raise KeyboardInterrupt  # the user gives up waiting

    ui = replace(Captured().ui(), note=note)
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    options = Options(
        path=path,
        workspace=live.tenant.id,
        url=live.url,
        key=live.tenant.key,
        server_side=True,
        poll_seconds=0.05,
    )
    with pytest.raises(Abort) as stopped:
        run_import(options, ui)
    assert stopped.value.code == EXIT_INTERRUPTED
    assert any(
        n.endswith(
            "is queued: it waits for the workspace's earlier imports, or for a worker "
            "(AUDIENCE_IMPORT_WORKERS, audience worker)"
        )
        for n in notes
    )
    [job] = jobs(live)
    assert (job["status"], job["processed_rows"]) == ("cancelled", 0)
