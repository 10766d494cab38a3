"""Identity: SCIM bearer tokens; the directory's userName and SCIM deletion on users,
the directory's id on groups.

Revision ID: 0008_identity
Revises: 0006_guard_triggers
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_identity"
down_revision = "0006_guard_triggers"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "scim_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=12), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_scim_tokens_created_by_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scim_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_scim_tokens_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_scim_tokens_token_hash")),
    )
    op.add_column("users", sa.Column("scim_user_name", sa.String(length=254), nullable=True))
    op.add_column("users", sa.Column("scim_deleted_at", sa.DateTime(), nullable=True))
    op.add_column("groups", sa.Column("scim_external_id", sa.String(length=255), nullable=True))
    op.create_index(
        "ix_users_scim_user_name",
        "users",
        [sa.text("lower(coalesce(scim_user_name, email))")],
    )


def downgrade():
    op.drop_index("ix_users_scim_user_name", table_name="users")
    # Plain ALTER TABLE DROP COLUMN (SQLite 3.35+): a batch copy of the table would lose
    # the expression indexes and triggers it cannot reflect.
    op.drop_column("groups", "scim_external_id")
    op.drop_column("users", "scim_deleted_at")
    op.drop_column("users", "scim_user_name")
    op.drop_table("scim_tokens")
