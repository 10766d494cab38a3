"""The users list shows each user's latest invitation state without a query per row.

Revision ID: 0004_invite_status
Revises: 0003_dashboard
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_invite_status"
down_revision = "0003_dashboard"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("invite_status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("invite_error", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("invite_error")
        batch_op.drop_column("invite_status")
