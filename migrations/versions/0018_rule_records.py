"""The records an enrolment rule made, found by an index: the Rules page counts them per
rule, and deleting a rule is checked against them (the foreign key). Both read every record
without it: 86 ms of the Rules page at a million users, with no rule at all. Partial: only
the records a rule made are in it.

Revision ID: 0018_rule_records
Revises: 0017_search_column
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_rule_records"
down_revision = "0017_search_column"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_course_assignments_rule",
        "course_assignments",
        ["rule_id"],
        sqlite_where=sa.text("rule_id IS NOT NULL"),
        postgresql_where=sa.text("rule_id IS NOT NULL"),
    )


def downgrade():
    op.drop_index("ix_course_assignments_rule", table_name="course_assignments")
