"""A file of 100,000 rows with bad rows among them, checked row by row against the job's
error report: every bad row is there, at the line its record starts on, with its reason; no
good row is; and the report, its cells fixed, is uploaded again as it is and imports them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from tests.import_jobs.support import Jobs, csv_bytes, stored_contacts

ROWS = 100_000
HEADER = ["email", "first_name", "custom_number_1", "custom_datetime_1", "country"]
WHEN = "2024-05-01T09:00:00Z"
#: Every BAD_EVERY-th row is bad, in turn in each of these ways.
BAD_EVERY = 613
KINDS = ("email", "number", "date", "ragged", "missing", "email_and_number")


@dataclass(frozen=True)
class Bad:
    index: int
    line: int
    kind: str
    cells: list[str]


def good_cells(i: int) -> list[str]:
    # Every 1000th first name spans two lines: the records after it start a line later.
    name = f"First\n{i}" if i % 1000 == 7 else f"First {i}"
    return [f"user{i}@example.com", name, str(i), WHEN, "FR"]


def bad_cells(i: int, kind: str) -> list[str]:
    cells = good_cells(i)
    if kind in ("email", "email_and_number"):
        cells[0] = f"user{i}.example.com"
    if kind in ("number", "email_and_number"):
        cells[2] = f"{i}x"
    if kind == "date":
        cells[3] = "2024-13-45"
    if kind == "ragged":
        cells += ["extra", "cells"]
    if kind == "missing":
        cells[0] = ""
    return cells


def reason(bad: Bad) -> str:
    i = bad.index
    number = f"custom_number_1: expected a number, got '{i}x'"
    return {
        "email": "invalid email format",
        "number": number,
        "date": "custom_datetime_1: expected a date or date-time such as 2024-05-01 or "
        "2024-05-01T09:30:00Z, got '2024-13-45'",
        "ragged": "row has 7 values but the header has 5 columns",
        "missing": "email is required",
        # a cell the file's conversion refuses is found before the email is checked
        "email_and_number": number,
    }[bad.kind]


def the_file() -> tuple[bytes, list[Bad]]:
    rows: list[list[str]] = [HEADER]
    bad: list[Bad] = []
    line = 2  # the header is line 1
    for i in range(ROWS):
        if i % BAD_EVERY == BAD_EVERY - 1:
            kind = KINDS[(i // BAD_EVERY) % len(KINDS)]
            cells = bad_cells(i, kind)
            bad.append(Bad(i, line, kind, cells))
        else:
            cells = good_cells(i)
        rows.append(cells)
        line += 1 + sum(cell.count("\n") for cell in cells)
    return csv_bytes(rows), bad


def expected_contact(i: int) -> tuple[Any, ...]:
    return (good_cells(i)[1], float(i), WHEN, "FR")


def test_a_large_file_reports_exactly_its_bad_rows_and_the_fixed_report_imports_them(
    jobs: Jobs, engine: Engine
) -> None:
    content, bad = the_file()
    assert len(bad) > 150 and {b.kind for b in bad} == set(KINDS)
    job = jobs.completed(content, "big.csv")
    assert job["total_rows"] == ROWS
    assert (job["created"], job["errors"]) == (ROWS - len(bad), len(bad))
    assert (job["updated"], job["unchanged"]) == (0, 0)

    report = jobs.report(job["id"])
    assert report[0] == ["line", "email", "error", *HEADER]
    records = report[1:]
    assert len(records) == job["errors"] == len(bad)
    for record, expected in zip(records, bad, strict=True):
        line, email, error, *cells = record
        assert int(line) == expected.line, (record, expected)
        assert error == reason(expected), (record, expected)
        assert email == expected.cells[0].lower(), (record, expected)
        width = max(len(HEADER), len(expected.cells))
        assert cells == expected.cells + [""] * (width - len(expected.cells)), record

    stored = stored_contacts(engine, jobs.tenant.id, "first_name", "custom_number_1", "country")
    bad_indexes = {b.index for b in bad}
    assert len(stored) == ROWS - len(bad)
    for i in range(0, ROWS, 97):  # a sample of the good rows, and every bad one
        if i not in bad_indexes:
            assert stored[f"user{i}@example.com"] == (good_cells(i)[1], float(i), "FR"), i
    for b in bad:
        assert f"user{b.index}@example.com" not in stored, b

    # The report, its bad cells fixed and its other columns (line, email, error) as they
    # are, is a file to upload again.
    fixed = [report[0]]
    for record, expected in zip(records, bad, strict=True):
        fixed.append(record[:3] + good_cells(expected.index))
    again = jobs.completed(csv_bytes(fixed), "big.errors.csv")
    assert (again["total_rows"], again["created"], again["errors"]) == (len(bad), len(bad), 0)
    assert jobs.report(again["id"]) == [["line", "email", "error", *report[0]]]

    everyone = stored_contacts(
        engine, jobs.tenant.id, "first_name", "custom_number_1", "custom_datetime_1", "country"
    )
    assert len(everyone) == ROWS
    for b in bad:
        first_name, number, when, country = everyone[f"user{b.index}@example.com"]
        assert (first_name, number, country) == (good_cells(b.index)[1], float(b.index), "FR")
        assert when is not None
