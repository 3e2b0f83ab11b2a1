"""import jobs: the queue of server-side imports, their files in chunks, their failed rows

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "import_jobs",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("file_bytes", sa.BigInteger(), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("header", sa.Text(), nullable=True),
        sa.Column("total_rows", sa.Integer(), nullable=True),
        sa.Column("processed_rows", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('uploading', 'queued', 'running', 'completed', 'failed', 'cancelled')",
            name=op.f("ck_import_jobs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_import_jobs_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_import_jobs")),
    )
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_import_jobs_workspace_id_created_at"),
            ["workspace_id", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_import_jobs_status_created_at"), ["status", "created_at"], unique=False
        )
    for table, columns in (
        (
            "import_file_chunks",
            [
                sa.Column("seq", sa.Integer(), nullable=False),
                sa.Column("data", sa.LargeBinary(), nullable=False),
            ],
        ),
        (
            "import_row_errors",
            [
                sa.Column("line", sa.Integer(), nullable=False),
                sa.Column("email", sa.Text(), nullable=False),
                sa.Column("error", sa.Text(), nullable=False),
                sa.Column("raw", sa.Text(), nullable=False),
            ],
        ),
    ):
        key = "seq" if table == "import_file_chunks" else "line"
        op.create_table(
            table,
            sa.Column("workspace_id", sa.String(length=32), nullable=False),
            sa.Column("job_id", sa.String(length=32), nullable=False),
            *columns,
            sa.ForeignKeyConstraint(
                ["workspace_id", "job_id"],
                ["import_jobs.workspace_id", "import_jobs.id"],
                name=op.f(f"fk_{table}_import_jobs"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("workspace_id", "job_id", key, name=op.f(f"pk_{table}")),
        )


def downgrade() -> None:
    op.drop_table("import_row_errors")
    op.drop_table("import_file_chunks")
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_jobs_status_created_at"))
        batch_op.drop_index(batch_op.f("ix_import_jobs_workspace_id_created_at"))
    op.drop_table("import_jobs")
