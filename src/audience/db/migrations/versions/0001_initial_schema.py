"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "workspaces",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspaces")),
    )
    op.create_table(
        "api_keys",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("prefix", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("permissions", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_api_keys_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_api_keys")),
    )
    op.create_table(
        "contacts",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("timezone", sa.String(length=255), nullable=True),
        sa.Column("language", sa.String(length=255), nullable=True),
        sa.Column("first_name", sa.String(length=255), nullable=True),
        sa.Column("last_name", sa.String(length=255), nullable=True),
        sa.Column("full_name", sa.String(length=255), nullable=True),
        sa.Column("phone", sa.String(length=255), nullable=True),
        sa.Column("address_line_1", sa.String(length=255), nullable=True),
        sa.Column("address_line_2", sa.String(length=255), nullable=True),
        sa.Column("country", sa.String(length=255), nullable=True),
        sa.Column("postcode", sa.String(length=255), nullable=True),
        sa.Column("state", sa.String(length=255), nullable=True),
        sa.Column("job_title", sa.String(length=255), nullable=True),
        sa.Column("custom_string_1", sa.String(length=255), nullable=True),
        sa.Column("custom_string_2", sa.String(length=255), nullable=True),
        sa.Column("custom_string_3", sa.String(length=255), nullable=True),
        sa.Column("custom_string_4", sa.String(length=255), nullable=True),
        sa.Column("custom_string_5", sa.String(length=255), nullable=True),
        sa.Column("custom_number_1", sa.Float(), nullable=True),
        sa.Column("custom_number_2", sa.Float(), nullable=True),
        sa.Column("custom_number_3", sa.Float(), nullable=True),
        sa.Column("custom_number_4", sa.Float(), nullable=True),
        sa.Column("custom_number_5", sa.Float(), nullable=True),
        sa.Column("custom_datetime_1", sa.DateTime(timezone=True), nullable=True),
        sa.Column("custom_datetime_2", sa.DateTime(timezone=True), nullable=True),
        sa.Column("custom_datetime_3", sa.DateTime(timezone=True), nullable=True),
        sa.Column("custom_datetime_4", sa.DateTime(timezone=True), nullable=True),
        sa.Column("custom_datetime_5", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "custom_json_1", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column(
            "custom_json_2", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column(
            "custom_json_3", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column(
            "custom_json_4", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column(
            "custom_json_5", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_contacts_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "email", name=op.f("pk_contacts")),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contacts_workspace_id_external_id"),
            ["workspace_id", "external_id"],
            unique=False,
        )

    op.create_table(
        "lists",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("is_double_optin", sa.Boolean(), nullable=False),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_lists_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_lists")),
    )
    op.create_table(
        "contact_lists",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("list_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'pending', 'unsubscribed', 'bounced', 'complained')",
            name=op.f("ck_contact_lists_status"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "email"],
            ["contacts.workspace_id", "contacts.email"],
            name=op.f("fk_contact_lists_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "list_id"],
            ["lists.workspace_id", "lists.id"],
            name=op.f("fk_contact_lists_lists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "email", "list_id", name=op.f("pk_contact_lists")),
    )
    with op.batch_alter_table("contact_lists", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contact_lists_workspace_id_list_id_status"),
            ["workspace_id", "list_id", "status"],
            unique=False,
        )


def downgrade() -> None:

    with op.batch_alter_table("contact_lists", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_lists_workspace_id_list_id_status"))

    op.drop_table("contact_lists")
    op.drop_table("lists")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_workspace_id_external_id"))

    op.drop_table("contacts")
    op.drop_table("api_keys")
    op.drop_table("workspaces")
