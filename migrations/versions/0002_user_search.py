"""Indexes for the Users list: prefix search on lower-cased names, email and user ID,
and name-ordered listing with the filtered columns in the index.

Expression indexes only, so every writer (forms, import, seed, raw SQL) keeps them right
without knowing they exist. PostgreSQL compares the prefix ranges in the "C" collation
(byte order), which is what lets a range on lower(...) use a B-tree index there.

Revision ID: 0002_user_search
Revises: 0001
"""

from alembic import op

revision = "0002_user_search"
down_revision = "0001"
branch_labels = None
depends_on = None

SEARCH_COLUMNS = {
    "ix_users_search_first": "first_name",
    "ix_users_search_last": "last_name",
    "ix_users_search_email": "email",
    "ix_users_search_employee": "employee_id",
}

# Covering indexes: each answers its part of a list request from the index alone.
COVERING = {
    # Name order within one status (and the status sort).
    "ix_users_status_name": "users (status, last_name, first_name, id)",
    # Every filter column in name order: a page, however deep, is a walk of this index.
    "ix_users_name_filters": "users (last_name, first_name, id, status, role, location_id)",
    # One location in name order.
    "ix_users_location_name": "users (location_id, last_name, first_name, id, status, role)",
    # By id, the filtered and sorted columns: checking the members of a group or the
    # users a search found reads this narrow index instead of the wide rows.
    "ix_users_id_cover": "users (id, status, role, location_id, last_name, first_name)",
    "ix_user_groups_group_user": "user_groups (group_id, user_id)",
    # Counting "everyone but archived" scans the narrowest index there is.
    "ix_users_status": "users (status)",
}


def upgrade():
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, column in SEARCH_COLUMNS.items():
        # With the columns a match is checked against, so the planners answer "which
        # users start with ..." from the index alone. SQLite before 3.41 never reads an
        # indexed expression back, but recomputes it from a column the index holds; its
        # indexes carry the rowid (id) anyway. The email index also serves the email sort.
        extra = [column, *(["status", "role", "location_id"] if column == "email" else [])]
        if postgresql:
            key, tail = f'(lower({column}) COLLATE "C")', f" INCLUDE ({', '.join([*extra, 'id'])})"
        else:
            key, tail = f"(lower({column})), {', '.join(extra)}", ""
        op.execute(f"CREATE INDEX {name} ON users ({key}){tail}")
    for name, columns in COVERING.items():
        op.execute(f"CREATE INDEX {name} ON {columns}")


def downgrade():
    for name in COVERING:
        op.execute(f"DROP INDEX {name}")
    for name in SEARCH_COLUMNS:
        op.execute(f"DROP INDEX {name}")
