"""The console's imports pages over the TestClient, both backends: upload, the mapping step
(columns, samples, fields pre-filled by the API's matching), start, progress, cancel,
errors download, history; refusals and permissions."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from audience.api_keys.schemas import Permission
from audience.app import create_app
from audience.config import Settings
from tests.conftest import Tenant, make_key
from tests.console.support import create_list, post, sign_in
from tests.import_jobs.support import FINISHED, csv_bytes, memberships, stored_contacts

HEADER = ["E-mail Address", "Vorname", "Last", "Loyalty tier", "Notes"]
ROWS = [
    ["ann@example.com", "Ann", "Smith", "gold", "likes <b>bold</b>"],
    ["bob@example.com", "Bob", "Jones", "silver", ""],
    ["not-an-email", "Carl", "Bad", "bronze", ""],
]


@pytest.fixture
def console(settings: Settings) -> Iterator[TestClient]:
    """The app with a worker that looks for jobs often."""
    fast = settings.model_copy(update={"import_workers": 1, "import_poll_seconds": 0.05})
    with TestClient(create_app(fast), raise_server_exceptions=False) as client:
        yield client


def upload(client: TestClient, csrf: str, content: bytes, name: str = "people.csv") -> str:
    """Upload a file through the page; the path of its mapping step."""
    response = client.post(
        "/console/imports/upload",
        data={"csrf_token": csrf},
        files={"file": (name, content, "text/csv")},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    location: str = response.headers["location"]
    assert re.fullmatch(r"/console/imports/imp_[0-9a-f]{16}", location), location
    return location


def selected(html: str) -> dict[int, str]:
    """Each column's chosen field on the mapping step ("" = not imported)."""
    chosen: dict[int, str] = {}
    for n, body in re.findall(
        r'<select id="column-(\d+)" name="column-\d+">(.*?)</select>', html, re.S
    ):
        found = re.search(r'<option value="([^"]*)" selected>', body)
        chosen[int(n)] = found.group(1) if found else ""
    return chosen


def wait_finished(client: TestClient, path: str) -> str:
    for _ in range(500):
        html = client.get(path).text
        status = re.search(r'<span id="import-status" role="status">(\w+)</span>', html)
        assert status, html
        if status.group(1).lower() in FINISHED:
            return html
        time.sleep(0.02)
    raise AssertionError(html)


def test_upload_map_start_and_follow_an_import_to_completed(
    console: TestClient, tenant: Tenant, engine: Engine
) -> None:
    create_list(console, tenant, "news")
    csrf = sign_in(console, tenant.key)
    path = upload(console, csrf, csv_bytes([HEADER, *ROWS]))

    mapping = console.get(path)
    assert mapping.status_code == 200
    html = mapping.text
    for column in HEADER:
        assert f">{column}</label>" in html
    assert "<code>ann@example.com</code>" in html and "<code>Smith</code>" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html  # escaped
    # The API's matching: a Mailchimp-style email header, a German first name, "Last".
    assert selected(html) == {0: "email", 1: "first_name", 2: "last_name", 3: "", 4: ""}
    assert "unmapped" in html
    assert 'name="lists" value="news"' in html
    # A draft is nobody's job yet: the API does not see it, no worker takes it.
    job_id = path.rsplit("/", 1)[1]
    api = console.get(
        "/api/imports.get", headers=tenant.headers, params={"workspace_id": tenant.id, "id": job_id}
    )
    assert api.status_code == 404, api.text

    started = post(
        console,
        f"{path}/start",
        csrf,
        **{"column-0": "email", "column-1": "first_name", "column-2": "last_name"},
        **{"column-3": "custom_string_1", "column-4": ""},
        lists="news",
        list_status="subscribed",
        merge="overwrite",
    )
    assert started.status_code == 303, started.text
    assert started.headers["location"] == path

    done = wait_finished(console, path)
    assert ">Completed</span>" in done
    assert "<dt>Created</dt><dd>2</dd>" in done and "<dt>Errors</dt><dd>1</dd>" in done
    assert 'hx-trigger="every 1s"' not in done  # a finished job is not polled
    assert "Download errors" in done

    stored = stored_contacts(engine, tenant.id, "first_name", "custom_string_1")
    assert stored == {
        "ann@example.com": ("Ann", "gold"),
        "bob@example.com": ("Bob", "silver"),
    }
    assert memberships(engine, tenant.id) == {
        ("ann@example.com", "news"): "active",
        ("bob@example.com", "news"): "active",
    }

    report = console.get(f"{path}/errors")
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(report.text)))
    assert lines[0] == ["line", "email", "error", *HEADER]
    assert len(lines) == 2 and lines[1][0] == "4" and lines[1][3] == "not-an-email"

    history = console.get("/console/imports").text
    assert f'href="/console/imports/{job_id}">people.csv</a>' in history
    assert "<td>Completed</td>" in history


def test_the_progress_block_is_polled_until_the_job_finishes(
    client: TestClient, tenant: Tenant
) -> None:
    """Without a worker the job stays queued: its page polls itself, offers Cancel; once
    cancelled it stops polling."""
    csrf = sign_in(client, tenant.key)
    path = upload(client, csrf, csv_bytes([["email"], ["a@example.com"]]))
    assert post(client, f"{path}/start", csrf, **{"column-0": "email"}).status_code == 303

    part = client.get(path, headers={"HX-Request": "true"})
    assert part.status_code == 200
    assert part.text.lstrip().startswith('<section id="progress"'), part.text[:200]
    assert 'hx-trigger="every 1s"' in part.text and ">Queued</span>" in part.text
    assert ">Cancel</button>" in part.text

    assert post(client, f"{path}/cancel", csrf).status_code == 303
    page = client.get(path).text
    assert ">Cancelled</span>" in page and 'hx-trigger="every 1s"' not in page
    assert ">Cancel</button>" not in page


def test_a_mapping_without_email_or_mapping_twice_is_shown_on_the_step(
    client: TestClient, tenant: Tenant
) -> None:
    csrf = sign_in(client, tenant.key)
    path = upload(client, csrf, csv_bytes([["Who", "Name"], ["a@example.com", "Ann"]]))
    html = client.get(path).text
    assert "no column is recognised as the email: choose one" in html
    assert selected(html) == {0: "", 1: "full_name"}

    refused = post(client, f"{path}/start", csrf, **{"column-1": "full_name"})
    assert refused.status_code == 400
    assert "no column is mapped to email: choose the column that holds it" in refused.text

    twice = post(client, f"{path}/start", csrf, **{"column-0": "email", "column-1": "email"})
    assert twice.status_code == 400
    assert "mapping: more than one column is mapped to &#39;email&#39;" in twice.text
    assert selected(twice.text) == {0: "email", 1: "email"}  # what was sent is kept

    gone = post(client, f"{path}/start", csrf, **{"column-0": "email"}, lists="nope")
    assert gone.status_code == 400 and "list not found: nope" in gone.text

    assert post(client, f"{path}/start", csrf, **{"column-0": "email"}).status_code == 303
    again = post(client, f"{path}/start", csrf, **{"column-0": "email"})
    assert again.status_code == 303  # started already: to its progress


def test_upload_refusals_are_shown_by_the_file_field(client: TestClient, tenant: Tenant) -> None:
    csrf = sign_in(client, tenant.key)
    empty = client.post(
        "/console/imports/upload",
        data={"csrf_token": csrf},
        files={"file": ("empty.csv", b"", "text/csv")},
    )
    assert empty.status_code == 400 and 'id="f-file-error"' in empty.text
    assert "file is empty" in empty.text
    missing = client.post(
        "/console/imports/upload", data={"csrf_token": csrf}, files={"other": ("x", b"x")}
    )
    assert missing.status_code == 400 and "choose a file to upload" in missing.text
    forged = client.post(
        "/console/imports/upload",
        files={"file": ("a.csv", b"email\na@example.com\n", "text/csv")},
        follow_redirects=False,
    )
    assert forged.status_code == 403


def test_a_json_lines_file_and_an_unreadable_one(client: TestClient, tenant: Tenant) -> None:
    csrf = sign_in(client, tenant.key)
    path = upload(client, csrf, b'{"email": "a@example.com", "first_name": "Ann"}\n', "a.jsonl")
    html = client.get(path).text
    assert "A JSON Lines file" in html and "&#34;first_name&#34;: &#34;Ann&#34;" in html
    bad = upload(client, csrf, b"\x1f\x8b not really gzip", "b.csv.gz")
    assert "the file cannot be decompressed" in client.get(bad).text


def test_discard_forgets_the_upload(client: TestClient, tenant: Tenant, engine: Engine) -> None:
    csrf = sign_in(client, tenant.key)
    path = upload(client, csrf, csv_bytes([["email"], ["a@example.com"]]))
    response = post(client, f"{path}/discard", csrf)
    assert response.status_code == 303 and response.headers["location"] == "/console/imports"
    assert client.get(path).status_code == 404


def test_another_workspace_sees_no_draft_or_job(
    client: TestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    csrf = sign_in(client, tenant.key)
    path = upload(client, csrf, csv_bytes([["email"], ["a@example.com"]]))
    client.cookies.clear()
    other_csrf = sign_in(client, other_tenant.key)
    assert client.get(path).status_code == 404
    assert post(client, f"{path}/start", other_csrf, **{"column-0": "email"}).status_code == 404
    assert post(client, f"{path}/discard", other_csrf).status_code == 404
    assert client.get(f"{path}/errors").status_code == 404


def test_a_read_only_key_gets_no_upload_and_is_refused(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    key = make_key(engine, tenant.id, (Permission.CONTACTS_READ, Permission.LISTS_READ))
    csrf = sign_in(client, key)
    page = client.get("/console/imports").text
    assert "Upload" not in page and 'type="file"' not in page
    refused = client.post(
        "/console/imports/upload",
        data={"csrf_token": csrf},
        files={"file": ("a.csv", b"email\na@example.com\n", "text/csv")},
    )
    assert refused.status_code == 403
