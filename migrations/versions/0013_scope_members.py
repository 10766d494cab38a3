"""Scope members, kept: one row per administrator scope and user it reaches, with the
user's status and role, so a scoped administrator's list and count are index ranges.

A user is in a scope when their location is one of its locations or they belong to one of
its groups (lmsweb/scope.py, `defined_condition`). Asked of every row, that is an OR of
a location range and a group membership: PostgreSQL walked every user of the organisation
to count a scope of 11,730 (see #17). `scope_members` holds the answer, kept right by the
database itself on both engines, as the search index of 0009_substring_search is, so every
writer (forms, import's bulk statements and COPY, SCIM, seed, raw SQL) keeps it correct:
- users: insert, a change of location (membership), of status or role (the copies);
  a deleted user's rows go with it (CASCADE);
- user_groups: insert, delete, update;
- scope_locations, scope_groups: insert, delete, update; a deleted scope's rows go with it.
A row leaves only when nothing of its scope reaches the user any more (`REACHED`).

On PostgreSQL the bulk writes (inserted users, inserted and deleted group links) are
followed once per statement, from its transition table, the rest row by row. PostgreSQL
runs concurrent writers: a change to a user's links in a scope's group locks the user's
row first (two removals of a user's last two ways into a scope would each see the other's
link still there), and a change to a scope's locations or groups locks `users` and
`user_groups` against writers until it commits (a user moving into a location as it joins
a scope would be missed by both). SQLite has one writer at a time.

`flask lms check` compares the table with the definition.

Revision ID: 0013_scope_members
Revises: 0012_figures
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_scope_members"
down_revision = "0012_figures"
branch_labels = None
depends_on = None

# Whether anything of scope {s} still reaches user {u}: their location, or one of their groups.
REACHED = (
    "(EXISTS (SELECT 1 FROM users r JOIN scope_locations rl ON rl.location_id = r.location_id"
    " WHERE r.id = {u} AND rl.scope_id = {s})"
    " OR EXISTS (SELECT 1 FROM user_groups rg JOIN scope_groups rs ON rs.group_id = rg.group_id"
    " WHERE rg.user_id = {u} AND rs.scope_id = {s}))"
)
# Everyone each scope reaches (the fill, and `flask lms check`'s definition).
EVERYONE = (
    "SELECT sl.scope_id, u.id, u.status, u.role FROM scope_locations sl"
    " JOIN users u ON u.location_id = sl.location_id"
    " UNION SELECT sg.scope_id, u.id, u.status, u.role FROM scope_groups sg"
    " JOIN user_groups ug ON ug.group_id = sg.group_id JOIN users u ON u.id = ug.user_id"
)
INTO = "INTO scope_members (scope_id, user_id, status, role) "


def _statements(pg: bool) -> dict[str, list[str]]:
    """The SQL each change runs, by the name of the change (the same on both engines but
    for the ignored duplicate: `ON CONFLICT DO NOTHING` or `INSERT OR IGNORE`)."""
    insert = "INSERT " + INTO if pg else "INSERT OR IGNORE " + INTO
    ignore = " ON CONFLICT DO NOTHING" if pg else ""

    def leave(user: str, scopes: str) -> str:
        return (
            f"DELETE FROM scope_members WHERE user_id = {user} AND scope_id IN ({scopes})"
            f" AND NOT {REACHED.format(s='scope_members.scope_id', u=user)}"
        )

    def leave_scope(scope: str, users: str) -> str:
        return (
            f"DELETE FROM scope_members WHERE scope_id = {scope} AND user_id IN ({users})"
            f" AND NOT {REACHED.format(s=scope, u='scope_members.user_id')}"
        )

    return {
        "user_joins_location": [
            f"{insert}SELECT scope_id, new.id, new.status, new.role FROM scope_locations"
            f" WHERE location_id = new.location_id{ignore}"
        ],
        "user_leaves_location": [
            leave("new.id", "SELECT scope_id FROM scope_locations WHERE location_id = old.location_id")
        ],
        "user_copies": [
            "UPDATE scope_members SET status = new.status, role = new.role WHERE user_id = new.id"
        ],
        "membership_added": [
            f"{insert}SELECT sg.scope_id, u.id, u.status, u.role FROM scope_groups sg"
            f" JOIN users u ON u.id = new.user_id WHERE sg.group_id = new.group_id{ignore}"
        ],
        "membership_removed": [
            leave("old.user_id", "SELECT scope_id FROM scope_groups WHERE group_id = old.group_id")
        ],
        "scope_location_added": [
            f"{insert}SELECT new.scope_id, id, status, role FROM users"
            f" WHERE location_id = new.location_id{ignore}"
        ],
        "scope_location_removed": [
            leave_scope("old.scope_id", "SELECT id FROM users WHERE location_id = old.location_id")
        ],
        "scope_group_added": [
            f"{insert}SELECT new.scope_id, u.id, u.status, u.role FROM user_groups ug"
            f" JOIN users u ON u.id = ug.user_id WHERE ug.group_id = new.group_id{ignore}"
        ],
        "scope_group_removed": [
            leave_scope(
                "old.scope_id", "SELECT user_id FROM user_groups WHERE group_id = old.group_id"
            )
        ],
    }


def _sqlite() -> None:
    sql = _statements(pg=False)

    def trigger(name: str, event: str, when: str | None, *changes: str) -> None:
        body = ";\n".join(s for change in changes for s in sql[change])
        condition = f" WHEN {when}" if when else ""
        op.execute(
            f"CREATE TRIGGER scope_members_{name} AFTER {event}{condition} BEGIN\n{body};\nEND"
        )

    trigger("user_insert", "INSERT ON users", "new.location_id IS NOT NULL", "user_joins_location")
    trigger(
        "user_location",
        "UPDATE OF location_id ON users",
        "old.location_id IS NOT new.location_id",
        "user_leaves_location",
        "user_joins_location",
    )
    trigger(
        "user_copies",
        "UPDATE OF status, role ON users",
        "old.status IS NOT new.status OR old.role IS NOT new.role",
        "user_copies",
    )
    trigger("membership_insert", "INSERT ON user_groups", None, "membership_added")
    trigger("membership_delete", "DELETE ON user_groups", None, "membership_removed")
    trigger(
        "membership_update",
        "UPDATE ON user_groups",
        None,
        "membership_removed",
        "membership_added",
    )
    trigger("location_insert", "INSERT ON scope_locations", None, "scope_location_added")
    trigger("location_delete", "DELETE ON scope_locations", None, "scope_location_removed")
    trigger(
        "location_update",
        "UPDATE ON scope_locations",
        None,
        "scope_location_removed",
        "scope_location_added",
    )
    trigger("group_insert", "INSERT ON scope_groups", None, "scope_group_added")
    trigger("group_delete", "DELETE ON scope_groups", None, "scope_group_removed")
    trigger(
        "group_update", "UPDATE ON scope_groups", None, "scope_group_removed", "scope_group_added"
    )


# PostgreSQL's triggers: (name, event, level). Writes to users and removals and additions of
# group links are followed once per statement, from its transition tables: bulk writes
# (the import's COPY of users, its UPDATE of 10,000 locations, its INSERT of their groups)
# cost a join, where a row trigger cost a function call per row (an import of 100,000 rows
# took 1.7 s more).
PG_TRIGGERS = (
    ("users_added", "INSERT ON users REFERENCING NEW TABLE AS added", "STATEMENT"),
    ("users_changed", "UPDATE ON users REFERENCING OLD TABLE AS was NEW TABLE AS became", "STATEMENT"),
    ("links_added", "INSERT ON user_groups REFERENCING NEW TABLE AS added", "STATEMENT"),
    ("links_removed", "DELETE ON user_groups REFERENCING OLD TABLE AS removed", "STATEMENT"),
    ("link_changed", "UPDATE ON user_groups", "ROW"),
    ("scope_location", "INSERT OR DELETE OR UPDATE ON scope_locations", "ROW"),
    ("scope_group", "INSERT OR DELETE OR UPDATE ON scope_groups", "ROW"),
)
PG_TABLES = {
    "users_added": "users",
    "users_changed": "users",
    "links_added": "user_groups",
    "links_removed": "user_groups",
    "link_changed": "user_groups",
    "scope_location": "scope_locations",
    "scope_group": "scope_groups",
}


def _postgresql() -> None:
    sql = _statements(pg=True)

    def run(*changes: str) -> str:
        return "\n".join(f"    {s};" for change in changes for s in sql[change])

    # Changes to a user's links serialise on the user's row (only where a scope names the
    # group: an unscoped group's members have no scope rows), in id order.
    def lock_users(links: str) -> str:
        return (
            "  PERFORM 1 FROM users WHERE id IN (SELECT l.user_id FROM "
            f"{links} l JOIN scope_groups sg ON sg.group_id = l.group_id) "
            "ORDER BY id FOR NO KEY UPDATE;"
        )

    scope_changes = """
  LOCK TABLE users, user_groups IN SHARE MODE;
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
{removed}
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
{added}
  END IF;
  RETURN NULL;"""
    functions = {
        "users_added": f"""
  INSERT {INTO}SELECT sl.scope_id, a.id, a.status, a.role FROM added a
    JOIN scope_locations sl ON sl.location_id = a.location_id ON CONFLICT DO NOTHING;
  RETURN NULL;""",
        "users_changed": f"""
  -- Moved: out of the scopes of the old location (unless a group keeps them in), into
  -- those of the new one; status or role changed: the copies.
  DELETE FROM scope_members m USING (SELECT DISTINCT sl.scope_id, became.id FROM became
    JOIN was ON was.id = became.id JOIN scope_locations sl ON sl.location_id = was.location_id
    WHERE became.location_id IS DISTINCT FROM was.location_id) gone
    WHERE m.scope_id = gone.scope_id AND m.user_id = gone.id
    AND NOT {REACHED.format(s="m.scope_id", u="m.user_id")};
  INSERT {INTO}SELECT sl.scope_id, became.id, became.status, became.role FROM became
    JOIN was ON was.id = became.id JOIN scope_locations sl ON sl.location_id = became.location_id
    WHERE became.location_id IS DISTINCT FROM was.location_id ON CONFLICT DO NOTHING;
  UPDATE scope_members m SET status = became.status, role = became.role FROM became
    JOIN was ON was.id = became.id
    WHERE m.user_id = became.id
    AND (became.status IS DISTINCT FROM was.status OR became.role IS DISTINCT FROM was.role);
  RETURN NULL;""",
        "links_added": f"""
{lock_users("added")}
  INSERT {INTO}SELECT DISTINCT sg.scope_id, u.id, u.status, u.role FROM added a
    JOIN scope_groups sg ON sg.group_id = a.group_id JOIN users u ON u.id = a.user_id
    ON CONFLICT DO NOTHING;
  RETURN NULL;""",
        "links_removed": f"""
{lock_users("removed")}
  DELETE FROM scope_members m USING (SELECT DISTINCT sg.scope_id, r.user_id FROM removed r
    JOIN scope_groups sg ON sg.group_id = r.group_id) gone
    WHERE m.scope_id = gone.scope_id AND m.user_id = gone.user_id
    AND NOT {REACHED.format(s="m.scope_id", u="m.user_id")};
  RETURN NULL;""",
        "link_changed": f"""
  PERFORM 1 FROM users WHERE id IN (old.user_id, new.user_id) ORDER BY id FOR NO KEY UPDATE;
{run("membership_removed", "membership_added")}
  RETURN NULL;""",
        "scope_location": scope_changes.format(
            removed=run("scope_location_removed"), added=run("scope_location_added")
        ),
        "scope_group": scope_changes.format(
            removed=run("scope_group_removed"), added=run("scope_group_added")
        ),
    }
    for name, event, level in PG_TRIGGERS:
        op.execute(
            f"CREATE FUNCTION lmsweb_scope_members_{name}() RETURNS trigger LANGUAGE plpgsql "
            f"AS $$\nBEGIN{functions[name]}\nEND\n$$"
        )
        op.execute(
            f"CREATE TRIGGER scope_members_{name} AFTER {event} FOR EACH {level} "
            f"EXECUTE FUNCTION lmsweb_scope_members_{name}()"
        )


def upgrade():
    op.create_table(
        "scope_members",
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["scope_id"], ["scopes.id"], name=op.f("fk_scope_members_scope_id_scopes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_scope_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("scope_id", "user_id", name=op.f("pk_scope_members")),
    )  # fmt: skip
    op.create_index("ix_scope_members_user_id", "scope_members", ["user_id"])
    op.create_index("ix_scope_members_status", "scope_members", ["scope_id", "status", "role"])
    op.execute("INSERT " + INTO + EVERYONE)
    if op.get_bind().dialect.name == "postgresql":
        _postgresql()
        # The planner's statistics of the filled table now, not at autovacuum's next pass:
        # without them a scoped Dashboard at a million users hash-joined the scope's members
        # (171 ms a page, 26 ms with them).
        op.execute("ANALYZE scope_members")
    else:
        _sqlite()


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name, _event, _level in PG_TRIGGERS:
            op.execute(f"DROP TRIGGER scope_members_{name} ON {PG_TABLES[name]}")
            op.execute(f"DROP FUNCTION lmsweb_scope_members_{name}()")
    else:
        for name in (
            "user_insert", "user_location", "user_copies",
            "membership_insert", "membership_delete", "membership_update",
            "location_insert", "location_delete", "location_update",
            "group_insert", "group_delete", "group_update",
        ):  # fmt: skip
            op.execute(f"DROP TRIGGER scope_members_{name}")
    op.drop_table("scope_members")
