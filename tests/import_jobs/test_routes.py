"""Every route of import jobs and every error it answers, on an app without workers (a job
stays queued unless a test has a worker import it)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from audience.api_keys.schemas import Permission
from audience.app import create_app
from audience.config import Settings
from tests.conftest import Tenant, make_key
from tests.import_jobs.support import (
    JOB_FIELDS,
    Jobs,
    csv_bytes,
    file_chunks,
    gzipped,
    jsonl_bytes,
    stored_jobs,
)

CSV = csv_bytes([["email", "first_name"], ["ann@example.com", "Ann"], ["bob@example.com", "Bob"]])


def parse_time(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


def error_of(response: Any, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    return str(body["error"])


def create_list(client: TestClient, tenant: Tenant, list_id: str) -> None:
    body = {"workspace_id": tenant.id, "id": list_id, "name": list_id.title()}
    response = client.post("/api/lists.create", headers=tenant.headers, json=body)
    assert response.status_code == 201, response.text


def key_with(client: TestClient, engine: Engine, tenant: Tenant, *permissions: Permission) -> Jobs:
    """imports.* of the tenant with a key that carries only these permissions."""
    return Jobs(client, Tenant(tenant.id, make_key(engine, tenant.id, permissions)))


# --- imports.create ---------------------------------------------------------------------------


def test_create_answers_202_with_the_queued_job(queued: Jobs, engine: Engine) -> None:
    before = datetime.now(UTC)
    response = queued.post(CSV, "people.csv")
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"import"}
    job = body["import"]
    assert set(job) == JOB_FIELDS
    assert job["id"].startswith("imp_")
    assert {k: v for k, v in job.items() if k not in ("id", "created_at")} == {
        "workspace_id": queued.tenant.id,
        "status": "queued",
        "file_name": "people.csv",
        "format": "csv",
        "total_rows": None,
        "processed_rows": 0,
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "errors": 0,
        "dry_run": False,
        "error": None,
        "started_at": None,
        "finished_at": None,
    }
    created_at = parse_time(job["created_at"])
    assert before - timedelta(seconds=5) <= created_at <= datetime.now(UTC) + timedelta(seconds=5)
    assert queued.get(job["id"]) == job
    assert file_chunks(engine, job["id"]) == 1


def test_create_tells_the_format_by_the_content_and_keeps_dry_run(queued: Jobs) -> None:
    lines = jsonl_bytes([{"email": "ann@example.com"}])
    assert queued.create(lines, "people.csv")["format"] == "jsonl"
    assert queued.create(gzipped(lines), "people.csv")["format"] == "jsonl"
    assert queued.create(gzipped(CSV), "people.jsonl")["format"] == "csv"
    assert queued.create(b"\xef\xbb\xbf" + lines, "x")["format"] == "jsonl"
    assert queued.create(CSV, "x", {"dry_run": True})["dry_run"] is True
    long_name = "n" * 300 + ".csv"
    assert queued.create(CSV, long_name)["file_name"] == long_name[:255]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ("not json", "options: not a JSON object"),
        ("[1, 2]", "options: Expected `object`, got `array`"),
        ('{"colour": "blue"}', "options: unknown option 'colour'"),
        ('{"merge": "replace"}', "options: merge must be one of overwrite, fill_blanks"),
        (
            '{"list_status": "pending"}',
            "options: list_status must be one of subscribed, active, unsubscribed",
        ),
        ('{"dry_run": "yes"}', "options: dry_run: expected `bool`, got `str`"),
        (
            '{"mapping": {"Mail": "e_mail"}}',
            "options: mapping: unknown field 'e_mail' for column 'Mail'",
        ),
        (
            '{"mapping": {"Mail": "email", "Other": "email"}}',
            "options: mapping: more than one column is mapped to 'email'",
        ),
        (
            '{"timezone": "Mars/Olympus"}',
            "options: timezone: unknown time zone 'Mars/Olympus' (expected an IANA name such "
            "as Europe/Berlin)",
        ),
        ('{"subscribe_to_lists": "news"}', "options: subscribe_to_lists: expected `array`"),
    ],
)
def test_bad_options_are_400_and_nothing_is_stored(
    queued: Jobs, engine: Engine, options: str, error: str
) -> None:
    message = error_of(queued.post(CSV, options=options), 400)
    assert message.startswith(error), message
    assert stored_jobs(engine) == (0, 0)


def test_request_level_errors_are_400_before_anything_is_stored(
    client: TestClient, queued: Jobs, engine: Engine, tenant: Tenant
) -> None:
    path, headers = "/api/imports.create", tenant.headers
    no_workspace = client.post(path, headers=headers, files={"file": ("a.csv", CSV)})
    assert error_of(no_workspace, 400) == "workspace_id is required"
    empty_workspace = client.post(
        path, headers=headers, data={"workspace_id": ""}, files={"file": ("a.csv", CSV)}
    )
    assert error_of(empty_workspace, 400) == "workspace_id is required"
    no_file = client.post(path, headers=headers, data={"workspace_id": tenant.id}, files={})
    assert error_of(no_file, 400) == "file is required"
    # a form with no file part at all (urlencoded): the file is missing, not the body's type
    urlencoded = client.post(path, headers=headers, data={"workspace_id": tenant.id})
    assert error_of(urlencoded, 400) == "file is required"
    file_as_text = client.post(
        path, headers=headers, data={"workspace_id": tenant.id, "file": "email\na@b.c"}
    )
    assert error_of(file_as_text, 400) == "file is required"
    assert error_of(queued.post(b""), 400) == "file is empty"
    options_as_file = client.post(
        path,
        headers=headers,
        data={"workspace_id": tenant.id},
        files=[("file", ("a.csv", CSV)), ("options", ("o.json", b"{}"))],
    )
    # a second file part: the form takes one file
    assert "files" in error_of(options_as_file, 400)
    unknown_list = queued.post(CSV, options={"subscribe_to_lists": ["news"]})
    assert error_of(unknown_list, 400) == "list not found: news"
    assert stored_jobs(engine) == (0, 0)


def test_subscribe_to_lists_names_existing_lists(
    client: TestClient, queued: Jobs, tenant: Tenant
) -> None:
    create_list(client, tenant, "news")
    answer = queued.post(CSV, options={"subscribe_to_lists": ["news", "gone"]})
    assert error_of(answer, 400) == "list not found: gone"
    assert queued.create(CSV, options={"subscribe_to_lists": ["news", "news"]})["status"] == (
        "queued"
    )


def test_a_missing_permission_is_400_like_the_import(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    create_list(client, tenant, "news")
    read_only = key_with(client, engine, tenant, Permission.CONTACTS_READ, Permission.LISTS_WRITE)
    assert error_of(read_only.post(CSV), 400) == "write access to contacts required"
    contacts_only = key_with(client, engine, tenant, Permission.CONTACTS_WRITE)
    lists = {"subscribe_to_lists": ["news"]}
    assert error_of(contacts_only.post(CSV, options=lists), 400) == (
        "write access to lists required when subscribe_to_lists is provided"
    )
    assert contacts_only.create(CSV)["status"] == "queued"  # without lists it may
    both = key_with(client, engine, tenant, Permission.CONTACTS_WRITE, Permission.LISTS_WRITE)
    assert both.create(CSV, options=lists)["status"] == "queued"


def test_another_workspace_is_401(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, engine: Engine
) -> None:
    response = client.post(
        "/api/imports.create",
        headers=other_tenant.headers,
        data={"workspace_id": tenant.id},
        files={"file": ("a.csv", CSV)},
    )
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    anonymous = client.post(
        "/api/imports.create", data={"workspace_id": tenant.id}, files={"file": ("a.csv", CSV)}
    )
    assert anonymous.status_code == 401, anonymous.text
    assert stored_jobs(engine) == (0, 0)


def test_a_body_that_is_not_a_form_is_415(client: TestClient, tenant: Tenant) -> None:
    for content_type, body in (
        ("application/json", json.dumps({"workspace_id": tenant.id, "file": "email"})),
        ("text/csv", "email\nann@example.com\n"),
    ):
        response = client.post(
            "/api/imports.create",
            headers={**tenant.headers, "Content-Type": content_type},
            content=body,
        )
        assert error_of(response, 415).startswith("imports.create takes a multipart/form-data")


def test_a_file_over_the_upload_limit_is_413_and_not_kept(
    settings: Settings, tenant: Tenant, engine: Engine
) -> None:
    limited = settings.model_copy(update={"max_upload_bytes": 4096})
    with TestClient(create_app(limited), raise_server_exceptions=False) as client:
        jobs = Jobs(client, tenant)
        row = b"someone@example.com\n"
        exactly = b"email\n" + row * ((4096 - 6) // len(row))
        assert len(exactly) <= 4096
        assert jobs.create(exactly)["status"] == "queued"
        over = exactly + row * 4
        assert error_of(jobs.post(over), 413) == "request body too large"
        # the whole request over the upload limit and its envelope: refused before any route
        huge = b"email\n" + row * (2 * 1024 * 1024 // len(row))
        assert error_of(jobs.post(huge), 413) == "request body too large"
    assert stored_jobs(engine) == (1, 1)
    # the body limit of the JSON routes does not apply to uploads
    small_bodies = settings.model_copy(update={"max_body_bytes": 1024})
    with TestClient(create_app(small_bodies), raise_server_exceptions=False) as client:
        assert Jobs(client, tenant).create(b"email\n" + row * 200)["status"] == "queued"


# --- imports.get -------------------------------------------------------------------------------


def test_get_answers_the_job_or_404(
    client: TestClient, queued: Jobs, tenant: Tenant, other_tenant: Tenant, engine: Engine
) -> None:
    job = queued.create(CSV)
    assert queued.get(job["id"]) == job
    path = "/api/imports.get"
    unknown = client.get(
        path, headers=tenant.headers, params={"workspace_id": tenant.id, "id": "imp_0"}
    )
    assert error_of(unknown, 404) == "import not found: imp_0"
    theirs = Jobs(client, other_tenant).create(CSV)
    other = client.get(
        path, headers=tenant.headers, params={"workspace_id": tenant.id, "id": theirs["id"]}
    )
    assert error_of(other, 404) == f"import not found: {theirs['id']}"
    missing = client.get(path, headers=tenant.headers, params={"workspace_id": tenant.id})
    assert error_of(missing, 400) == "id is required"
    writer = key_with(client, engine, tenant, Permission.CONTACTS_WRITE, Permission.LISTS_READ)
    forbidden = client.get(
        path, headers=writer.headers, params={"workspace_id": tenant.id, "id": job["id"]}
    )
    assert error_of(forbidden, 403) == "read access to contacts required"
    reader = key_with(client, engine, tenant, Permission.CONTACTS_READ)
    assert reader.get(job["id"]) == job


# --- imports.list ------------------------------------------------------------------------------


def test_list_is_newest_first_with_cursor_paging(
    client: TestClient, queued: Jobs, tenant: Tenant, other_tenant: Tenant, engine: Engine
) -> None:
    path = "/api/imports.list"
    params: dict[str, Any] = {"workspace_id": tenant.id}
    empty = client.get(path, headers=tenant.headers, params=params)
    assert empty.status_code == 200
    assert empty.json() == {"imports": [], "next_cursor": None}

    made = [queued.create(CSV, f"file{i}.csv") for i in range(5)]
    Jobs(client, other_tenant).create(CSV, "theirs.csv")
    everything = client.get(path, headers=tenant.headers, params=params).json()
    assert [job["id"] for job in everything["imports"]] == [job["id"] for job in made[::-1]]
    assert everything["imports"] == made[::-1]
    assert everything["next_cursor"] is None

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        request = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, headers=tenant.headers, params=request)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["imports"]) <= 2
        seen += [job["id"] for job in page["imports"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [job["id"] for job in made[::-1]]
    assert pages == 3

    for bad in ({"cursor": "not-a-cursor"}, {"cursor": "YQ"}):
        response = client.get(path, headers=tenant.headers, params={**params, **bad})
        assert error_of(response, 400) == "cursor: invalid cursor"
    for limit in (0, 101, "x"):
        response = client.get(path, headers=tenant.headers, params={**params, "limit": limit})
        assert error_of(response, 400).startswith("limit: ")
    writer = key_with(client, engine, tenant, Permission.CONTACTS_WRITE)
    forbidden = client.get(path, headers=writer.headers, params=params)
    assert error_of(forbidden, 403) == "read access to contacts required"
    other = client.get(path, headers=tenant.headers, params={"workspace_id": other_tenant.id})
    assert other.status_code == 401


# --- imports.cancel ----------------------------------------------------------------------------


def test_cancel_a_queued_job_then_again(
    client: TestClient, queued: Jobs, tenant: Tenant, other_tenant: Tenant, engine: Engine
) -> None:
    job = queued.create(CSV)
    path = "/api/imports.cancel"
    body = {"workspace_id": tenant.id, "id": job["id"]}
    reader = key_with(client, engine, tenant, Permission.CONTACTS_READ, Permission.LISTS_WRITE)
    forbidden = client.post(path, headers=reader.headers, json=body)
    assert error_of(forbidden, 403) == "write access to contacts required"

    response = client.post(path, headers=tenant.headers, json=body)
    assert response.status_code == 200, response.text
    cancelled = response.json()["import"]
    assert set(cancelled) == JOB_FIELDS
    assert cancelled["status"] == "cancelled"
    assert cancelled["finished_at"] is not None
    assert parse_time(cancelled["finished_at"]) >= parse_time(cancelled["created_at"])
    assert (cancelled["processed_rows"], cancelled["created"]) == (0, 0)
    assert queued.get(job["id"]) == cancelled
    assert file_chunks(engine, job["id"]) == 0  # the file goes with the job

    again = client.post(path, headers=tenant.headers, json=body)
    assert error_of(again, 400) == "import already finished"
    unknown = client.post(path, headers=tenant.headers, json={**body, "id": "imp_0"})
    assert error_of(unknown, 404) == "import not found: imp_0"
    theirs = Jobs(client, other_tenant).create(CSV)
    other = client.post(path, headers=tenant.headers, json={**body, "id": theirs["id"]})
    assert error_of(other, 404) == f"import not found: {theirs['id']}"
    assert Jobs(client, other_tenant).get(theirs["id"])["status"] == "queued"
    missing = client.post(path, headers=tenant.headers, json={"workspace_id": tenant.id})
    assert error_of(missing, 400).startswith("id")
    not_json = client.post(
        path, headers={**tenant.headers, "Content-Type": "text/plain"}, content=b"{}"
    )
    assert not_json.status_code == 415


def test_cancel_of_a_finished_job_is_400(jobs: Jobs) -> None:
    for content in (CSV, b"first_name\nAnn\n"):  # completed, then failed
        job = jobs.run(content)
        assert job["status"] in ("completed", "failed")
        response = jobs.client.post(
            "/api/imports.cancel",
            headers=jobs.headers,
            json={"workspace_id": jobs.tenant.id, "id": job["id"]},
        )
        assert error_of(response, 400) == "import already finished"
        assert jobs.get(job["id"]) == job


# --- imports.errors ----------------------------------------------------------------------------


def test_errors_of_a_csv_job_has_the_files_columns(jobs: Jobs) -> None:
    content = csv_bytes(
        [
            ["E-Mail", "First Name", "Score"],
            ["ann@example.com", "Ann", "1"],
            ["not-an-email", "Bob", "2"],
            ["cid@example.com", "Cid", "lots"],
        ]
    )
    job = jobs.completed(content, options={"mapping": {"Score": "custom_number_1"}})
    assert (job["created"], job["errors"]) == (1, 2)
    response = jobs.report_response(job["id"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="{job["id"]}.errors.csv"'
    )
    assert list(csv.reader(io.StringIO(response.text))) == [
        ["line", "email", "error", "E-Mail", "First Name", "Score"],
        ["3", "not-an-email", "invalid email format", "not-an-email", "Bob", "2"],
        [
            "4",
            "cid@example.com",
            "custom_number_1: expected a number, got 'lots'",
            "cid@example.com",
            "Cid",
            "lots",
        ],
    ]


def test_errors_of_a_json_lines_job_has_the_raw_line(jobs: Jobs) -> None:
    content = b'{"email": "ann@example.com"}\n{"email": "nope"}\n[1]\n\n{"first_name": "X"}\n'
    job = jobs.completed(content, "people.jsonl")
    assert job["format"] == "jsonl"
    assert (job["total_rows"], job["created"], job["errors"]) == (4, 1, 3)
    assert jobs.report(job["id"]) == [
        ["line", "email", "error", "raw"],
        ["2", "nope", "invalid email format", '{"email": "nope"}'],
        ["3", "", "line is not a JSON object", "[1]"],
        ["5", "", "email is required", '{"first_name": "X"}'],
    ]


def test_errors_route_answers_404_and_403(
    client: TestClient, queued: Jobs, tenant: Tenant, other_tenant: Tenant, engine: Engine
) -> None:
    job = queued.create(CSV)
    assert queued.report(job["id"]) == [["line", "email", "error"]]  # not read yet
    path = "/api/imports.errors"
    params = {"workspace_id": tenant.id, "id": "imp_0"}
    assert error_of(client.get(path, headers=tenant.headers, params=params), 404) == (
        "import not found: imp_0"
    )
    theirs = Jobs(client, other_tenant).create(CSV)
    params = {"workspace_id": tenant.id, "id": theirs["id"]}
    assert error_of(client.get(path, headers=tenant.headers, params=params), 404) == (
        f"import not found: {theirs['id']}"
    )
    writer = key_with(client, engine, tenant, Permission.CONTACTS_WRITE)
    params = {"workspace_id": tenant.id, "id": job["id"]}
    assert error_of(client.get(path, headers=writer.headers, params=params), 403) == (
        "read access to contacts required"
    )
