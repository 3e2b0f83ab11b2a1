"""Settings, read from the environment with the AUDIENCE_ prefix (docs/reliability.md lists
every limit, its setting and its default)."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from audience.errors import ConfigurationError

#: The shortest secret accepted: API keys' hashes are only as strong as this key.
MIN_SECRET_LENGTH = 32


class Settings(BaseSettings):
    """Every knob of the service; built explicitly, never at import time."""

    model_config = SettingsConfigDict(env_prefix="AUDIENCE_", extra="ignore")

    database_url: str = "sqlite:///./audience.db"
    secret_key: str | None = None
    auto_migrate: bool = True

    # --- the import ----------------------------------------------------------------------------
    max_contacts_per_import: int = Field(default=10_000, ge=1)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    #: List ids in one subscribe_to_lists.
    max_lists_per_import: int = Field(default=100, ge=1)
    #: Contacts times lists in one request: the memberships one request may write.
    max_memberships_per_import: int = Field(default=200_000, ge=1)
    #: Imports one worker decodes and validates at once; more wait, then get 503.
    max_concurrent_imports: int = Field(default=2, ge=1)
    #: How long an import waits for its turn to be decoded before 503.
    import_wait_seconds: float = Field(default=10.0, ge=0)
    #: How long the answer of a request sent with an Idempotency-Key is kept.
    idempotency_ttl_seconds: float = Field(default=24 * 3600, gt=0)
    #: How PostgreSQL receives an import: binary COPY into a temporary table ("copy"), or
    #: binary arrays read by unnest ("unnest": for PostgreSQL-compatible engines without
    #: temporary tables or binary COPY, such as CockroachDB). Ignored on SQLite.
    bulk_write: Literal["copy", "unnest"] = "copy"

    # --- server-side import jobs ---------------------------------------------------------------
    #: Job workers in each `audience serve` process (0: none; `audience worker` runs others).
    import_workers: int = Field(default=1, ge=0)
    max_upload_bytes: int = Field(default=2 * 1024**3, ge=1024)
    #: How long an upload may take to arrive (instead of AUDIENCE_BODY_TIMEOUT_SECONDS).
    upload_timeout_seconds: float = Field(default=3600.0, gt=0)
    #: A job whose worker has not renewed its lease for this long is claimed by another.
    import_lease_seconds: float = Field(default=60.0, gt=0)
    import_batch_size: int = Field(default=2000, ge=1, le=10_000)
    import_poll_seconds: float = Field(default=1.0, gt=0)
    import_report_days: float = Field(default=7.0, gt=0)
    import_job_days: float = Field(default=30.0, gt=0)

    # --- the HTTP edge (per worker process) ------------------------------------------------------
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    max_header_count: int = Field(default=100, ge=10)
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=60.0, gt=0)
    keepalive_timeout_seconds: float = Field(default=5.0, gt=0)
    max_concurrent_requests: int = Field(default=64, ge=1)
    shutdown_timeout_seconds: float = Field(default=30.0, gt=0)

    # --- the database ----------------------------------------------------------------------------
    #: PostgreSQL connections per worker process; as many again may be opened under load.
    db_pool_size: int = Field(default=5, ge=1)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    db_statement_timeout_seconds: float = Field(default=120.0, gt=0)
    db_lock_timeout_seconds: float = Field(default=10.0, gt=0)
    db_idle_in_transaction_timeout_seconds: float = Field(default=60.0, gt=0)
    db_connect_timeout_seconds: int = Field(default=5, ge=1)
    sqlite_busy_timeout_seconds: float = Field(default=30.0, gt=0)
    #: How often a process checks whether imports outgrew the planner's statistics.
    statistics_check_seconds: float = Field(default=30.0, gt=0)

    # --- the console (/console) ------------------------------------------------------------------
    #: A console session ends after this long without a request.
    console_session_idle_seconds: float = Field(default=12 * 3600, gt=0)
    #: Failed sign-ins one client address may make per window; then 429 until it ends.
    console_login_max_failures: int = Field(default=10, ge=1)
    console_login_window_seconds: float = Field(default=15 * 60, gt=0)

    # --- logs and metrics ------------------------------------------------------------------------
    log_format: Literal["plain", "json"] = "plain"
    access_log: bool = True
    metrics: bool = False

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with the driver spelled out for SQLAlchemy."""
        url = self.database_url
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        if url.startswith("sqlite://") and not url.startswith("sqlite+"):
            return "sqlite+pysqlite://" + url[len("sqlite://") :]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file, or None for PostgreSQL or an in-memory database."""
        if not self.is_sqlite:
            return None
        _, _, rest = self.sqlalchemy_url.partition(":///")
        path = rest.split("?", 1)[0]
        if not path or path == ":memory:":
            return None
        return Path(path)

    def resolved_secret_key(self) -> str:
        """The key that hashes API keys; generated beside the SQLite file when unset.

        A secret shorter than MIN_SECRET_LENGTH, given or found in the file, is refused.
        """
        if self.secret_key is not None:
            return _checked(self.secret_key, "AUDIENCE_SECRET_KEY")
        db_file = self.sqlite_path
        if db_file is None:
            raise ConfigurationError(
                "AUDIENCE_SECRET_KEY is required unless the database is a SQLite file"
            )
        secret_file = db_file.with_name(db_file.name + ".secret")
        if not secret_file.exists():
            _write_secret(secret_file)
        return _checked(secret_file.read_text().strip(), str(secret_file))


def _checked(secret: str, where: str) -> str:
    if len(secret.strip()) < MIN_SECRET_LENGTH:
        raise ConfigurationError(
            f"the secret key in {where} is too short: use at least {MIN_SECRET_LENGTH} "
            "characters, e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    return secret.strip()


def _write_secret(path: Path) -> None:
    """Create the secret file atomically with mode 0600: a concurrent first start either
    finds no file or a complete one, never an empty one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.write(fd, secrets.token_urlsafe(48).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)  # fails if another process created it first: keep theirs
    except FileExistsError:
        pass
    finally:
        os.unlink(temporary)
