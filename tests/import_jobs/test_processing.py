"""What a job does with its file: the CSV dialects and encodings the issue lists, JSON Lines,
gzip by content, the headers of real exports, and each option (mapping, empty_clears,
timezone, decimal_comma, dry_run, merge, subscribe_to_lists, list_status); then the files
that cannot be read at all, which fail the whole job and import nothing."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from audience.app import create_app
from audience.config import Settings
from tests.conftest import Tenant
from tests.import_jobs.support import (
    Jobs,
    contact_count,
    csv_bytes,
    file_chunks,
    gzipped,
    jsonl_bytes,
)

ANN, BOB = "ann@example.com", "bob@example.com"


def contact(jobs: Jobs, email: str) -> dict[str, Any]:
    found = jobs.contact(email)
    assert found is not None, email
    return found


def fields(jobs: Jobs, email: str, *names: str) -> tuple[Any, ...]:
    found = contact(jobs, email)
    return tuple(found[name] for name in names)


# --- the file -------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_the_delimiter_is_detected(jobs: Jobs, delimiter: str) -> None:
    content = csv_bytes(
        [
            ["email", "first_name", "last_name", "custom_string_1"],
            [ANN, "Ann", "Lee", "a,b;c"],  # the other delimiters inside a cell are text
            [BOB, "Bob", "", "x\ty"],
        ],
        delimiter=delimiter,
    )
    job = jobs.completed(content)
    assert (job["total_rows"], job["created"], job["errors"]) == (2, 2, 0)
    assert fields(jobs, ANN, "first_name", "last_name", "custom_string_1") == (
        "Ann",
        "Lee",
        "a,b;c",
    )
    assert fields(jobs, BOB, "first_name", "last_name", "custom_string_1") == ("Bob", None, "x\ty")


def test_a_bom_and_crlf_line_ends_are_read(jobs: Jobs) -> None:
    content = b"\xef\xbb\xbfemail;first_name\r\nann@example.com;Ann\r\nbob@example.com;Bob\r\n"
    job = jobs.completed(content)
    assert (job["created"], job["errors"]) == (2, 0)
    assert fields(jobs, ANN, "first_name") == ("Ann",)


def test_quoted_fields_span_lines_and_the_report_gives_the_line_a_record_starts_on(
    jobs: Jobs,
) -> None:
    content = (
        b"email,address_line_1,custom_number_1\n"  # line 1
        b'ann@example.com,"1 Main St\nFlat 2\nBack door",1\n'  # lines 2-4
        b'"bob@example.com","quoted ""word""",x\n'  # line 5: a bad number
        b'cid@example.com,"\n\n",2\n'  # lines 6-8
        b'not-an-email,"a\nb",3\n'  # lines 9-10: a bad email
    )
    job = jobs.completed(content)
    assert (job["total_rows"], job["created"], job["errors"]) == (4, 2, 2)
    assert fields(jobs, ANN, "address_line_1") == ("1 Main St\nFlat 2\nBack door",)
    assert jobs.report(job["id"]) == [
        ["line", "email", "error", "email", "address_line_1", "custom_number_1"],
        [
            "5",
            BOB,
            "custom_number_1: expected a number, got 'x'",
            BOB,
            'quoted "word"',
            "x",
        ],
        ["9", "not-an-email", "invalid email format", "not-an-email", "a\nb", "3"],
    ]


@pytest.mark.parametrize("name", ["contacts.csv", "contacts.csv.gz", "upload"])
def test_a_gzip_file_is_recognised_by_its_content(jobs: Jobs, name: str) -> None:
    rows = [["email", "first_name"]] + [[f"user{i}@example.com", f"U{i}"] for i in range(3000)]
    job = jobs.completed(gzipped(csv_bytes(rows)), name)
    assert (job["format"], job["file_name"]) == ("csv", name)
    assert (job["total_rows"], job["created"], job["errors"]) == (3000, 3000, 0)
    assert fields(jobs, "user2999@example.com", "first_name") == ("U2999",)
    lines = jsonl_bytes([{"email": ANN, "first_name": "Ann"}])
    job = jobs.completed(gzipped(lines), name)
    assert (job["format"], job["created"]) == ("jsonl", 1)


def test_json_lines_are_imported_with_their_types(jobs: Jobs) -> None:
    content = jsonl_bytes(
        [
            {
                "email": ANN,
                "first_name": "Ann",
                "custom_number_1": 4.5,
                "custom_json_1": {"plan": "pro", "tags": ["a"]},
                "custom_datetime_1": "2024-05-01T09:30:00+02:00",
                "not_a_field": "ignored",
            },
            {"mail": BOB, "last_name": "Bob"},
        ]
    )
    job = jobs.completed(content, "people.jsonl", {"mapping": {"mail": "email"}})
    assert (job["format"], job["total_rows"], job["created"], job["errors"]) == ("jsonl", 2, 2, 0)
    ann = contact(jobs, ANN)
    assert (ann["first_name"], ann["custom_number_1"]) == ("Ann", 4.5)
    assert ann["custom_json_1"] == {"plan": "pro", "tags": ["a"]}
    assert ann["custom_datetime_1"] == "2024-05-01T07:30:00Z"
    assert fields(jobs, BOB, "last_name") == ("Bob",)


# --- the headers of real exports ------------------------------------------------------------


EXPORTS = {
    "mailchimp": (
        ["Email Address", "First Name", "Last Name", "Address", "Phone Number", "CC",
         "TIMEZONE", "REGION", "MEMBER_RATING", "LEID"],
        [ANN, "Ann", "Lee", "1 Main St", "+1 555", "US", "America/New_York", "NY", "2", "123"],
        {"email": ANN, "first_name": "Ann", "last_name": "Lee", "address_line_1": "1 Main St",
         "phone": "+1 555", "country": "US", "timezone": "America/New_York", "state": "NY",
         "external_id": "123"},
    ),
    "hubspot": (
        ["Record ID", "First Name", "Last Name", "Email", "Phone Number", "Job Title",
         "Street Address", "City", "State/Region", "Postal Code", "Country/Region"],
        ["901", "Ann", "Lee", ANN, "+1 555", "CTO", "1 Main St", "Boston", "MA", "02101", "US"],
        {"email": ANN, "external_id": "901", "first_name": "Ann", "last_name": "Lee",
         "phone": "+1 555", "job_title": "CTO", "address_line_1": "1 Main St", "state": "MA",
         "postcode": "02101", "country": "US"},
    ),
    "german": (
        ["E-Mail-Adresse", "Vorname", "Nachname", "Straße", "PLZ", "Land", "Telefon", "Sprache"],
        [ANN, "Änne", "Müller", "Hauptstraße 1", "10115", "DE", "030 123", "de"],
        {"email": ANN, "first_name": "Änne", "last_name": "Müller",
         "address_line_1": "Hauptstraße 1", "postcode": "10115", "country": "DE",
         "phone": "030 123", "language": "de"},
    ),
    "french and spanish": (
        ["Correo electrónico", "Prénom", "Nom", "Code postal", "Pays"],
        [ANN, "Anne", "Lefèvre", "75002", "FR"],
        {"email": ANN, "first_name": "Anne", "last_name": "Lefèvre", "postcode": "75002",
         "country": "FR"},
    ),
}  # fmt: skip


@pytest.mark.parametrize("export", sorted(EXPORTS))
def test_the_headers_of_real_exports_are_recognised(jobs: Jobs, export: str) -> None:
    header, row, expected = EXPORTS[export]
    job = jobs.completed(csv_bytes([header, row]))
    assert (job["created"], job["errors"]) == (1, 0), job
    found = contact(jobs, ANN)
    assert {name: found[name] for name in expected} == expected
    others = {k: v for k, v in found.items() if k not in expected and v is not None}
    assert set(others) <= {"created_at", "updated_at", "contact_lists", "db_created_at"}, others


# --- the options ----------------------------------------------------------------------------


def test_mapping_overrides_the_automatic_matching(jobs: Jobs) -> None:
    content = csv_bytes(
        [
            ["Email", "Work email", "Name", "Score", "Notes"],
            ["old@example.com", ANN, "Ann", "7", "keep out"],
        ]
    )
    mapping = {
        "Email": None,  # left out
        "Work email": "email",
        "Name": "last_name",  # not full_name, as guessed
        "score": "custom_number_2",  # a forgiving match of the column's name
        "Notes": "",
    }
    job = jobs.completed(content, options={"mapping": mapping})
    assert (job["created"], job["errors"]) == (1, 0)
    found = contact(jobs, ANN)
    assert (found["last_name"], found["full_name"], found["custom_number_2"]) == ("Ann", None, 7)
    assert jobs.contact("old@example.com") is None


def test_a_mapping_that_names_no_column_of_the_file_fails_the_job(
    jobs: Jobs, engine: Engine
) -> None:
    content = csv_bytes([["email"], [ANN]])
    job = jobs.run(content, options={"mapping": {"Nope": "first_name"}})
    assert job["status"] == "failed", job
    assert job["error"] == "options.mapping: no column named 'Nope' in the header"
    assert contact_count(engine, jobs.tenant.id) == 0


def test_empty_cells_leave_fields_alone_unless_empty_clears(jobs: Jobs) -> None:
    jobs.completed(csv_bytes([["email", "first_name", "phone"], [ANN, "Ann", "1"]]))
    update = csv_bytes([["email", "first_name", "phone"], [ANN, "", "2"]])
    job = jobs.completed(update)
    assert job["updated"] == 1
    assert fields(jobs, ANN, "first_name", "phone") == ("Ann", "2")
    job = jobs.completed(update, options={"empty_clears": True})
    assert job["updated"] == 1
    assert fields(jobs, ANN, "first_name", "phone") == (None, "2")
    job = jobs.completed(update, options={"empty_clears": True})
    assert (job["unchanged"], job["updated"]) == (1, 0)


def test_timezone_gives_date_times_without_an_offset_their_zone(jobs: Jobs) -> None:
    content = csv_bytes(
        [
            ["email", "custom_datetime_1", "custom_datetime_2"],
            [ANN, "2024-05-01 09:30", "2024-01-15"],
            [BOB, "2024-05-01T09:30:00Z", "2024-01-15T10:00:00+05:00"],
        ]
    )
    job = jobs.completed(content)
    assert (job["created"], job["errors"]) == (1, 1)  # without the option, Ann's is refused
    (_header, refused) = jobs.report(job["id"])
    assert refused[:2] == ["2", ANN]
    assert "'2024-05-01 09:30' has no time zone offset" in refused[2]
    job = jobs.completed(content, options={"timezone": "Europe/Berlin"})
    assert (job["created"], job["unchanged"], job["errors"]) == (1, 1, 0)
    assert fields(jobs, ANN, "custom_datetime_1", "custom_datetime_2") == (
        "2024-05-01T07:30:00Z",  # summer time: +02:00
        "2024-01-14T23:00:00Z",  # a date alone is its midnight there (+01:00 in winter)
    )
    assert fields(jobs, BOB, "custom_datetime_1", "custom_datetime_2") == (
        "2024-05-01T09:30:00Z",
        "2024-01-15T05:00:00Z",
    )


def test_decimal_comma_converts_numbers_when_told(jobs: Jobs) -> None:
    content = csv_bytes(
        [
            ["email", "custom_number_1", "custom_number_2"],
            [ANN, "1.234,5", "-0,25"],
            [BOB, "7", "3"],
        ],
        delimiter=";",
    )
    job = jobs.completed(content)
    assert (job["created"], job["errors"]) == (1, 1)
    assert jobs.report(job["id"])[1][2] == (
        "custom_number_1: expected a number, got '1.234,5'; "
        "custom_number_2: expected a number, got '-0,25'"
    )
    job = jobs.completed(content, options={"decimal_comma": True})
    assert (job["created"], job["unchanged"], job["errors"]) == (1, 1, 0)
    assert fields(jobs, ANN, "custom_number_1", "custom_number_2") == (1234.5, -0.25)


def test_a_dry_run_counts_and_writes_nothing(jobs: Jobs, engine: Engine) -> None:
    jobs.create_list("news")
    jobs.completed(csv_bytes([["email", "first_name"], [ANN, "Ann"]]))
    content = csv_bytes(
        [["email", "first_name"], [ANN, "Annie"], [BOB, "Bob"], ["bad", "X"], [ANN, "Annie"]]
    )
    options = {"dry_run": True, "subscribe_to_lists": ["news"]}
    job = jobs.completed(content, options=options)
    assert job["dry_run"] is True
    assert (job["total_rows"], job["errors"]) == (4, 1)
    assert (job["created"], job["updated"]) == (1, 1)
    assert job["created"] + job["updated"] + job["unchanged"] == 3
    assert [row[:3] for row in jobs.report(job["id"])[1:]] == [["4", "bad", "invalid email format"]]
    assert contact_count(engine, jobs.tenant.id) == 1
    assert fields(jobs, ANN, "first_name") == ("Ann",)
    assert jobs.lists_of(ANN) == {}


def test_fill_blanks_only_fills_empty_fields(jobs: Jobs) -> None:
    jobs.completed(csv_bytes([["email", "first_name", "last_name"], [ANN, "Ann", ""]]))
    update = csv_bytes([["email", "first_name", "last_name"], [ANN, "Annie", "Lee"]])
    job = jobs.completed(update, options={"merge": "fill_blanks"})
    assert job["updated"] == 1
    assert fields(jobs, ANN, "first_name", "last_name") == ("Ann", "Lee")
    job = jobs.completed(update, options={"merge": "overwrite"})
    assert fields(jobs, ANN, "first_name", "last_name") == ("Annie", "Lee")


def test_subscribe_to_lists_with_each_list_status_and_opt_outs_kept(jobs: Jobs) -> None:
    jobs.create_list("news")
    jobs.create_list("weekly", double_optin=True)
    people = csv_bytes([["email"], [ANN], [BOB]])
    both = ["news", "weekly"]
    job = jobs.completed(people, options={"subscribe_to_lists": both})
    assert job["created"] == 2
    for email in (ANN, BOB):
        assert jobs.lists_of(email) == {"news": "active", "weekly": "pending"}

    jobs.set_status(ANN, "news", "unsubscribed")
    jobs.completed(people, options={"subscribe_to_lists": both, "list_status": "active"})
    assert jobs.lists_of(ANN) == {"news": "unsubscribed", "weekly": "active"}
    assert jobs.lists_of(BOB) == {"news": "active", "weekly": "active"}

    jobs.completed(
        csv_bytes([["email"], [BOB]]),
        options={"subscribe_to_lists": ["weekly"], "list_status": "unsubscribed"},
    )
    assert jobs.lists_of(BOB) == {"news": "active", "weekly": "unsubscribed"}
    # an opt-out is never undone by a later job, whatever its list_status
    for status in ("subscribed", "active"):
        jobs.completed(people, options={"subscribe_to_lists": both, "list_status": status})
        assert jobs.lists_of(ANN) == {"news": "unsubscribed", "weekly": "active"}
        assert jobs.lists_of(BOB) == {"news": "active", "weekly": "unsubscribed"}


# --- files that cannot be read ----------------------------------------------------------------


def _many(count: int) -> list[list[str]]:
    return [[f"user{i}@example.com", f"U{i}"] for i in range(count)]


def _latin1(content: bytes) -> tuple[bytes, str]:
    """The file and the job's error: the offset and line of its first byte that is not UTF-8."""
    offset = content.index(b"\xe9")
    line = content[:offset].count(b"\n") + 1
    return content, (
        f"the file is not UTF-8 (byte 0xe9 at offset {offset}, line {line}); save it as UTF-8 "
        "and try again"
    )


MALFORMED: dict[str, tuple[bytes, str]] = {
    "no email column": (
        csv_bytes([["first_name", "last_name"], ["Ann", "Lee"]]),
        'no column maps to email; name one with options.mapping {"COLUMN": "email"} '
        "(columns: first_name, last_name)",
    ),
    "not UTF-8 late in the file": _latin1(
        csv_bytes([["email", "first_name"], *_many(5000)])
        + "ann@example.com,José\n".encode("latin-1")
    ),
    "not UTF-8 in the header": _latin1(
        "email,Prénom\n".encode("latin-1") + b"ann@example.com,Ann\n"
    ),
    "not UTF-8 in a JSON line": _latin1(
        jsonl_bytes({"email": f"user{i}@example.com"} for i in range(3000))
        + '{"email": "ann@example.com", "first_name": "José"}\n'.encode("latin-1")
    ),
    "not gzip after its magic bytes": (
        b"\x1f\x8b" + b"this is not deflate data at all" * 10,
        "the file cannot be decompressed (Unknown compression method)",
    ),
    "a truncated gzip file": (
        gzip.compress(csv_bytes([["email", "first_name"], *_many(5000)]), mtime=0)[:-200],
        "the file cannot be decompressed (Compressed file ended before the end-of-stream "
        "marker was reached)",
    ),
    "an empty CSV header": (
        b"\n \n,,\n\r\n",
        "contacts.csv is empty: a CSV file needs a header line",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_file_that_cannot_be_read_fails_the_job_and_imports_nothing(
    jobs: Jobs, engine: Engine, case: str
) -> None:
    content, error = MALFORMED[case]
    job = jobs.run(content)
    assert job["status"] == "failed", job
    assert job["error"] == error
    assert (job["created"], job["updated"], job["unchanged"]) == (0, 0, 0)
    assert job["finished_at"] is not None
    assert contact_count(engine, jobs.tenant.id) == 0
    assert file_chunks(engine, job["id"]) == 0
    assert jobs.report(job["id"]) == jobs.report(job["id"])[:1]  # no row failed on its own


# --- the rows, in file order --------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [2, 1000])
def test_an_email_given_twice_ends_with_the_later_row(
    settings: Settings, tenant: Tenant, batch_size: int
) -> None:
    """Within a batch and across batches: the rows apply in file order (emails compared
    without case), and each is counted."""
    update = {"import_workers": 1, "import_poll_seconds": 0.05, "import_batch_size": batch_size}
    with TestClient(create_app(settings.model_copy(update=update))) as client:
        jobs = Jobs(client, tenant)
        content = csv_bytes(
            [
                ["email", "first_name", "last_name"],
                [ANN, "Ann", "One"],
                [BOB, "Bob", ""],
                ["ANN@Example.com", "Annie", ""],
                [ANN, "", "Three"],
            ]
        )
        job = jobs.completed(content)
        assert (job["total_rows"], job["created"], job["updated"], job["errors"]) == (4, 2, 2, 0)
        assert fields(jobs, ANN, "first_name", "last_name") == ("Annie", "Three")


def test_a_list_deleted_before_the_job_runs_fails_it(
    client: TestClient, settings: Settings, tenant: Tenant, engine: Engine
) -> None:
    queued = Jobs(client, tenant)  # an app without workers: the job waits
    queued.create_list("news")
    job = queued.create(csv_bytes([["email"], [ANN]]), options={"subscribe_to_lists": ["news"]})
    response = client.post(
        "/api/lists.delete", headers=tenant.headers, json={"workspace_id": tenant.id, "id": "news"}
    )
    assert response.status_code == 200, response.text
    update = {"import_workers": 1, "import_poll_seconds": 0.05}
    with TestClient(create_app(settings.model_copy(update=update))) as workers:
        failed = Jobs(workers, tenant).wait(job["id"])
    assert failed["status"] == "failed", failed
    assert failed["error"] == "list not found: news"
    assert contact_count(engine, tenant.id) == 0


def test_a_fixed_json_lines_report_imports_again(jobs: Jobs) -> None:
    content = jsonl_bytes(
        [{"email": ANN, "first_name": "Ann"}, {"email": "bob-at-example.com", "first_name": "Bob"}]
    )
    job = jobs.completed(content, "people.jsonl")
    report = jobs.report(job["id"])
    assert report == [
        ["line", "email", "error", "raw"],
        [
            "2",
            "bob-at-example.com",
            "invalid email format",
            '{"email": "bob-at-example.com", "first_name": "Bob"}',
        ],
    ]
    fixed = [report[0], [*report[1][:3], report[1][3].replace("bob-at-", "bob@")]]
    again = jobs.completed(csv_bytes(fixed), "people.errors.csv")
    assert (again["format"], again["created"], again["errors"]) == ("csv", 1, 0)
    assert fields(jobs, BOB, "first_name") == ("Bob",)


#: Contacts that contacts.import refuses, each for its own reason, and some it accepts.
TRICKY: list[dict[str, Any]] = [
    {"email": "ok1@example.com", "first_name": "Fine"},
    {"email": "no-at-sign"},
    {"email": "x@localhost"},
    {"email": "tz@example.com", "timezone": "Mars/Olympus"},
    {"email": "num@example.com", "custom_number_1": "12"},
    {"email": "inf@example.com", "custom_number_2": "1e999"},
    {"email": "when@example.com", "custom_datetime_1": "2024-05-01T09:30:00"},
    {"email": "json@example.com", "custom_json_1": 5},
    {"email": "long@example.com", "first_name": "x" * 300},
    {"email": "type@example.com", "last_name": 12},
    {"email": "ls@example.com", "list_status": "maybe"},
    {"email": "ok2@example.com", "custom_json_2": [1, {"a": None}]},
    {"email": 7},
    {"email": "a" * 250 + "@example.com"},
]


def test_json_lines_rows_get_the_reasons_contacts_import_gives(jobs: Jobs, engine: Engine) -> None:
    """One implementation: each line of a JSON Lines job goes through the contacts import,
    so a line fails exactly when, and for exactly the reason that, contacts.import fails the
    same contact."""
    response = jobs.client.post(
        "/api/contacts.import",
        headers=jobs.headers,
        json={"workspace_id": jobs.tenant.id, "contacts": TRICKY, "dry_run": True},
    )
    assert response.status_code == 200, response.text
    expected = [
        (str(op["index"] + 1), op["error"])
        for op in response.json()["operations"]
        if op["action"] == "error"
    ]
    assert 8 <= len(expected) < len(TRICKY), expected
    job = jobs.completed(jsonl_bytes(TRICKY), "tricky.jsonl")
    assert job["errors"] == len(expected)
    assert job["created"] == len(TRICKY) - len(expected)
    assert [(line, error) for line, _email, error, _raw in jobs.report(job["id"])[1:]] == expected
    assert contact_count(engine, jobs.tenant.id) == len(TRICKY) - len(expected)


def test_a_file_of_a_header_alone_completes_with_nothing_to_do(jobs: Jobs) -> None:
    job = jobs.completed(b"email,first_name\n")
    assert (job["total_rows"], job["processed_rows"], job["created"]) == (0, 0, 0)
    assert jobs.report(job["id"]) == [["line", "email", "error", "email", "first_name"]]


def test_a_json_line_of_its_own_list_status_keeps_it(jobs: Jobs) -> None:
    """A line is a ContactInput: its own list_status overrides the job's, so an opt-out in
    the file is never turned into a subscription."""
    jobs.create_list("news")
    content = jsonl_bytes(
        [
            {"email": ANN, "list_status": "unsubscribed"},
            {"email": BOB},
            {"email": "cid@example.com", "list_status": "sometimes"},
        ]
    )
    job = jobs.completed(content, "people.jsonl", {"subscribe_to_lists": ["news"]})
    assert (job["created"], job["errors"]) == (2, 1)
    assert jobs.lists_of(ANN) == {"news": "unsubscribed"}
    assert jobs.lists_of(BOB) == {"news": "active"}
    assert [row[:3] for row in jobs.report(job["id"])[1:]] == [
        ["3", "cid@example.com", "list_status: must be one of subscribed, active, unsubscribed"]
    ]
