"""The Users list at a million users: a role filter walks its own name-ordered index.

`role IN (...)` with the default statuses (`status != 'archived'`) could use neither
ix_users_status_role_name (status first, and not one value) nor ix_users_name_filters
without reading every row: a million-row scan to find the one administrator. Role first,
then the list's name order, with the other filtered columns in the index so the count and
the page never read the rows.

Revision ID: 0011_speed
Revises: 0010_scopes
"""

from alembic import op

revision = "0011_speed"
down_revision = "0010_scopes"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_users_role_name",
        "users",
        ["role", "last_name", "first_name", "id", "status", "location_id"],
    )


def downgrade():
    op.drop_index("ix_users_role_name", table_name="users")
