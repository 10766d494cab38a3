"""Dashboard: covering indexes for the per-course figures, open-record filters, user counts.

Revision ID: 0003_dashboard
Revises: 0002_user_search
"""

from alembic import op

revision = "0003_dashboard"
down_revision = "0002_user_search"
branch_labels = None
depends_on = None


def upgrade():
    # The dashboard's figures read these covering indexes instead of the table: records per
    # course and state, and the open records by due date (overdue, due soon).
    op.create_index(
        "ix_course_assignments_open_course",
        "course_assignments",
        ["archived_at", "course_id", "state", "due_date"],
    )
    op.create_index(
        "ix_course_assignments_open_due",
        "course_assignments",
        ["archived_at", "state", "due_date", "course_id"],
    )
    # Users by status reads ix_users_status, which 0002_user_search creates.


def downgrade():
    op.drop_index("ix_course_assignments_open_due", table_name="course_assignments")
    op.drop_index("ix_course_assignments_open_course", table_name="course_assignments")
