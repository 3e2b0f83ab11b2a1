"""console: signed-in sessions (a keyed hash of each id) and failed sign-ins per address

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id", "key_id"],
            ["api_keys.workspace_id", "api_keys.id"],
            name=op.f("fk_console_sessions_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "id_hash", name=op.f("pk_console_sessions")),
    )
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_console_sessions_workspace_id_expires_at"),
            ["workspace_id", "expires_at"],
            unique=False,
        )
    op.create_table(
        "console_login_attempts",
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_console_login_attempts")),
    )
    with op.batch_alter_table("console_login_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_console_login_attempts_window_started_at"),
            ["window_started_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("console_login_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_login_attempts_window_started_at"))
    op.drop_table("console_login_attempts")
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_sessions_workspace_id_expires_at"))
    op.drop_table("console_sessions")
