"""external_id index: partial (only contacts that have one)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

WHERE = sa.text("external_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_workspace_id_external_id")
        batch_op.create_index(
            "ix_contacts_workspace_id_external_id",
            ["workspace_id", "external_id"],
            unique=False,
            postgresql_where=WHERE,
            sqlite_where=WHERE,
        )


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_workspace_id_external_id")
        batch_op.create_index(
            "ix_contacts_workspace_id_external_id", ["workspace_id", "external_id"], unique=False
        )
