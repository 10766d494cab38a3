"""User counts, kept: how many users of each status and role the organisation, each location
and each group holds, so the Users list counts a page of no more filters than those in
one index range instead of counting rows.

Counting rows cost the list most of its time where the page itself was cheap: a group of
7,815 members took 20 ms to count on PostgreSQL at 100,000 users, its page 2.5 ms; the
unfiltered list counted 10,001 rows (4.7 ms) to say "more than 10,000". `user_counts`
holds the answer, kept by the database itself on both engines, as `scope_members`
(0013_scope_members) is, so every writer (forms, the import's bulk statements and COPY,
SCIM, seed, raw SQL) keeps it right:
- users: insert, delete, a change of status, role or location;
- user_groups: insert, delete, update (a user's status and role as they are then).
Rows are keyed (kind, ref_id, status, role): kind "all" (ref_id 0), "location" or "group".
A count is the sum of `n` over its key.

SQLite has one writer at a time: each change adds to its key's one row (an upsert).
PostgreSQL runs concurrent writers, and adding to one row would make every writer of users
wait for the others' commits on the few rows of "all" (and two writers could each hold a
row the other wants next): each statement appends its changes as rows of their own, and
`user_counts.merge` (the worker, every minute) sums each key's rows into one. A change to a
user's group links locks the user's row `FOR SHARE` before reading their status and role:
a concurrent change of that status or role waits for it, or it for that change, so neither
misses the other.

`flask lms check` compares the table with the users it counts.

Revision ID: 0015_user_counts
Revises: 0014_search_walk
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_user_counts"
down_revision = "0014_search_walk"
branch_labels = None
depends_on = None

COLUMNS = "(kind, ref_id, status, role, n)"
# Everyone counted, by key (the fill, and `flask lms check`'s definition).
EVERYONE = (
    "SELECT 'all', 0, status, role, count(*) FROM users GROUP BY status, role"
    " UNION ALL SELECT 'location', location_id, status, role, count(*) FROM users"
    " WHERE location_id IS NOT NULL GROUP BY location_id, status, role"
    " UNION ALL SELECT 'group', ug.group_id, u.status, u.role, count(*) FROM user_groups ug"
    " JOIN users u ON u.id = ug.user_id GROUP BY ug.group_id, u.status, u.role"
)


def _sqlite() -> None:
    add = (
        f"INSERT INTO user_counts {COLUMNS} {{rows}}"
        " ON CONFLICT (kind, ref_id, status, role) DO UPDATE SET n = n + excluded.n"
    )

    def user(who: str, sign: str) -> list[str]:
        # One statement for both keys (a trigger's statements cost apiece: an import's
        # 90,000 new users). WHERE: SQLite reads "SELECT ... ON CONFLICT" as a join
        # constraint without one.
        return [
            add.format(
                rows=f"SELECT 'all', 0, {who}.status, {who}.role, {sign}1"
                f" UNION ALL SELECT 'location', {who}.location_id, {who}.status, {who}.role,"
                f" {sign}1 WHERE {who}.location_id IS NOT NULL"
            )
        ]

    def groups(who: str, sign: str) -> list[str]:
        return [
            add.format(
                rows=f"SELECT 'group', group_id, {who}.status, {who}.role, {sign}1"
                f" FROM user_groups WHERE user_id = {who}.id"
            )
        ]

    def link(which: str, sign: str) -> list[str]:
        return [
            add.format(
                rows=f"SELECT 'group', {which}.group_id, status, role, {sign}1"
                f" FROM users WHERE id = {which}.user_id"
            )
        ]

    def trigger(name: str, event: str, when: str | None, statements: list[str]) -> None:
        condition = f" WHEN {when}" if when else ""
        body = ";\n".join(statements)
        op.execute(
            f"CREATE TRIGGER user_counts_{name} AFTER {event}{condition} BEGIN\n{body};\nEND"
        )

    moved = "old.status IS NOT new.status OR old.role IS NOT new.role"
    trigger("user_insert", "INSERT ON users", None, user("new", ""))
    trigger(
        "user_update",
        "UPDATE OF status, role, location_id ON users",
        f"{moved} OR old.location_id IS NOT new.location_id",
        user("old", "-") + user("new", ""),
    )
    trigger(
        "user_groups",
        "UPDATE OF status, role ON users",
        moved,
        groups("old", "-") + groups("new", ""),
    )
    # A user's links refuse the delete (RESTRICT); where the foreign keys are off (a
    # sqlite3 shell) the links left behind no longer match the group filter either.
    trigger("user_delete", "DELETE ON users", None, user("old", "-") + groups("old", "-"))
    trigger("link_insert", "INSERT ON user_groups", None, link("new", ""))
    trigger("link_delete", "DELETE ON user_groups", None, link("old", "-"))
    trigger("link_update", "UPDATE ON user_groups", None, link("old", "-") + link("new", ""))


SQLITE_TRIGGERS = (
    "user_insert", "user_update", "user_groups", "user_delete",
    "link_insert", "link_delete", "link_update",
)  # fmt: skip

# PostgreSQL's triggers: (name, table, event). Statement triggers read their transition
# tables: the import's COPY of 90,000 users is counted in one GROUP BY, not row by row.
PG_TRIGGERS = (
    ("users_added", "users", "INSERT ON users REFERENCING NEW TABLE AS added"),
    ("users_changed", "users", "UPDATE ON users REFERENCING OLD TABLE AS was NEW TABLE AS became"),
    ("users_removed", "users", "DELETE ON users REFERENCING OLD TABLE AS removed"),
    ("links_added", "user_groups", "INSERT ON user_groups REFERENCING NEW TABLE AS added"),
    ("links_removed", "user_groups", "DELETE ON user_groups REFERENCING OLD TABLE AS removed"),
    ("links_changed", "user_groups",
     "UPDATE ON user_groups REFERENCING OLD TABLE AS was NEW TABLE AS became"),
)  # fmt: skip


def _postgresql() -> None:
    insert = f"INSERT INTO user_counts {COLUMNS} SELECT kind, ref_id, status, role, sum(n)"
    grouped = "GROUP BY kind, ref_id, status, role HAVING sum(n) <> 0"

    def users(rows: str, sign: str) -> str:
        return (
            f"SELECT 'all' AS kind, 0 AS ref_id, status, role, {sign}1 AS n FROM {rows}"
            f" UNION ALL SELECT 'location', location_id, status, role, {sign}1 FROM {rows}"
            " WHERE location_id IS NOT NULL"
        )

    def their_groups(rows: str, sign: str) -> str:
        return (
            f"SELECT 'group', ug.group_id, r.status, r.role, {sign}1 FROM {rows} r"
            " JOIN user_groups ug ON ug.user_id = r.id"
        )

    # The links' users locked against a change of status or role until this transaction
    # ends (in id order), then read as they are, in a statement of its own (a snapshot
    # taken after any wait). A user whose row this transaction wrote (a new user, or one it
    # updated) is not locked: no other can change that row meanwhile (the import's 90,000
    # new users took 1.5 s to lock).
    def locked(users: str) -> str:
        return (
            f"PERFORM 1 FROM users WHERE id IN ({users}) AND xmin <> pg_current_xact_id()::xid"
            " ORDER BY id FOR SHARE;\n  "
        )

    def links(rows: str, sign: str) -> str:
        return (
            f"SELECT 'group' AS kind, l.group_id AS ref_id, u.status, u.role, {sign}1 AS n"
            f" FROM {rows} l JOIN users u ON u.id = l.user_id"
        )

    functions = {
        "users_added": f"{insert} FROM ({users('added', '')}) c {grouped}",
        # Every updated user counted out as they were and in as they are: those whose
        # status, role and location are unchanged (a sign-in, an invitation sent) cancel
        # out in the sum. (Pairing the two tables by id first took 1.3 s for the import's
        # 10,000 updates: the planner knows nothing of a transition table's size.)
        "users_changed": (
            f"{insert} FROM ({users('was', '-')} UNION ALL {users('became', '')}"
            f" UNION ALL {their_groups('was', '-')} UNION ALL {their_groups('became', '')})"
            f" c {grouped}"
        ),
        "users_removed": (
            f"{insert} FROM ({users('removed', '-')} UNION ALL {their_groups('removed', '-')})"
            f" c {grouped}"
        ),
        "links_added": (
            f"{locked('SELECT user_id FROM added')}{insert} FROM ({links('added', '')}) c {grouped}"
        ),
        "links_removed": (
            f"{locked('SELECT user_id FROM removed')}"
            f"{insert} FROM ({links('removed', '-')}) c {grouped}"
        ),
        "links_changed": (
            f"{locked('SELECT user_id FROM was UNION SELECT user_id FROM became')}"
            f"{insert} FROM ({links('was', '-')} UNION ALL {links('became', '')}) c {grouped}"
        ),
    }
    for name, _table, event in PG_TRIGGERS:
        op.execute(
            f"CREATE FUNCTION lmsweb_user_counts_{name}() RETURNS trigger LANGUAGE plpgsql "
            f"AS $$\nBEGIN\n  {functions[name]};\n  RETURN NULL;\nEND\n$$"
        )
        op.execute(
            f"CREATE TRIGGER user_counts_{name} AFTER {event} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION lmsweb_user_counts_{name}()"
        )


def upgrade():
    pg = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "user_counts",
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("ref_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
    )
    # SQLite: one row per key (the upsert's conflict); PostgreSQL: a key's rows until merged.
    op.create_index(
        "ix_user_counts_key", "user_counts", ["kind", "ref_id", "status", "role"], unique=not pg
    )
    op.execute(f"INSERT INTO user_counts {COLUMNS} {EVERYONE}")
    if pg:
        _postgresql()
    else:
        _sqlite()


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name, table, _event in PG_TRIGGERS:
            op.execute(f"DROP TRIGGER user_counts_{name} ON {table}")
            op.execute(f"DROP FUNCTION lmsweb_user_counts_{name}()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER user_counts_{name}")
    op.drop_table("user_counts")
