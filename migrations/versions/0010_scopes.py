"""Scoped administrators and SCIM tokens; per-location license allocations.

- `scopes`: a set of locations and groups. A user is in a scope when their location is one
  of its locations or they belong to one of its groups. An administrator (or a SCIM token)
  with a scope sees and changes only the users in it; without one (scope_id NULL) they are
  organisation-wide. An empty scope reaches nobody (deny by default). Locations and groups
  named by a scope cannot be removed (RESTRICT): a scope never widens or shrinks silently.
- `course_location_allocations`: "Lisbon may use 40 of these 200 seats": a cap on the
  seats (reserved + used) held by open records of users at that location.

Revision ID: 0010_scopes
Revises: 0009_substring_search
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_scopes"
down_revision = "0009_substring_search"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "scopes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scopes")),
    )
    for member, table in (("location", "locations"), ("group", "groups")):
        op.create_table(
            f"scope_{table}",
            sa.Column("scope_id", sa.Integer(), nullable=False),
            sa.Column(f"{member}_id", sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint(
                ["scope_id"],
                ["scopes.id"],
                name=op.f(f"fk_scope_{table}_scope_id_scopes"),
                ondelete="CASCADE",
            ),
            sa.ForeignKeyConstraint(
                [f"{member}_id"],
                [f"{table}.id"],
                name=op.f(f"fk_scope_{table}_{member}_id_{table}"),
                ondelete="RESTRICT",
            ),
            sa.PrimaryKeyConstraint("scope_id", f"{member}_id", name=op.f(f"pk_scope_{table}")),
        )
        op.create_index(
            op.f(f"ix_scope_{table}_{member}_id"), f"scope_{table}", [f"{member}_id"]
        )
    for table in ("users", "scim_tokens"):
        if op.get_bind().dialect.name == "postgresql":
            op.add_column(table, sa.Column("scope_id", sa.Integer(), nullable=True))
            op.create_foreign_key(
                op.f(f"fk_{table}_scope_id_scopes"),
                table,
                "scopes",
                ["scope_id"],
                ["id"],
                ondelete="RESTRICT",
            )
        else:  # SQLite adds a column with its reference in place (no table copy)
            op.execute(
                f"ALTER TABLE {table} ADD COLUMN scope_id INTEGER "
                "REFERENCES scopes (id) ON DELETE RESTRICT"
            )
        op.create_index(op.f(f"ix_{table}_scope_id"), table, ["scope_id"])
    op.create_table(
        "course_location_allocations",
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("location_id", sa.Integer(), nullable=False),
        sa.Column("seats", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "seats >= 0", name=op.f("ck_course_location_allocations_seats_nonnegative")
        ),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.id"],
            name=op.f("fk_course_location_allocations_course_id_courses"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["locations.id"],
            name=op.f("fk_course_location_allocations_location_id_locations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint(
            "course_id", "location_id", name=op.f("pk_course_location_allocations")
        ),
    )


def downgrade():
    op.drop_table("course_location_allocations")
    for table in ("users", "scim_tokens"):
        op.drop_index(op.f(f"ix_{table}_scope_id"), table_name=table)
        if op.get_bind().dialect.name == "postgresql":
            op.drop_constraint(op.f(f"fk_{table}_scope_id_scopes"), table, type_="foreignkey")
            op.drop_column(table, "scope_id")
        # SQLite cannot drop a column that holds a reference (and a table copy would lose
        # the triggers): the column stays, NULL, which reads as organisation-wide.
        else:
            op.execute(f"UPDATE {table} SET scope_id = NULL")
    op.drop_table("scope_groups")
    op.drop_table("scope_locations")
    op.drop_table("scopes")
