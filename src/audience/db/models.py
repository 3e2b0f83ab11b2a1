"""The schema (docs/data-model.md): every table leads with workspace_id, and so does every key.

The contact fields of the spec's ContactInput are listed here once, by kind: the table is
built from them, and the contacts feature's rules and shapes read them from here.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

TEXT_MAX_LENGTH = 255
EMAIL_MAX_LENGTH = 254

TEXT_FIELDS: tuple[str, ...] = (
    "external_id",
    "timezone",
    "language",
    "first_name",
    "last_name",
    "full_name",
    "phone",
    "address_line_1",
    "address_line_2",
    "country",
    "postcode",
    "state",
    "job_title",
    *(f"custom_string_{i}" for i in range(1, 6)),
)
NUMBER_FIELDS: tuple[str, ...] = tuple(f"custom_number_{i}" for i in range(1, 6))
DATETIME_FIELDS: tuple[str, ...] = tuple(f"custom_datetime_{i}" for i in range(1, 6))
JSON_FIELDS: tuple[str, ...] = tuple(f"custom_json_{i}" for i in range(1, 6))

#: Every optional contact field, in the column order of the contacts table.
FIELDS: tuple[str, ...] = TEXT_FIELDS + NUMBER_FIELDS + DATETIME_FIELDS + JSON_FIELDS


class MembershipStatus(StrEnum):
    """The status of a contact in a list."""

    ACTIVE = "active"
    PENDING = "pending"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


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
    # The PostgreSQL import's scratch space (contacts/statements.py, pg_upsert): what its
    # upsert last carried in or out of the row. Never read anywhere else.
    Column("import_mask", BigInteger, nullable=True),
    # The input_digest of the import row that last wrote the contact (contacts/validation.py);
    # every write of a contact's fields sets it (NULL when not written by an import).
    Column("import_digest", String(32), nullable=True),
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
        f"status IN ({', '.join(repr(s.value) for s in MembershipStatus)})", name="status"
    ),
    Index(None, "workspace_id", "list_id", "status"),
)

#: The answer of a request sent with an Idempotency-Key, kept so that a retry gets it again.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=True),  # null while the first request runs
    Column("body", LargeBinary, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
    Index(None, "workspace_id", "expires_at"),
)

#: Server-side imports of a file (import_jobs/): the queue is this table.
import_jobs = Table(
    "import_jobs",
    metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("id", String(32), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("file_name", String(255), nullable=False),
    Column("format", String(8), nullable=False),
    Column("file_bytes", BigInteger, nullable=False),
    Column("options", Text, nullable=False),  # the import's options, as JSON
    Column("header", Text, nullable=True),  # a CSV file's header cells, as JSON
    Column("total_rows", Integer, nullable=True),
    Column("processed_rows", Integer, nullable=False),
    Column("created", Integer, nullable=False),
    Column("updated", Integer, nullable=False),
    Column("unchanged", Integer, nullable=False),
    Column("errors", Integer, nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("error", Text, nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", Timestamp, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("started_at", Timestamp, nullable=True),
    Column("finished_at", Timestamp, nullable=True),
    ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
    CheckConstraint(
        "status IN ('uploading', 'queued', 'running', 'completed', 'failed', 'cancelled')",
        name="status",
    ),
    Index(None, "workspace_id", "created_at"),
    Index(None, "status", "created_at"),
)

#: The uploaded file of a job, in chunks, where every process and host can read it.
import_file_chunks = Table(
    "import_file_chunks",
    metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("job_id", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
    ForeignKeyConstraint(
        ["workspace_id", "job_id"],
        ["import_jobs.workspace_id", "import_jobs.id"],
        ondelete="CASCADE",
    ),
)

#: The rows of a job that failed, in file order: its downloadable error report.
import_row_errors = Table(
    "import_row_errors",
    metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("job_id", String(32), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("email", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("raw", Text, nullable=False),  # CSV: the row's cells as a JSON array; JSONL: the line
    ForeignKeyConstraint(
        ["workspace_id", "job_id"],
        ["import_jobs.workspace_id", "import_jobs.id"],
        ondelete="CASCADE",
    ),
)

#: A signed-in console session (sessions/): only a keyed hash of its random id is stored.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("id_hash", String(64), primary_key=True),
    Column("key_id", String(16), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("last_seen_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    ForeignKeyConstraint(
        ["workspace_id", "key_id"], ["api_keys.workspace_id", "api_keys.id"], ondelete="CASCADE"
    ),
    Index(None, "workspace_id", "expires_at"),
)

#: Failed console sign-ins per client address, in a fixed window: the rate limit every worker
#: process shares. Keyed by address, not by workspace: a failure may name none.
console_login_attempts = Table(
    "console_login_attempts",
    metadata,
    Column("address", String(64), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_started_at", Timestamp, nullable=False),
    Index(None, "window_started_at"),
)
