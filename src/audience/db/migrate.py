"""Bring a database's schema up to date with the one Alembic history."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from audience.db.session import transaction

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    """An Alembic configuration pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine) -> None:
    """Apply every pending migration (idempotent)."""
    config = alembic_config()
    with transaction(engine, write=True) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
