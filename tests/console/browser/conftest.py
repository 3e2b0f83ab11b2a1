"""Browser tests of the console: Playwright driving Debian's Chromium against a real
`audience serve` process, one browser per test session, one server per backend, a fresh
workspace and browser context per test.

Without /usr/bin/chromium the tests are skipped (one line says so), unless
AUDIENCE_REQUIRE_BROWSER=1 (CI), which makes that a failure. Never `playwright install`:
the Chromium of Playwright 1.64 is 156, Debian's.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from audience.api_keys.schemas import Permission
from audience.config import Settings
from audience.db.engine import build_engine
from audience.kit.server_process import ServerProcess
from tests.conftest import PG_URL, SECRET, SERVER_BACKENDS, make_key, make_workspace

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REQUIRE_BROWSER = os.environ.get("AUDIENCE_REQUIRE_BROWSER") == "1"
NO_BROWSER = (
    "console browser tests skipped: no Chromium at /usr/bin/chromium "
    "(apt-get install chromium chromium-driver; AUDIENCE_REQUIRE_BROWSER=1 makes this a failure)"
)
#: Where the screenshots of docs/console.md live; rewritten when missing, or with
#: AUDIENCE_TEST_UPDATE_SCREENSHOTS=1 (the pages show times, so a rerun always differs).
SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "console"
UPDATE_SCREENSHOTS = os.environ.get("AUDIENCE_TEST_UPDATE_SCREENSHOTS") == "1"
READ_ONLY = (Permission.CONTACTS_READ, Permission.LISTS_READ)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        if REQUIRE_BROWSER:
            pytest.fail(f"AUDIENCE_REQUIRE_BROWSER=1 but there is no {CHROMIUM}")
        pytest.skip(NO_BROWSER)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session", params=SERVER_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend of the server (session-scoped here: one server per backend and worker)."""
    return str(request.param)


def _console_database() -> Iterator[str]:
    """A PostgreSQL database of this worker's console server alone, dropped at the end."""
    admin_url = Settings(database_url=PG_URL).sqlalchemy_url
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"audience_console_{uuid.uuid4().hex[:8]}_{worker}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Console:
    """A running server and an engine on its database (to make workspaces and keys)."""

    server: ServerProcess
    engine: Engine
    backend: str

    @property
    def url(self) -> str:
        return self.server.base_url


@pytest.fixture(scope="session")
def console(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    folder = tmp_path_factory.mktemp(f"console-{backend}")
    databases = _console_database() if backend == "postgres" else None
    url = next(databases) if databases else f"sqlite:///{folder / 'console.db'}"
    server = ServerProcess(
        database_url=url,
        log_path=folder / "server.log",
        secret_key=SECRET,
        # The sign-in limit is the TestClient tests' (tests/console/test_sessions.py): here
        # every test signs in from 127.0.0.1, and some with wrong keys.
        env={"AUDIENCE_AUTO_MIGRATE": "true", "AUDIENCE_CONSOLE_LOGIN_MAX_FAILURES": "10000"},
    )
    server.start()
    engine = build_engine(Settings(database_url=url, secret_key=SECRET))
    try:
        yield Console(server, engine, backend)
    finally:
        server.stop()
        engine.dispose()
        if databases:
            next(databases, None)


@dataclass
class Workspace:
    """A workspace of its own for one test: a key with every permission, a read-only one,
    and an API client with the first."""

    id: str
    key: str
    read_only_key: str
    api: httpx.Client

    def create_list(self, list_id: str, name: str, **fields: object) -> None:
        body = {"workspace_id": self.id, "id": list_id, "name": name, **fields}
        assert self.api.post("/api/lists.create", json=body).status_code == 201

    def import_contacts(self, contacts: Sequence[Mapping[str, object]], lists: list[str]) -> None:
        body = {"workspace_id": self.id, "contacts": list(contacts), "subscribe_to_lists": lists}
        response = self.api.post("/api/contacts.import", json=body)
        assert response.status_code == 200, response.text

    def contact(self, email: str) -> dict[str, Any] | None:
        params = {"workspace_id": self.id, "email": email}
        response = self.api.get("/api/contacts.getByEmail", params=params)
        return response.json()["contact"] if response.status_code == 200 else None


@pytest.fixture
def workspace(console: Console) -> Iterator[Workspace]:
    workspace_id = f"w{uuid.uuid4().hex[:12]}"
    make_workspace(console.engine, workspace_id)
    key = make_key(console.engine, workspace_id)
    read_only = make_key(console.engine, workspace_id, READ_ONLY)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=console.url, headers=headers, timeout=30) as api:
        yield Workspace(workspace_id, key, read_only, api)


@pytest.fixture
def context(browser: Browser, console: Console) -> Iterator[BrowserContext]:
    created = browser.new_context(base_url=console.url, viewport={"width": 1280, "height": 800})
    created.set_default_timeout(10_000)
    yield created
    created.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A page of its own; no script error, CSP violation included, may happen on it."""
    opened = context.new_page()
    errors: list[str] = []
    opened.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    # A refused request (401, 403, 404) is logged by Chromium as a failed resource: expected.
    unexpected = [e for e in errors if not re.search(r"status of (40[0134]|429)", e)]
    assert unexpected == [], unexpected


def screenshot(page: Page, console: Console, name: str, tmp_path: Path) -> Path:
    """The page as it is now, as PNG: into docs/console/ (from the SQLite run, when the file
    is missing or AUDIENCE_TEST_UPDATE_SCREENSHOTS=1), else beside the test."""
    target = SCREENSHOTS / name
    if console.backend != "sqlite" or (target.exists() and not UPDATE_SCREENSHOTS):
        target = tmp_path / name
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), caret="initial")  # "hide" injects a <style>: CSP
    return target


def sign_in(page: Page, key: str) -> None:
    """Sign in with the keyboard, as a user would: the key field has the focus."""
    page.goto("/console/login")
    page.get_by_label("API key").fill(key)
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/contacts")
