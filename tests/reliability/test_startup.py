"""Starting up: migrations from many processes at once, several servers on one fresh database,
the secret key's rules, and the permissions of the files a first start creates.

Each test gets a database nobody has touched: a SQLite file that does not exist yet, or a
PostgreSQL database created for it (and dropped after).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from audience.config import MIN_SECRET_LENGTH, Settings
from audience.db.migrate import alembic_config
from audience.db.models import metadata
from audience.kit.server_process import AUDIENCE, ServerProcess, audience_env, free_port, run_cli
from tests.conftest import PG_URL, SECRET

SECRET_FILE_SUFFIX = ".secret"


@pytest.fixture
def fresh_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """The URL of a database that does not exist yet (SQLite) or is empty (PostgreSQL)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'fresh.db'}"
        return
    if not PG_URL:
        pytest.skip("PostgreSQL not configured (set AUDIENCE_TEST_DATABASE_URL)")
    admin_url = Settings(database_url=PG_URL).sqlalchemy_url
    name = f"audience_startup_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def assert_schema_at_head(url: str) -> None:
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    engine = create_engine(Settings(database_url=url).sqlalchemy_url)
    try:
        with engine.connect() as conn:
            versions = {
                row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))
            }
            tables = set(inspect(conn).get_table_names())
            conn.rollback()
    finally:
        engine.dispose()
    assert versions == heads, (versions, heads)
    assert {t.name for t in metadata.sorted_tables} <= tables, tables


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- migrations ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_five_db_upgrades_at_once_on_a_fresh_database_all_succeed(fresh_url: str) -> None:
    env = audience_env(fresh_url, SECRET)
    processes = [
        subprocess.Popen(
            [str(AUDIENCE), "db", "upgrade"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(5)
    ]
    outcomes = [(p.wait(120), *p.communicate()) for p in processes]
    for code, out, err in outcomes:
        assert code == 0, err
        assert "database schema is up to date" in out, (out, err)
        assert "Traceback" not in err, err
    assert_schema_at_head(fresh_url)


@pytest.mark.slow
def test_three_servers_started_at_once_on_a_fresh_database_all_serve(
    fresh_url: str, backend: str, tmp_path: Path
) -> None:
    """They migrate it together (auto-migrate); on SQLite without AUDIENCE_SECRET_KEY they also
    generate its secret file together, and must agree on one secret."""
    secret = None if backend == "sqlite" else SECRET
    servers = [
        ServerProcess(fresh_url, tmp_path / f"server{i}.log", workers=1, secret_key=secret)
        for i in range(3)
    ]
    try:
        with ThreadPoolExecutor(len(servers)) as pool:
            for started in [pool.submit(server.start, 90.0) for server in servers]:
                started.result()
        assert len({server.port for server in servers}) == 3
        assert_schema_at_head(fresh_url)

        run_cli(fresh_url, "workspace", "create", "acme", "--name", "Acme", secret_key=secret)
        created = run_cli(fresh_url, "key", "create", "acme", secret_key=secret)
        key = created.stdout.strip().splitlines()[-1]
        for server in servers:  # one secret: a key made by the CLI works on every server
            answer = httpx.get(
                f"{server.base_url}/api/lists.list",
                params={"workspace_id": "acme"},
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text

        if backend == "sqlite":
            database = Path(fresh_url.removeprefix("sqlite:///"))
            secret_file = database.with_name(database.name + SECRET_FILE_SUFFIX)
            content = secret_file.read_text()
            assert len(content.strip()) >= MIN_SECRET_LENGTH, content
            assert content == content.strip()  # written whole, nothing appended
            # While the servers run: the database, its WAL files, the lock and the secret.
            private = ["", "-wal", "-shm", ".migrate.lock", SECRET_FILE_SUFFIX]
            for suffix in private:
                path = database.with_name(database.name + suffix)
                assert mode(path) == 0o600, (path.name, oct(mode(path)))
            leftovers = sorted(
                p.name
                for p in database.parent.iterdir()
                if p.name not in {database.name + suffix for suffix in private}
            )
            assert leftovers == [], leftovers  # no temporary secret file left behind
    finally:
        for server in servers:
            server.stop()
    for server in servers:
        assert "Traceback" not in server.log(), server.log()[-3000:]


# --- the secret key -----------------------------------------------------------------------------


def serve_refused(
    url: str, secret_key: str | None, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """`audience serve` that must refuse to start: it exits, with no server behind it."""
    command = [str(AUDIENCE), "serve", "--port", str(free_port())]
    result = subprocess.run(
        command,
        env=audience_env(url, secret_key),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.mark.parametrize("content", ["", "\n", "short-secret\n", " " * 40 + "\n"])
def test_an_empty_or_short_secret_file_is_refused(content: str, tmp_path: Path) -> None:
    database = tmp_path / "audience.db"
    secret_file = tmp_path / ("audience.db" + SECRET_FILE_SUFFIX)
    secret_file.write_text(content)
    result = serve_refused(f"sqlite:///{database}", None, tmp_path)
    assert result.returncode == 1, result
    assert result.stderr.startswith("error: "), result.stderr
    assert str(secret_file) in result.stderr, result.stderr
    assert "too short" in result.stderr, result.stderr
    assert f"at least {MIN_SECRET_LENGTH} characters" in result.stderr, result.stderr
    assert secret_file.read_text() == content  # left for the operator to fix, not replaced
    assert not database.exists()  # refused before anything was created


@pytest.mark.parametrize("secret", ["x" * (MIN_SECRET_LENGTH - 1), " " * 64, "   s3cr3t-v4lue   "])
def test_a_short_secret_in_the_environment_is_refused(secret: str, tmp_path: Path) -> None:
    database = tmp_path / "audience.db"
    result = serve_refused(f"sqlite:///{database}", secret, tmp_path)
    assert result.returncode == 1, result
    assert result.stderr.startswith("error: "), result.stderr
    assert "AUDIENCE_SECRET_KEY" in result.stderr and "too short" in result.stderr, result
    if secret.strip():
        assert secret.strip() not in result.stderr, result.stderr  # never echoed
    assert not database.exists()
    assert not (tmp_path / ("audience.db" + SECRET_FILE_SUFFIX)).exists()


def test_postgres_without_a_secret_is_refused(tmp_path: Path) -> None:
    result = serve_refused("postgresql://nobody@127.0.0.1:1/none", None, tmp_path)
    assert result.returncode == 1, result
    assert "AUDIENCE_SECRET_KEY is required" in result.stderr, result.stderr


_RACE = """
import sys, time
from audience.config import Settings
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
print(Settings(database_url=sys.argv[1]).resolved_secret_key())
"""


def test_first_starts_at_once_agree_on_one_complete_private_secret(tmp_path: Path) -> None:
    """Eight processes generate the secret file at the same instant: one secret, whole, 0600."""
    database = tmp_path / "data" / "audience.db"
    url = f"sqlite:///{database}"
    env = audience_env(url, None)
    start = time.time() + 2.0  # every process has imported its modules by then
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _RACE, url, repr(start)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    outcomes = [(p.wait(60), *p.communicate()) for p in processes]
    assert all(code == 0 for code, _, _ in outcomes), outcomes
    secrets = {out.strip() for _, out, _ in outcomes}
    assert len(secrets) == 1, secrets
    secret_file = database.with_name(database.name + SECRET_FILE_SUFFIX)
    assert secrets == {secret_file.read_text().strip()}
    assert len(secrets.pop()) >= MIN_SECRET_LENGTH
    assert mode(secret_file) == 0o600, oct(mode(secret_file))
    assert sorted(os.listdir(secret_file.parent)) == [secret_file.name]  # no temporary left
