"""The `audience` command: serve, migrate, and manage workspaces and keys."""

from __future__ import annotations

import logging.config
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, NoReturn

import typer
import uvicorn
from pydantic import ValidationError
from sqlalchemy import Connection

from audience.api_keys import service as api_keys
from audience.api_keys.schemas import ALL_PERMISSIONS, parse_permissions
from audience.config import Settings
from audience.db.distribute import Progress, is_citus
from audience.db.engine import build_engine
from audience.db.migrate import upgrade
from audience.db.session import transaction
from audience.errors import AppError
from audience.file_client.command import import_file
from audience.kit.clock import isoformat_utc
from audience.web.logs import log_config
from audience.workspaces import service as workspaces

app = typer.Typer(help="Audience: a self-hosted contacts service.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
workspace_app = typer.Typer(help="Workspaces.", no_args_is_help=True)
key_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(workspace_app, name="workspace")
app.add_typer(key_app, name="key")


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def database(*, write: bool) -> Iterator[tuple[Settings, Connection]]:
    """Settings and one transaction, the schema brought up to date first when AUTO_MIGRATE."""
    settings = load_settings()
    engine = build_engine(settings)
    try:
        if settings.auto_migrate:
            upgrade(engine)
        with transaction(engine, write=write) as conn:
            yield settings, conn
    except AppError as exc:
        fail(exc.message)
    finally:
        engine.dispose()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve the HTTP API (behind a TLS reverse proxy when exposed: see the README)."""
    settings = load_settings()
    try:
        settings.resolved_secret_key()
        if settings.auto_migrate:
            _migrate(settings)
    except AppError as exc:
        fail(exc.message)
    with _metrics_folder(settings):
        uvicorn.run(
            "audience.app:worker_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            # The limits uvicorn lacks (head size and count, slow heads and bodies) are added
            # by our protocol (web/protocol.py); concurrency is bounded by web/access.py.
            http="audience.web.protocol:GuardedHttpToolsProtocol",
            loop="uvloop",
            # uvicorn types these as int but waits on them as float seconds.
            timeout_keep_alive=settings.keepalive_timeout_seconds,  # type: ignore[arg-type]
            timeout_graceful_shutdown=settings.shutdown_timeout_seconds,  # type: ignore[arg-type]
            log_config=log_config(settings.log_format),
            access_log=False,
            server_header=False,
        )


@app.command()
def worker(
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="Jobs imported at once [default: AUDIENCE_IMPORT_WORKERS]."),
    ] = None,
) -> None:
    """Import the queued import jobs (a host that serves no HTTP), until stopped."""
    import signal
    import threading

    from audience.import_jobs.worker import Workers
    from audience.kit.gil import hand_over_sooner

    hand_over_sooner()  # as a server's worker does (audience.app)
    settings = load_settings()
    engine = build_engine(settings)
    try:
        if settings.auto_migrate:
            upgrade(engine)
    except AppError as exc:
        fail(exc.message)
    logging.config.dictConfig(log_config(settings.log_format))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    workers = Workers(engine, settings, threads or max(1, settings.import_workers))
    workers.start()
    typer.echo(f"importing with {len(workers.workers)} worker(s); stop with Ctrl-C", err=True)
    stop.wait()
    workers.stop(timeout=settings.shutdown_timeout_seconds)
    engine.dispose()


@contextmanager
def _metrics_folder(settings: Settings) -> Iterator[None]:
    """A fresh folder where every worker writes its metrics (prometheus multiprocess mode)."""
    if not settings.metrics:
        yield
        return
    folder = tempfile.mkdtemp(prefix="audience-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder  # kit/metrics.py reads it in each worker
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _migrate(settings: Settings, progress: Progress | None = None) -> None:
    """The schema brought up to date (and distributed on Citus, a line per table to
    `progress`)."""
    engine = build_engine(settings)
    try:
        upgrade(engine, progress)
    finally:
        engine.dispose()


def load_settings() -> Settings:
    """The settings from the environment, or a clear message naming the bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "AUDIENCE_" + str(first["loc"][0]).upper() if first.get("loc") else "a setting"
        fail(f"{name}: {first['msg']}", code=2)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending schema migration (safe to run from several processes at once).
    On a Citus coordinator, the tables are distributed too (docs/scaling.md)."""
    try:
        _migrate(load_settings(), progress=typer.echo)
    except AppError as exc:
        fail(exc.message)
    typer.echo("database schema is up to date")


@db_app.command("distribute")
def db_distribute() -> None:
    """Turn a PostgreSQL database with the Citus extension into a distributed one: the schema
    brought up to date, then every table not distributed yet distributed by workspace, its
    rows moved to the workers, a line per table (docs/scaling.md)."""
    settings = load_settings()
    if settings.is_sqlite:
        fail("a SQLite database cannot be distributed: it needs PostgreSQL with Citus", code=2)
    engine = build_engine(settings)
    try:
        with engine.connect() as conn:
            if not is_citus(conn):
                fail(
                    "the database has no Citus extension: install Citus, CREATE EXTENSION "
                    "citus and add the worker nodes first (docs/scaling.md)",
                    code=2,
                )
        done = upgrade(engine, progress=typer.echo)
    except AppError as exc:
        fail(exc.message)
    finally:
        engine.dispose()
    typer.echo("every table is distributed" + ("" if done else " (it was already)"))


@workspace_app.command("create")
def workspace_create(
    workspace_id: Annotated[str, typer.Argument(metavar="ID", help="1-32 of [a-z0-9_].")],
    name: Annotated[str, typer.Option("--name", help="Display name.")],
) -> None:
    """Create a workspace."""
    with database(write=True) as (_, conn):
        created = workspaces.create_workspace(conn, workspace_id=workspace_id, name=name)
    typer.echo(f"created workspace {created.id} ({created.name})")


@workspace_app.command("list")
def workspace_list() -> None:
    """List workspaces."""
    with database(write=False) as (_, conn):
        for ws in workspaces.list_workspaces(conn):
            typer.echo(f"{ws.id}\t{ws.name}\t{isoformat_utc(ws.created_at)}")


@key_app.command("create")
def key_create(
    workspace_id: Annotated[str, typer.Argument(metavar="WORKSPACE_ID")],
    name: Annotated[str, typer.Option(help="What the key is for.")] = "default",
    permissions: Annotated[
        str, typer.Option(help="Comma list of " + ",".join(ALL_PERMISSIONS))
    ] = ",".join(ALL_PERMISSIONS),
) -> None:
    """Create an API key; it is printed once, alone on the last line."""
    try:
        perms = parse_permissions(permissions)
    except ValueError as exc:
        fail(str(exc), code=2)
    with database(write=True) as (settings, conn):
        new = api_keys.create_key(
            conn,
            workspace_id=workspace_id,
            name=name,
            permissions=perms,
            secret_key=settings.resolved_secret_key(),
        )
    typer.echo(f"created key {new.info.id} for workspace {workspace_id}", err=False)
    typer.echo(f"permissions: {','.join(new.info.permissions)}")
    typer.echo("store it now: it will not be shown again")
    typer.echo(new.key)


@key_app.command("list")
def key_list(workspace_id: Annotated[str, typer.Argument(metavar="WORKSPACE_ID")]) -> None:
    """List a workspace's keys (never the keys themselves)."""
    with database(write=False) as (_, conn):
        keys = api_keys.list_keys(conn, workspace_id=workspace_id)
    typer.echo("id\tname\tprefix\tpermissions\tcreated_at\tlast_used_at\tstatus")
    for k in keys:
        status = "revoked" if k.revoked_at else "active"
        typer.echo(
            f"{k.id}\t{k.name}\t{k.prefix}…\t{','.join(k.permissions)}\t"
            f"{isoformat_utc(k.created_at)}\t{_when(k.last_used_at)}\t{status}"
        )


def _when(value: datetime | None) -> str:
    return "-" if value is None else isoformat_utc(value)


@key_app.command("revoke")
def key_revoke(key_id: Annotated[str, typer.Argument(metavar="KEY_ID")]) -> None:
    """Revoke a key: it stops working at once."""
    with database(write=True) as (_, conn):
        info = api_keys.revoke_key(conn, key_id=key_id)
    typer.echo(f"revoked key {info.id} of workspace {info.workspace_id}")


app.command("import")(import_file)


def main() -> None:
    app(prog_name="audience")


if __name__ == "__main__":
    main()
