"""The dashboard's figures, kept: one snapshot per audience (the organisation, or one
administrator scope), computed by the worker and read by the dashboard in one row.

At a million users the compliance figures (per group, location and manager), the course
figures and the users by status read every training record: seconds per request. A large
organisation's dashboard reads the latest snapshot instead and says when it was computed
("as of …"), and against which day overdue and expired were counted (they change with
the date and no write). See lmsweb/figures.py.

`scope_id` NULL is the organisation; a scope's snapshot goes with its scope (CASCADE), and
the snapshot also records the scope's members so one that no longer matches is never shown.

`ix_course_assignments_user_open` covers the one read of the records a snapshot needs: per
user, in user order, whether they have current, open and overdue records (a scan of this
narrow index, merged with the users in id order, instead of the table's rows).

Revision ID: 0012_figures
Revises: 0011_speed
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_figures"
down_revision = "0011_speed"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "figure_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["scope_id"],
            ["scopes.id"],
            name=op.f("fk_figure_snapshots_scope_id_scopes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_figure_snapshots")),
    )
    op.create_index("ix_figure_snapshots_scope", "figure_snapshots", ["scope_id", "id"])
    op.create_index(
        "ix_course_assignments_user_open",
        "course_assignments",
        ["user_id", "archived_at", "state", "due_date"],
    )


def downgrade():
    op.drop_index("ix_course_assignments_user_open", table_name="course_assignments")
    op.drop_index("ix_figure_snapshots_scope", table_name="figure_snapshots")
    op.drop_table("figure_snapshots")
