"""Substring search on the Users list: "arsh" finds Marsh, "@acme" finds everyone at acme.

A trigram index over first name, last name, email and user ID, kept right by the database
itself so every writer (forms, import, provisioning, seed, raw SQL) keeps it correct:
- PostgreSQL: pg_trgm, one GIN index on the lower-cased fields joined by spaces (a search
  word never holds a space, so it can only match inside one field). The expression must
  stay identical to `search_text` in lmsweb/user_queries.py, or the planner ignores it.
- SQLite: an FTS5 table with the trigram tokenizer over the users table's own columns
  (external content, so nothing is stored twice), and triggers that follow every insert,
  update and delete of those columns.

Revision ID: 0009_substring_search
Revises: 0008_identity
"""

from alembic import op

revision = "0009_substring_search"
down_revision = "0008_identity"
branch_labels = None
depends_on = None

COLUMNS = "first_name, last_name, email, employee_id"
NEW = "new.id, new.first_name, new.last_name, new.email, new.employee_id"
OLD = "'delete', old.id, old.first_name, old.last_name, old.email, old.employee_id"


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_users_search_trgm ON users USING gin ("
            "(lower(first_name || ' ' || last_name || ' ' || email || ' ' || "
            "coalesce(employee_id, ''))) gin_trgm_ops)"
        )
        return
    op.execute(
        f"CREATE VIRTUAL TABLE users_search USING fts5({COLUMNS}, "
        "content='users', content_rowid='id', tokenize='trigram')"
    )
    op.execute(f"""
        CREATE TRIGGER users_search_insert AFTER INSERT ON users BEGIN
            INSERT INTO users_search(rowid, {COLUMNS}) VALUES ({NEW});
        END
    """)
    op.execute(f"""
        CREATE TRIGGER users_search_delete AFTER DELETE ON users BEGIN
            INSERT INTO users_search(users_search, rowid, {COLUMNS}) VALUES ({OLD});
        END
    """)
    op.execute(f"""
        CREATE TRIGGER users_search_update AFTER UPDATE OF id, {COLUMNS} ON users BEGIN
            INSERT INTO users_search(users_search, rowid, {COLUMNS}) VALUES ({OLD});
            INSERT INTO users_search(rowid, {COLUMNS}) VALUES ({NEW});
        END
    """)
    op.execute("INSERT INTO users_search(users_search) VALUES ('rebuild')")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_users_search_trgm")
        return
    for trigger in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER users_search_{trigger}")
    op.execute("DROP TABLE users_search")
