"""A client generated from /openapi.json works against a real server, with typed values.

openapi-python-client (a test dependency; it needs no network) turns the served document
into a Python package, imported from a temporary directory. Through that package alone,
against `audience serve` on each backend, every operation is called: the document is then
enough to use the API, and what the server answers parses into the documented types.
"""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from audience.kit.server_process import ServerProcess
from tests.conftest import SECRET, Tenant
from tests.web.support import served_document

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
PACKAGE = "generated_audience_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The client package generated from the served document, imported."""
    root = tmp_path_factory.mktemp("generated")
    document = root / "openapi.json"
    document.write_text(json.dumps(served_document()))
    config = root / "config.json"
    config.write_text(json.dumps({"post_hooks": []}))  # no formatter run: nothing to fetch
    command = [str(GENERATOR), "generate", "--path", str(document)]
    command += ["--output-path", str(root / PACKAGE), "--meta", "none"]
    command += ["--fail-on-warning", "--config", str(config)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(root))
    try:
        package = importlib.import_module(PACKAGE)
        modules = ("api.contacts", "api.lists", "api.imports", "api.health", "models", "client")
        for module in (*modules, "errors", "types"):
            importlib.import_module(f"{PACKAGE}.{module}")
        yield package
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def _call(module: str, operation: str, client: Any, **kwargs: Any) -> Any:
    """The operation's typed answer, once its status is checked to be a success."""
    api = importlib.import_module(f"{PACKAGE}.api.{module}.{operation}")
    response = api.sync_detailed(client=client, **kwargs)
    assert 200 <= response.status_code < 300, (operation, response.status_code, response.content)
    return response.parsed


def _upload(models: Any, ws: str, content: bytes, options: dict[str, Any] | None = None) -> Any:
    files = importlib.import_module(f"{PACKAGE}.types")
    upload = files.File(payload=io.BytesIO(content), file_name="people.csv", mime_type="text/csv")
    form = models.CreateImportCreateForm(workspace_id=ws, file=upload)
    if options is not None:
        form.options = json.dumps(options)
    return form


def _drive_imports(models: Any, client: Any, ws: str) -> None:
    """imports.*: a form uploaded, its job followed to its end (the server's worker imports
    it), listed, its failed rows downloaded as CSV; a queued and a running job cancelled."""
    content = b"email,first_name\nann@example.com,Ann\nnot-an-email,X\n"
    options = {"subscribe_to_lists": ["news"], "list_status": "active"}
    job = _call("imports", "create_import", client, body=_upload(models, ws, content, options))
    assert isinstance(job, models.JobResponse)
    assert isinstance(job.import_, models.JobOut)
    assert (job.import_.file_name, job.import_.format_) == ("people.csv", models.JobOutFormat.CSV)
    assert isinstance(job.import_.created_at, datetime)
    job_id = job.import_.id
    deadline = time.monotonic() + 60
    while True:
        found = _call("imports", "get_import", client, workspace_id=ws, id=job_id).import_
        if found.status is models.JobOutStatus.COMPLETED:
            break
        assert found.status in (models.JobOutStatus.QUEUED, models.JobOutStatus.RUNNING), found
        assert time.monotonic() < deadline, found.to_dict()
        time.sleep(0.05)
    assert (found.total_rows, found.created, found.errors, found.error) == (2, 1, 1, None)
    assert isinstance(found.finished_at, datetime) and found.finished_at.tzinfo
    assert found.started_at is not None and found.started_at <= found.finished_at
    page = _call("imports", "list_imports", client, workspace_id=ws, limit=1)
    assert isinstance(page, models.JobsPage)
    assert ([j.id for j in page.imports], page.next_cursor) == ([job_id], None)
    report = _call("imports", "get_import_errors", client, workspace_id=ws, id=job_id)
    assert report == (
        "line,email,error,email,first_name\r\n"
        "3,not-an-email,invalid email format,not-an-email,X\r\n"
    )
    api = importlib.import_module(f"{PACKAGE}.api.imports.cancel_import")
    finished = api.sync_detailed(
        client=client, body=models.CancelRequest(workspace_id=ws, id=job_id)
    )
    assert finished.status_code == 400
    assert isinstance(finished.parsed, models.ErrorResponse)
    assert finished.parsed.error == "import already finished"

    # One job of a workspace at a time: the second waits while the first (large) one runs.
    many = b"email\n" + b"".join(b"p%d@example.com\n" % i for i in range(50_000))
    first = _call("imports", "create_import", client, body=_upload(models, ws, many)).import_
    second = _call("imports", "create_import", client, body=_upload(models, ws, content)).import_
    for waiting in (second, first):
        body = models.CancelRequest(workspace_id=ws, id=waiting.id)
        cancelled = _call("imports", "cancel_import", client, body=body).import_
        assert cancelled.status is models.JobOutStatus.CANCELLED, cancelled.to_dict()
        assert isinstance(cancelled.finished_at, datetime)
        if waiting is second:  # it never started: the first was still ahead of it
            assert (cancelled.started_at, cancelled.processed_rows) == (None, 0)

    refused = importlib.import_module(f"{PACKAGE}.api.imports.create_import").sync_detailed(
        client=client, body=_upload(models, ws, content, {"merge": "sometimes"})
    )
    assert refused.status_code == 400
    assert refused.parsed.error == "options: merge must be one of overwrite, fill_blanks"


@pytest.mark.slow
def test_the_generated_client_drives_a_real_server(
    generated: ModuleType, database_url: str, tenant: Tenant, tmp_path: Path
) -> None:
    models = importlib.import_module(f"{PACKAGE}.models")
    client_module = importlib.import_module(f"{PACKAGE}.client")
    ws = tenant.id
    paris = timezone(timedelta(hours=2))
    log = tmp_path / "server.log"
    with ServerProcess(database_url, log, workers=1, secret_key=SECRET) as server:
        served = httpx.get(f"{server.base_url}/openapi.json", timeout=10).json()
        assert served == served_document(), "the real server serves the document generated from"
        client = client_module.AuthenticatedClient(
            base_url=server.base_url, token=tenant.key, raise_on_unexpected_status=True
        )
        with client:
            # contacts.list with nothing but the workspace: no filter is required
            page = _call("contacts", "list_contacts", client, workspace_id=ws)
            assert isinstance(page, models.ContactsPage)
            assert (page.contacts, page.next_cursor) == ([], None)

            created = _call(
                "lists",
                "create_list",
                client,
                body=models.CreateListRequest(workspace_id=ws, id="news", name="News"),
            ).list_
            assert isinstance(created, models.ListOut)
            assert isinstance(created.created_at, datetime) and created.created_at.tzinfo
            assert (created.is_double_optin, created.description) == (False, None)

            contacts = [
                models.ContactInput(
                    email="Jane@Example.com",
                    external_id="crm-1",
                    first_name="Jane",
                    timezone="Europe/Paris",
                    custom_number_1=4.5,
                    custom_datetime_1=datetime(2024, 5, 1, 9, 30, tzinfo=paris),
                    custom_json_1=models.ContactInputCustomJson1Type0.from_dict(
                        {"plan": "pro", "tags": ["a", ["b"]]}
                    ),
                ),
                models.ContactInput(email="john@example.com", last_name="Doe"),
            ]
            imported = _call(
                "contacts",
                "batch_import_contacts",
                client,
                body=models.BatchImportContactsRequest(
                    workspace_id=ws, contacts=contacts, subscribe_to_lists=["news"]
                ),
            )
            assert isinstance(imported, models.BatchImportContactsResponse)
            assert [(op.index, op.email, op.action) for op in imported.operations] == [
                (0, "jane@example.com", models.UpsertContactOperationAction.CREATE),
                (1, "john@example.com", models.UpsertContactOperationAction.CREATE),
            ]
            assert imported.error is None

            by_email = _call(
                "contacts",
                "get_contact_by_email",
                client,
                workspace_id=ws,
                email="jane@example.com",
            ).contact
            assert isinstance(by_email, models.ContactOut)
            assert isinstance(by_email.created_at, datetime)
            assert by_email.created_at.utcoffset() == timedelta(0)
            assert by_email.custom_datetime_1 == datetime(2024, 5, 1, 7, 30, tzinfo=UTC)
            assert by_email.custom_number_1 == 4.5
            assert by_email.custom_json_1.to_dict() == {"plan": "pro", "tags": ["a", ["b"]]}
            assert (by_email.timezone, by_email.first_name, by_email.phone) == (
                "Europe/Paris",
                "Jane",
                None,
            )
            (membership,) = by_email.contact_lists
            assert membership.list_id == "news"
            assert membership.status is models.MembershipStatus.ACTIVE
            assert isinstance(membership.updated_at, datetime)

            by_id = _call(
                "contacts",
                "get_contact_by_external_id",
                client,
                workspace_id=ws,
                external_id="crm-1",
            ).contact
            assert by_id.to_dict() == by_email.to_dict()

            count = _call("contacts", "count_contacts", client, workspace_id=ws)
            assert count.total_contacts == 2

            page = _call("contacts", "list_contacts", client, workspace_id=ws)
            assert [c.email for c in page.contacts] == ["jane@example.com", "john@example.com"]
            assert [c.contact_lists for c in page.contacts] == [None, None]  # not asked for
            page = _call(
                "contacts",
                "list_contacts",
                client,
                workspace_id=ws,
                limit=1,
                with_contact_lists=True,
            )
            assert [len(c.contact_lists) for c in page.contacts] == [1]
            rest = _call(
                "contacts", "list_contacts", client, workspace_id=ws, cursor=page.next_cursor
            )
            assert [c.email for c in rest.contacts] == ["john@example.com"]

            upserted = _call(
                "contacts",
                "upsert_contact",
                client,
                body=models.UpsertContactRequest(
                    workspace_id=ws,
                    contact=models.ContactInput(email="john@example.com", phone="1"),
                ),
            )
            assert upserted.action is models.UpsertContactResponseAction.UPDATE

            _call(
                "contacts",
                "update_contact_list_status",
                client,
                body=models.UpdateStatusRequest(
                    workspace_id=ws,
                    email="jane@example.com",
                    list_id="news",
                    status=models.MembershipStatus.UNSUBSCRIBED,
                ),
            )
            lists = _call("lists", "list_lists", client, workspace_id=ws).lists
            assert [item.id for item in lists] == ["news"]
            updated = _call(
                "lists",
                "update_list",
                client,
                body=models.UpdateListRequest(workspace_id=ws, id="news", description="About"),
            ).list_
            assert (updated.name, updated.description) == ("News", "About")
            cleared = _call(
                "lists",
                "update_list",
                client,
                body=models.UpdateListRequest(workspace_id=ws, id="news", description=None),
            ).list_
            assert cleared.description is None  # null clears it
            assert _call("lists", "get_list", client, workspace_id=ws, id="news").list_.id == "news"

            _drive_imports(models, client, ws)

            # a documented error answer parses as ErrorResponse
            api = importlib.import_module(f"{PACKAGE}.api.contacts.get_contact_by_email")
            missing = api.sync_detailed(client=client, workspace_id=ws, email="nobody@example.com")
            assert missing.status_code == 404
            assert isinstance(missing.parsed, models.ErrorResponse)
            assert missing.parsed.error == "contact not found: nobody@example.com"

            deleted = _call(
                "contacts",
                "delete_contact",
                client,
                body=models.DeleteContactRequest(workspace_id=ws, email="john@example.com"),
            )
            assert deleted.success is True
            _call(
                "lists",
                "delete_list",
                client,
                body=models.DeleteListRequest(workspace_id=ws, id="news"),
            )
            assert _call("health", "health", client).status == "ok"

        anonymous = client_module.Client(base_url=server.base_url, raise_on_unexpected_status=True)
        with anonymous:
            api = importlib.import_module(f"{PACKAGE}.api.contacts.count_contacts")
            refused = api.sync_detailed(client=anonymous, workspace_id=ws)
            assert refused.status_code == 401
            assert refused.headers["WWW-Authenticate"] == "Bearer"
            assert isinstance(refused.parsed, models.ErrorResponse)
