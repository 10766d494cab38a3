"""A million users: a role filter walks its own name-ordered index; the dashboard's
compliance figures find expired records and their renewals from indexes.

`role IN (...)` with the default statuses (`status != 'archived'`) could use neither
ix_users_status_role_name (status first, and not one value) nor ix_users_name_filters
without reading every row: a million-row scan to find the one administrator. Role first,
then the list's name order, with the other filtered columns in the index so the count and
the page never read the rows. The compliance figures (lmsweb/compliance.py) read the users
with an expired, unrenewed record once: by `expires_on`, then each one's renewal by
`renewal_of_id` (neither was indexed: every renewal check read every record).

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
    op.create_index("ix_course_assignments_expires_on", "course_assignments", ["expires_on"])
    op.create_index(
        "ix_course_assignments_renewal_of_id", "course_assignments", ["renewal_of_id"]
    )


def downgrade():
    op.drop_index("ix_course_assignments_renewal_of_id", table_name="course_assignments")
    op.drop_index("ix_course_assignments_expires_on", table_name="course_assignments")
    op.drop_index("ix_users_role_name", table_name="users")
