"""The schema (DESIGN §3): every table leads with workspace_id, and so does every key."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from audience.contacts.fields import (
    DATETIME_FIELDS,
    EMAIL_MAX_LENGTH,
    JSON_FIELDS,
    NUMBER_FIELDS,
    TEXT_FIELDS,
    TEXT_MAX_LENGTH,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

JsonType = JSON().with_variant(JSONB(), "postgresql")
Timestamp = DateTime(timezone=True)

MEMBERSHIP_STATUSES = ("active", "pending", "unsubscribed", "bounced", "complained")

workspaces = Table(
    "workspaces",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("created_at", Timestamp, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("id", String(16), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("prefix", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("permissions", String(255), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("last_used_at", Timestamp, nullable=True),
    Column("revoked_at", Timestamp, nullable=True),
    ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
)

contacts = Table(
    "contacts",
    metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("email", String(EMAIL_MAX_LENGTH), primary_key=True),
    *(Column(name, String(TEXT_MAX_LENGTH)) for name in TEXT_FIELDS),
    *(Column(name, Float) for name in NUMBER_FIELDS),
    *(Column(name, Timestamp) for name in DATETIME_FIELDS),
    *(Column(name, JsonType) for name in JSON_FIELDS),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
    # Partial: only contacts that carry an external_id are in it, so a lookup by email can
    # never mistake it for a cheaper path (on a table without statistics PostgreSQL did).
    Index(
        None,
        "workspace_id",
        "external_id",
        postgresql_where=text("external_id IS NOT NULL"),
        sqlite_where=text("external_id IS NOT NULL"),
    ),
)

lists = Table(
    "lists",
    metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("id", String(32), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("is_double_optin", Boolean, nullable=False),
    Column("is_public", Boolean, nullable=False),
    Column("description", Text, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
)

contact_lists = Table(
    "contact_lists",
    metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("email", String(EMAIL_MAX_LENGTH), primary_key=True),
    Column("list_id", String(32), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    ForeignKeyConstraint(
        ["workspace_id", "email"],
        ["contacts.workspace_id", "contacts.email"],
        ondelete="CASCADE",
    ),
    ForeignKeyConstraint(
        ["workspace_id", "list_id"], ["lists.workspace_id", "lists.id"], ondelete="CASCADE"
    ),
    CheckConstraint(
        "status IN ('active', 'pending', 'unsubscribed', 'bounced', 'complained')",
        name="status",
    ),
    Index(None, "workspace_id", "list_id", "status"),
)
