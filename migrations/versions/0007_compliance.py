"""The compliance cycle: course schedules, managers, enrolment rules, waiting enrolments,
schedule notices (the once-only keys of reminders and escalations), import job leases.

Revision ID: 0007_compliance
Revises: 0006_guard_triggers
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_compliance"
down_revision = "0006_guard_triggers"
branch_labels = None
depends_on = None


def _add_reference(table: str, column: str, target: str, name: str) -> None:
    """A nullable foreign-key column added in place: on SQLite a batch (copy-and-move)
    would drop the triggers that keep training data from being deleted."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN {column} INTEGER "
            f"CONSTRAINT {name} REFERENCES {target} (id) ON DELETE RESTRICT"
        )
    else:
        op.add_column(table, sa.Column(column, sa.Integer(), nullable=True))
        op.create_foreign_key(name, table, target, [column], ["id"], ondelete="RESTRICT")


def _drop_reference(table: str, column: str, name: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(name, table, type_="foreignkey")
        op.drop_column(table, column)
    else:
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")


def upgrade():
    # Existing courses keep today's behaviour (no reminders) until an administrator sets
    # their schedule; new courses get the form's defaults.
    for name in ("remind_before_days", "remind_overdue_every_days", "escalate_after_days",
                 "valid_for_days"):
        op.add_column("courses", sa.Column(name, sa.Integer(), server_default="0", nullable=False))
    op.add_column(
        "courses", sa.Column("renew_before_days", sa.Integer(), server_default="30", nullable=False)
    )
    op.add_column(
        "courses", sa.Column("emails_enabled", sa.Boolean(), server_default=sa.true(), nullable=False)
    )

    op.create_table(
        "enrolment_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("location_id", sa.Integer(), nullable=True),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("due_days", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "(group_id IS NULL) <> (location_id IS NULL)",
            name=op.f("ck_enrolment_rules_group_or_location"),
        ),
        sa.CheckConstraint("due_days > 0", name=op.f("ck_enrolment_rules_due_days_positive")),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"],
                                name=op.f("fk_enrolment_rules_group_id_groups"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["location_id"], ["locations.id"],
                                name=op.f("fk_enrolment_rules_location_id_locations"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["course_id"], ["courses.id"],
                                name=op.f("fk_enrolment_rules_course_id_courses"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"],
                                name=op.f("fk_enrolment_rules_created_by_id_users"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrolment_rules")),
    )
    op.create_index("ix_enrolment_rules_group", "enrolment_rules", ["group_id"])
    op.create_index("ix_enrolment_rules_location", "enrolment_rules", ["location_id"])

    _add_reference("users", "manager_id", "users", "fk_users_manager_id_users")
    op.add_column(
        "users", sa.Column("wants_digest", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.create_index("ix_users_manager_id", "users", ["manager_id"])

    op.add_column("course_assignments", sa.Column("notified_at", sa.DateTime(), nullable=True))
    op.add_column("course_assignments", sa.Column("expires_on", sa.Date(), nullable=True))
    _add_reference("course_assignments", "rule_id", "enrolment_rules",
                   "fk_course_assignments_rule_id_enrolment_rules")
    _add_reference("course_assignments", "renewal_of_id", "course_assignments",
                   "fk_course_assignments_renewal_of_id_course_assignments")
    op.create_index("ix_course_assignments_notified", "course_assignments", ["notified_at"])
    # Records from before the cycle existed were announced by whoever assigned them: the
    # worker must not send a flood of assignment notices on its first pass.
    op.execute(
        "UPDATE course_assignments SET notified_at = assigned_at WHERE notified_at IS NULL"
    )

    op.create_table(
        "waiting_enrolments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("renewal_of_id", sa.Integer(), nullable=True),
        sa.Column("due_days", sa.Integer(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("assignment_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_waiting_enrolments_user_id_users"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["course_id"], ["courses.id"],
                                name=op.f("fk_waiting_enrolments_course_id_courses"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["rule_id"], ["enrolment_rules.id"],
                                name=op.f("fk_waiting_enrolments_rule_id_enrolment_rules"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["renewal_of_id"], ["course_assignments.id"],
                                name=op.f("fk_waiting_enrolments_renewal_of_id_course_assignments"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["assignment_id"], ["course_assignments.id"],
                                name=op.f("fk_waiting_enrolments_assignment_id_course_assignments"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waiting_enrolments")),
    )
    op.create_index(
        "uq_waiting_enrolments_open", "waiting_enrolments", ["user_id", "course_id"],
        unique=True, sqlite_where=sa.text("resolved_at IS NULL"),
        postgresql_where=sa.text("resolved_at IS NULL"),
    )
    op.create_index(
        "ix_waiting_enrolments_course", "waiting_enrolments", ["course_id", "resolved_at", "id"]
    )

    op.create_table(
        "schedule_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("occurrence", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["assignment_id"], ["course_assignments.id"],
                                name=op.f("fk_schedule_notices_assignment_id_course_assignments"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_schedule_notices_user_id_users"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_notices")),
        sa.UniqueConstraint("key", name=op.f("uq_schedule_notices_key")),
    )
    op.create_index(
        "ix_schedule_notices_assignment", "schedule_notices",
        ["assignment_id", "kind", "occurrence"],
    )

    op.add_column("import_jobs", sa.Column("lease_until", sa.DateTime(), nullable=True))


def downgrade():
    op.drop_column("import_jobs", "lease_until")
    op.drop_index("ix_schedule_notices_assignment", table_name="schedule_notices")
    op.drop_table("schedule_notices")
    op.drop_index("ix_waiting_enrolments_course", table_name="waiting_enrolments")
    op.drop_index("uq_waiting_enrolments_open", table_name="waiting_enrolments")
    op.drop_table("waiting_enrolments")
    op.drop_index("ix_course_assignments_notified", table_name="course_assignments")
    _drop_reference("course_assignments", "renewal_of_id",
                    "fk_course_assignments_renewal_of_id_course_assignments")
    _drop_reference("course_assignments", "rule_id",
                    "fk_course_assignments_rule_id_enrolment_rules")
    op.drop_column("course_assignments", "expires_on")
    op.drop_column("course_assignments", "notified_at")
    op.drop_index("ix_users_manager_id", table_name="users")
    _drop_reference("users", "manager_id", "fk_users_manager_id_users")
    op.drop_column("users", "wants_digest")
    op.drop_index("ix_enrolment_rules_location", table_name="enrolment_rules")
    op.drop_index("ix_enrolment_rules_group", table_name="enrolment_rules")
    op.drop_table("enrolment_rules")
    for name in ("emails_enabled", "renew_before_days", "valid_for_days",
                 "escalate_after_days", "remind_overdue_every_days", "remind_before_days"):
        op.drop_column("courses", name)
