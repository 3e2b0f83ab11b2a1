"""contacts.import_mask and import_digest: the import's scratch column, the input digest

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable without a default: PostgreSQL adds it without rewriting the table.
    op.add_column("contacts", sa.Column("import_mask", sa.BigInteger(), nullable=True))
    op.add_column("contacts", sa.Column("import_digest", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("import_digest")
        batch_op.drop_column("import_mask")
