"""The `audience` command, run in-process on both databases (and `serve` as a real process)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text
from typer.testing import CliRunner, Result

from audience.cli import app
from audience.db.models import api_keys, workspaces
from audience.kit import crypto
from audience.kit.server_process import ServerProcess
from tests.conftest import SECRET
from tests.db.test_migrations import fresh_database, head_revision

Run = Callable[..., Result]


def _clear_audience_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AUDIENCE_"):
            monkeypatch.delenv(name)


def _runner() -> Run:
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args))

    return run


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Run:
    """`audience ...` against the test's database, with the suite's secret key."""
    _clear_audience_env(monkeypatch)
    monkeypatch.setenv("AUDIENCE_DATABASE_URL", database_url)
    monkeypatch.setenv("AUDIENCE_SECRET_KEY", SECRET)
    return _runner()


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def new_key(cli: Run, workspace_id: str = "acme", *options: str) -> str:
    """Create a workspace (if needed) and a key with the CLI; the key from the last line."""
    if workspace_id not in cli("workspace", "list").stdout:
        ok(cli("workspace", "create", workspace_id, "--name", workspace_id.title()))
    result = ok(cli("key", "create", workspace_id, *options))
    return result.stdout.splitlines()[-1]


def list_lists(client: TestClient, key: str, workspace_id: str = "acme") -> httpx.Response:
    return client.get(
        "/api/lists.list",
        headers={"Authorization": f"Bearer {key}"},
        params={"workspace_id": workspace_id},
    )


def stored_workspaces(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [(r.id, r.name) for r in conn.execute(select(workspaces).order_by(workspaces.c.id))]


def stored_key_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(api_keys)).all())


# --- workspace create / list ----------------------------------------------------------------


def test_workspace_create(cli: Run, engine: Engine) -> None:
    result = ok(cli("workspace", "create", "acme", "--name", "Acme Inc"))
    assert result.stdout.strip() == "created workspace acme (Acme Inc)"
    assert stored_workspaces(engine) == [("acme", "Acme Inc")]


def test_workspace_create_accepts_the_longest_id(cli: Run, engine: Engine) -> None:
    workspace_id = "a_9" + "z" * 29
    assert len(workspace_id) == 32
    ok(cli("workspace", "create", workspace_id, "--name", "Long"))
    assert stored_workspaces(engine) == [(workspace_id, "Long")]


@pytest.mark.parametrize(
    "workspace_id", ["Acme", "a-b", "with space", "", "x" * 33, "acme\n", "caf\u00e9"]
)
def test_workspace_create_rejects_an_invalid_id(
    cli: Run, engine: Engine, workspace_id: str
) -> None:
    result = cli("workspace", "create", workspace_id, "--name", "Acme")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: invalid workspace id"), result.stderr
    assert "a-z, 0-9 and _" in result.stderr
    assert "Traceback" not in result.output
    assert stored_workspaces(engine) == []


@pytest.mark.parametrize("name", ["", "   ", "n" * 256])
def test_workspace_create_rejects_a_bad_name(cli: Run, engine: Engine, name: str) -> None:
    result = cli("workspace", "create", "acme", "--name", name)
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: workspace name must be 1-255 characters"
    assert stored_workspaces(engine) == []


def test_workspace_create_requires_a_name(cli: Run, engine: Engine) -> None:
    result = cli("workspace", "create", "acme")
    assert result.exit_code == 2
    assert "--name" in result.stderr
    assert stored_workspaces(engine) == []


def test_workspace_create_duplicate_is_a_clear_error(cli: Run, engine: Engine) -> None:
    ok(cli("workspace", "create", "acme", "--name", "First"))
    result = cli("workspace", "create", "acme", "--name", "Second")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: workspace already exists: acme"
    assert result.stdout == ""
    assert stored_workspaces(engine) == [("acme", "First")]


def test_workspace_list(cli: Run) -> None:
    assert ok(cli("workspace", "list")).stdout == ""
    ok(cli("workspace", "create", "zeta", "--name", "Zeta Corp"))
    ok(cli("workspace", "create", "acme", "--name", "Acme Inc"))
    lines = ok(cli("workspace", "list")).stdout.splitlines()
    rows = [line.split("\t") for line in lines]
    assert [row[:2] for row in rows] == [["acme", "Acme Inc"], ["zeta", "Zeta Corp"]]
    assert all(len(row) == 3 and row[2].endswith("Z") for row in rows)


# --- key create -----------------------------------------------------------------------------


def test_key_create_prints_the_key_alone_on_the_last_line(
    cli: Run, engine: Engine, client: TestClient
) -> None:
    ok(cli("workspace", "create", "acme", "--name", "Acme"))
    result = ok(cli("key", "create", "acme", "--name", "ci"))
    lines = result.stdout.splitlines()
    key = lines[-1]
    assert key == key.strip() and " " not in key
    parsed = crypto.parse_api_key(key)
    assert parsed is not None and parsed.workspace_id == "acme"
    assert all(key not in line for line in lines[:-1])
    assert key not in result.stderr

    r = list_lists(client, key)
    assert r.status_code == 200, r.text
    assert r.json() == {"lists": []}
    assert stored_key_count(engine) == 1


def test_key_create_defaults_to_every_permission(cli: Run, client: TestClient) -> None:
    key = new_key(cli)
    r = client.post(
        "/api/lists.create",
        headers={"Authorization": f"Bearer {key}"},
        json={"workspace_id": "acme", "id": "news", "name": "News"},
    )
    assert r.status_code == 201, r.text
    listed = ok(cli("key", "list", "acme")).stdout.splitlines()[1].split("\t")
    assert listed[3] == "contacts:read,contacts:write,lists:read,lists:write"


def test_key_create_with_permissions(cli: Run, client: TestClient) -> None:
    ok(cli("workspace", "create", "acme", "--name", "Acme"))
    result = ok(cli("key", "create", "acme", "--permissions", " lists:read , lists:read,"))
    assert "permissions: lists:read\n" in result.stdout
    key = result.stdout.splitlines()[-1]
    headers = {"Authorization": f"Bearer {key}"}
    assert list_lists(client, key).status_code == 200
    r = client.post(
        "/api/lists.create",
        headers=headers,
        json={"workspace_id": "acme", "id": "news", "name": "News"},
    )
    assert r.status_code == 403
    assert r.json() == {"error": "write access to lists required"}


@pytest.mark.parametrize(
    ("permissions", "message"),
    [
        ("lists:read,bogus", "unknown permission 'bogus'"),
        ("lists:admin", "unknown permission 'lists:admin'"),
        ("LISTS:READ", "unknown permission 'LISTS:READ'"),
        ("", "at least one permission is required"),
        (" , ", "at least one permission is required"),
    ],
)
def test_key_create_rejects_bad_permissions(
    cli: Run, engine: Engine, permissions: str, message: str
) -> None:
    ok(cli("workspace", "create", "acme", "--name", "Acme"))
    result = cli("key", "create", "acme", "--permissions", permissions)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: "), result.stderr
    assert message in result.stderr
    assert result.stdout == ""
    assert stored_key_count(engine) == 0


def test_key_create_for_an_unknown_workspace(cli: Run, engine: Engine) -> None:
    result = cli("key", "create", "nope")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: workspace not found: nope"
    assert result.stdout == ""
    assert stored_key_count(engine) == 0


def test_key_create_rejects_an_empty_name(cli: Run, engine: Engine) -> None:
    ok(cli("workspace", "create", "acme", "--name", "Acme"))
    result = cli("key", "create", "acme", "--name", "  ")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: key name must be 1-255 characters"
    assert stored_key_count(engine) == 0


def test_key_create_accepts_a_255_character_name(cli: Run) -> None:
    new_key(cli, "acme", "--name", "n" * 255)
    names = [line.split("\t")[1] for line in ok(cli("key", "list", "acme")).stdout.splitlines()]
    assert names[1:] == ["n" * 255]


def test_key_create_rejects_a_name_longer_than_the_column(cli: Run, engine: Engine) -> None:
    """The api_keys.name column holds 255 characters: longer is a clear error, not a crash."""
    ok(cli("workspace", "create", "acme", "--name", "Acme"))
    result = cli("key", "create", "acme", "--name", "n" * 256)
    assert result.exit_code == 1, result.stdout
    assert result.stderr.startswith("error: "), repr(result.exception)
    assert "name" in result.stderr
    assert stored_key_count(engine) == 0


# --- key list -------------------------------------------------------------------------------


def test_key_list_never_prints_the_key(cli: Run, client: TestClient) -> None:
    first = new_key(cli, "acme", "--name", "first")
    second = new_key(cli, "acme", "--name", "second", "--permissions", "contacts:write")
    assert list_lists(client, first).status_code == 200

    result = ok(cli("key", "list", "acme"))
    for key in (first, second):
        assert key not in result.output
        assert key[-crypto.SECRET_LENGTH :] not in result.output
    header, *lines = result.stdout.splitlines()
    assert header.split("\t") == [
        "id",
        "name",
        "prefix",
        "permissions",
        "created_at",
        "last_used_at",
        "status",
    ]
    rows = {line.split("\t")[1]: line.split("\t") for line in lines}
    assert set(rows) == {"first", "second"}
    for name, key in (("first", first), ("second", second)):
        parsed = crypto.parse_api_key(key)
        assert parsed is not None
        row = rows[name]
        assert row[0] == parsed.key_id
        assert row[2] == f"aud_acme_{parsed.key_id}\u2026"
        assert row[4].endswith("Z")
        assert row[6] == "active"
    assert rows["second"][3] == "contacts:write"
    assert rows["first"][5].endswith("Z")  # used above
    assert rows["second"][5] == "-"  # never used


def test_key_list_shows_only_that_workspace(cli: Run) -> None:
    new_key(cli, "acme", "--name", "acme_key")
    new_key(cli, "globex", "--name", "globex_key")
    lines = ok(cli("key", "list", "globex")).stdout.splitlines()[1:]
    assert [line.split("\t")[1] for line in lines] == ["globex_key"]


def test_key_list_of_an_unknown_workspace(cli: Run) -> None:
    result = cli("key", "list", "nope")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: workspace not found: nope"


# --- key revoke -----------------------------------------------------------------------------


def test_key_revoke_stops_the_key_at_once(cli: Run, client: TestClient) -> None:
    key = new_key(cli)
    other = new_key(cli)
    assert list_lists(client, key).status_code == 200
    parsed = crypto.parse_api_key(key)
    assert parsed is not None

    result = ok(cli("key", "revoke", parsed.key_id))
    assert result.stdout.strip() == f"revoked key {parsed.key_id} of workspace acme"

    r = list_lists(client, key)
    assert r.status_code == 401
    assert r.json() == {"error": "invalid API key"}
    assert list_lists(client, other).status_code == 200
    statuses = {
        line.split("\t")[0]: line.split("\t")[6]
        for line in ok(cli("key", "list", "acme")).stdout.splitlines()[1:]
    }
    assert statuses[parsed.key_id] == "revoked"
    assert list(statuses.values()).count("active") == 1


def test_key_revoke_twice_is_harmless(cli: Run, client: TestClient) -> None:
    key = new_key(cli)
    parsed = crypto.parse_api_key(key)
    assert parsed is not None
    ok(cli("key", "revoke", parsed.key_id))
    ok(cli("key", "revoke", parsed.key_id))
    assert list_lists(client, key).status_code == 401


def test_key_revoke_unknown_key(cli: Run) -> None:
    new_key(cli)
    result = cli("key", "revoke", "nope")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: API key not found: nope"


# --- db upgrade and AUTO_MIGRATE ------------------------------------------------------------


def _revisions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]


def test_db_upgrade_is_idempotent(cli: Run, engine: Engine) -> None:
    ok(cli("workspace", "create", "acme", "--name", "Acme"))
    for _ in range(2):
        result = ok(cli("db", "upgrade"))
        assert result.stdout.strip() == "database schema is up to date"
    assert _revisions(engine) == [head_revision()]
    assert stored_workspaces(engine) == [("acme", "Acme")]


@pytest.fixture
def fresh_cli(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Run, str]]:
    """`audience ...` against a database without even the schema."""
    with fresh_database(backend, tmp_path, request) as url:
        _clear_audience_env(monkeypatch)
        monkeypatch.setenv("AUDIENCE_DATABASE_URL", url)
        monkeypatch.setenv("AUDIENCE_SECRET_KEY", SECRET)
        yield _runner(), url


def test_db_upgrade_creates_the_schema(fresh_cli: tuple[Run, str]) -> None:
    cli, _ = fresh_cli
    ok(cli("db", "upgrade"))
    ok(cli("db", "upgrade"))
    ok(cli("workspace", "create", "acme", "--name", "Acme"))
    assert ok(cli("workspace", "list")).stdout.startswith("acme\tAcme\t")


def test_commands_migrate_by_themselves(fresh_cli: tuple[Run, str]) -> None:
    cli, _ = fresh_cli
    ok(cli("workspace", "create", "acme", "--name", "Acme"))
    key = ok(cli("key", "create", "acme")).stdout.splitlines()[-1]
    assert crypto.parse_api_key(key) is not None


# --- serve ----------------------------------------------------------------------------------


def test_serve_requires_a_secret_key_for_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_audience_env(monkeypatch)
    monkeypatch.setenv("AUDIENCE_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    result = _runner()("serve")
    assert result.exit_code == 1
    assert "AUDIENCE_SECRET_KEY is required" in result.stderr


@pytest.mark.slow
def test_serve_answers_http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real `audience serve` on a fresh SQLite file, its secret generated beside it."""
    db_file = tmp_path / "data" / "audience.db"
    url = f"sqlite:///{db_file}"
    with ServerProcess(database_url=url, log_path=tmp_path / "serve.log") as server:
        secret_file = db_file.with_name("audience.db.secret")
        assert secret_file.exists()
        assert stat.S_IMODE(secret_file.stat().st_mode) & 0o077 == 0

        # The CLI finds the same generated secret, so its keys work against the server.
        _clear_audience_env(monkeypatch)
        monkeypatch.setenv("AUDIENCE_DATABASE_URL", url)
        cli = _runner()
        ok(cli("workspace", "create", "acme", "--name", "Acme"))
        key = ok(cli("key", "create", "acme")).stdout.splitlines()[-1]
        r = httpx.get(
            f"{server.base_url}/api/lists.list",
            params={"workspace_id": "acme"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"lists": []}
        assert httpx.get(f"{server.base_url}/api/lists.list", timeout=10).status_code == 401
