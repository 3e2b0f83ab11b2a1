"""The errors file (re-importable as is), the resume state, progress lines and the summary."""

from __future__ import annotations

import json
from pathlib import Path

from audience.contact_files.convert import convert_line, convert_row
from audience.contact_files.mapping import map_header, parse_overrides
from audience.contact_files.reader import open_source, scan
from audience.file_client.errors_file import ErrorsFile, default_errors_path
from audience.file_client.progress import (
    PlainProgress,
    Tally,
    duration,
    progress_line,
    summary_line,
)
from audience.file_client.resume import State, load_state, save_state, state_path_for

HEADER = ["Email", "Address", "Score", "Plan"]
ROWS = [
    (2, ["a@example.com", "1 Main St\nFloor 2", "x1", "gold"]),
    (4, ["b@example.com", 'say "hi"; bye', "", "silver"]),
    (5, ["", "nowhere", "3", "bronze", ""]),
]


def read_back(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    source = open_source(path, "csv")
    try:
        return source.header, [(row.line, list(row.raw)) for row in source.rows()]
    finally:
        source.close()


def test_the_errors_file_holds_line_email_reason_and_the_original_row(tmp_path: Path) -> None:
    path = tmp_path / "contacts.errors.csv"
    errors = ErrorsFile(path, fmt="csv", header=HEADER, delimiter=";")
    for line, cells in ROWS:
        errors.write(line, cells[0], f"reason {line}", cells)
    errors.close()
    header, rows = read_back(path)
    assert header == ["_line", "_email", "_error", *HEADER]
    assert [cells[:3] for _, cells in rows] == [
        ["2", "a@example.com", "reason 2"],
        ["4", "b@example.com", "reason 4"],
        ["5", "", "reason 5"],
    ]
    assert [cells[3:] for _, cells in rows] == [cells for _, cells in ROWS]
    assert errors.count == 3


def test_the_errors_file_imports_as_is_with_the_same_mapping(tmp_path: Path) -> None:
    overrides = parse_overrides(["Score=custom_number_1", "Plan=custom_string_1"])
    original = map_header(HEADER, overrides)
    path = tmp_path / "contacts.errors.csv"
    errors = ErrorsFile(path, fmt="csv", header=HEADER, bom=True)
    for line, cells in ROWS[:2]:
        errors.write(line, cells[0], "some reason", cells)
    errors.close()
    assert scan(path, "csv").bom
    header, rows = read_back(path)
    again = map_header(header, overrides)
    assert [name for _, name in again.columns] == [name for _, name in original.columns]
    assert again.unmapped == ()
    fixed = rows[0][1]
    fixed[header.index("Score")] = "12"
    assert convert_row(fixed, again) == {
        "email": "a@example.com",
        "address_line_1": "1 Main St\nFloor 2",
        "custom_number_1": 12,
        "custom_string_1": "gold",
    }
    assert convert_row(rows[1][1], again) == convert_row(
        ROWS[1][1],
        original,
    )


def test_an_errors_file_of_an_errors_file_has_one_set_of_report_columns(tmp_path: Path) -> None:
    first = tmp_path / "a.errors.csv"
    errors = ErrorsFile(first, fmt="csv", header=HEADER)
    errors.write(2, "a@example.com", "first reason", ROWS[0][1])
    errors.close()
    header, rows = read_back(first)
    second = tmp_path / "a.errors.errors.csv"
    errors = ErrorsFile(second, fmt="csv", header=header)
    errors.write(rows[0][0], "a@example.com", "second reason", rows[0][1])
    errors.close()
    header2, rows2 = read_back(second)
    assert header2 == header
    assert rows2[0][1][:3] == ["2", "a@example.com", "second reason"]
    assert rows2[0][1][3:] == ROWS[0][1]


def test_json_lines_errors_keep_the_original_object(tmp_path: Path) -> None:
    path = tmp_path / "c.errors.jsonl"
    errors = ErrorsFile(path, fmt="jsonl")
    errors.write(
        3,
        "a@example.com",
        "custom_number_1: expected a number",
        '{"email": "a@example.com", "custom_number_1": "x"}',
    )
    errors.write(7, "", "invalid JSON: oops", "{broken")
    errors.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [
        {
            "_line": 3,
            "_email": "a@example.com",
            "_error": "custom_number_1: expected a number",
            "email": "a@example.com",
            "custom_number_1": "x",
        },
        {"_line": 7, "_email": "", "_error": "invalid JSON: oops", "_raw": "{broken"},
    ]
    source = open_source(path, "jsonl")
    first = next(source.rows())
    source.close()
    unknown: set[str] = set()
    assert convert_line(str(first.raw), {}, unknown) == {
        "email": "a@example.com",
        "custom_number_1": "x",
    }
    assert unknown == set()


def test_json_lines_errors_named_csv_are_csv_with_the_raw_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.CSV"
    errors = ErrorsFile(path, fmt="jsonl", bom=True)
    errors.write(3, "a@example.com", "custom_number_1: expected a number", '{"email": "a", "n": 1}')
    errors.write(7, "", "invalid JSON: oops", '{broken, "x\n')
    errors.close()
    assert path.read_bytes().startswith(b"\xef\xbb\xbf_line,_email,_error,_raw\r\n")
    header, rows = read_back(path)
    assert header == ["_line", "_email", "_error", "_raw"]
    assert [cells for _, cells in rows] == [
        ["3", "a@example.com", "custom_number_1: expected a number", '{"email": "a", "n": 1}'],
        ["7", "", "invalid JSON: oops", '{broken, "x\n'],
    ]


def test_no_failure_no_errors_file_and_a_stale_one_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "c.errors.csv"
    path.write_text("stale")
    errors = ErrorsFile(path, fmt="csv", header=HEADER)
    errors.close()
    assert not path.exists()
    assert errors.size() == 0


def test_a_resumed_errors_file_keeps_what_the_state_recorded(tmp_path: Path) -> None:
    path = tmp_path / "c.errors.csv"
    errors = ErrorsFile(path, fmt="csv", header=HEADER)
    errors.write(2, "a@example.com", "kept", ROWS[0][1])
    kept = errors.size()
    errors.write(4, "b@example.com", "written after the last saved state", ROWS[1][1])
    errors.close()
    errors = ErrorsFile(path, fmt="csv", header=HEADER, keep_bytes=kept)
    errors.write(5, "", "new", ROWS[2][1])
    errors.close()
    header, rows = read_back(path)
    assert header[:3] == ["_line", "_email", "_error"]
    assert [cells[2] for _, cells in rows] == ["kept", "new"]


def test_state_round_trip(tmp_path: Path) -> None:
    path = state_path_for(tmp_path / "c.errors.csv")
    assert path.name == "c.errors.state.json"
    assert load_state(path) is None
    state = State(sha256="ab" * 32, options="{}", rows_done=2000, errors_bytes=10, failed=3)
    save_state(path, state)
    assert load_state(path) == state
    path.write_text("{not json")
    assert load_state(path) is None


def test_default_errors_paths() -> None:
    assert default_errors_path(Path("d/contacts.csv"), "csv") == Path("d/contacts.errors.csv")
    assert default_errors_path(Path("c.ndjson"), "jsonl") == Path("c.errors.jsonl")


def test_progress_line_with_a_total() -> None:
    line = progress_line(12_000, 200_000, Tally(11_000, 900, 100), 5.0, 2_000)
    assert line == (
        "12,000/200,000 rows (6%) · 2,000 rows/s · ETA 1m34s · "
        "created 11,000 · updated 900 · failed 100"
    )


def test_progress_line_without_a_total() -> None:
    assert progress_line(10, None, Tally(10), 2.0, 0) == (
        "10 rows · 5 rows/s · created 10 · updated 0 · failed 0"
    )


def test_plain_progress_prints_at_most_once_an_interval() -> None:
    lines: list[str] = []
    now = [0.0]
    view = PlainProgress(lines.append, 100, 0, interval=5.0, clock=lambda: now[0])
    for step in range(1, 11):
        now[0] = step * 1.5
        view.update(step * 10, Tally(step * 10))
    assert [line.split(" · ")[0] for line in lines] == [
        "40/100 rows (40%)",
        "80/100 rows (80%)",
    ]


def test_plain_progress_takes_the_total_once_it_is_known() -> None:
    lines: list[str] = []
    now = [0.0]
    view = PlainProgress(lines.append, None, 0, interval=5.0, clock=lambda: now[0])
    now[0] = 5.0
    view.update(100, Tally(created=100))
    now[0] = 10.0
    view.update(200, Tally(created=200), total=400)
    assert lines[0].startswith("100 rows · 20 rows/s · ")
    assert lines[1].startswith("200/400 rows (50%) · 20 rows/s · ETA 10.0s · ")


def test_summary_line_and_durations() -> None:
    line = summary_line(Tally(8, 1, 1), skipped=5, elapsed=2.0)
    assert line == "created 8 · updated 1 · failed 1 · skipped 5 · 2.0s · 5 rows/s"
    assert [duration(s) for s in (4.24, 80, 7500)] == ["4.2s", "1m20s", "2h05m"]
