"""Two indexes dropped that a wider index begins with: ix_users_status
(ix_users_status_name) and ix_user_groups_group_id (ix_user_groups_group_user). What read
them reads the wider one, the foreign key's check on deleting a group included, and the
users by status come from the kept counts (0015_user_counts). Every insert paid for each.

ix_users_location_id stays, though ix_users_location_name begins with it too: PostgreSQL
ANDs it with the trigram index for a search at one location, and without it the list's
"everything" (a search, a location, a group, a status and a role) took 41.5-44.7 ms
instead of 37.9-38.8 (p50, bench/users_list.py at 1,000,000 users).

Revision ID: 0016_fewer_indexes
Revises: 0015_user_counts
"""

from alembic import op

revision = "0016_fewer_indexes"
down_revision = "0015_user_counts"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index("ix_users_status", table_name="users")
    op.drop_index("ix_user_groups_group_id", table_name="user_groups")


def downgrade():
    op.create_index("ix_user_groups_group_id", "user_groups", ["group_id"])
    op.create_index("ix_users_status", "users", ["status"])
