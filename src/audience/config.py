"""Settings, read from the environment with the AUDIENCE_ prefix."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from audience.errors import ConfigurationError


class Settings(BaseSettings):
    """Every knob of the service; built explicitly, never at import time."""

    model_config = SettingsConfigDict(env_prefix="AUDIENCE_", extra="ignore")

    database_url: str = "sqlite:///./audience.db"
    secret_key: str | None = None
    max_contacts_per_import: int = Field(default=10_000, ge=1)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    auto_migrate: bool = True
    db_pool_size: int = Field(default=10, ge=1)
    #: How PostgreSQL receives an import: binary COPY into a temporary table ("copy"), or
    #: binary arrays read by unnest ("unnest": for PostgreSQL-compatible engines without
    #: temporary tables or binary COPY, such as CockroachDB). Ignored on SQLite.
    bulk_write: Literal["copy", "unnest"] = "copy"

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
        """The key that hashes API keys; generated beside the SQLite file when unset."""
        if self.secret_key:
            return self.secret_key
        db_file = self.sqlite_path
        if db_file is None:
            raise ConfigurationError(
                "AUDIENCE_SECRET_KEY is required unless the database is a SQLite file"
            )
        secret_file = db_file.with_name(db_file.name + ".secret")
        if not secret_file.exists():
            secret_file.parent.mkdir(parents=True, exist_ok=True)
            secret_file.touch(mode=0o600)
            secret_file.write_text(secrets.token_urlsafe(48))
        return secret_file.read_text().strip()
