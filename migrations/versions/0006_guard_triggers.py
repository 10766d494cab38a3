"""Courses with training records and groups with members refuse deletion in the database.

On PostgreSQL the foreign keys (RESTRICT) already refuse these deletes; on SQLite they are
enforced only while `PRAGMA foreign_keys` is on, and a sqlite3 shell starts with it off.
These triggers refuse the delete whatever the pragma, with the same message on both
engines (users with training records have had such a trigger since 0001).

"Groups with training data": a group with any member. Group membership is how training
records are reported and filtered by group, and the app itself removes only empty groups.

Revision ID: 0006_guard_triggers
Revises: 0005_import_jobs
"""

from alembic import op

revision = "0006_guard_triggers"
down_revision = "0005_import_jobs"
branch_labels = None
depends_on = None

# table: (trigger, the rows that keep it, message)
GUARDS = {
    "courses": (
        "courses_no_delete_with_records",
        "SELECT 1 FROM course_assignments WHERE course_id = OLD.id",
        "courses with training records are never deleted",
    ),
    "groups": (
        "groups_no_delete_with_members",
        "SELECT 1 FROM user_groups WHERE group_id = OLD.id",
        "groups with members are never deleted",
    ),
}


def upgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, (trigger, kept_by, message) in GUARDS.items():
        if postgres:
            op.execute(f"""
                CREATE FUNCTION {trigger}() RETURNS trigger AS $$
                BEGIN
                    IF EXISTS ({kept_by}) THEN
                        RAISE EXCEPTION '{message}' USING ERRCODE = 'restrict_violation';
                    END IF;
                    RETURN OLD;
                END;
                $$ LANGUAGE plpgsql
            """)
            op.execute(f"""
                CREATE TRIGGER {trigger} BEFORE DELETE ON {table}
                FOR EACH ROW EXECUTE FUNCTION {trigger}()
            """)
        else:
            op.execute(f"""
                CREATE TRIGGER {trigger} BEFORE DELETE ON {table}
                WHEN EXISTS ({kept_by})
                BEGIN SELECT RAISE(ABORT, '{message}'); END
            """)


def downgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, (trigger, _kept_by, _message) in GUARDS.items():
        if postgres:
            op.execute(f"DROP TRIGGER {trigger} ON {table}")
            op.execute(f"DROP FUNCTION {trigger}()")
        else:
            op.execute(f"DROP TRIGGER {trigger}")
