"""PostgreSQL: the searched text is a stored column (`users.search_text`), which the
trigram index and the name-ordered index of the filtered columns hold, instead of an
expression computed again for every row a search reads.

A search tests each row it reads against its words: the rows the trigram index finds
(its matches are always rechecked) and, for a page of a word with many matches, the rows
of the name order it walks (`user_queries.searched_page`). The test was
`lower(first_name || ' ' || last_name || ' ' || email || ' ' || coalesce(employee_id, ''))
LIKE '%word%'`, and of its 0.6 µs a row the LIKE took almost none: lower() took 0.37 and the
concatenation 0.28 (a sequential count over 1,000,000 users, psql). A generated column is
computed once, when the row is written, by every writer alike: forms, the import's COPY,
provisioning, raw SQL. At a million users (psql and `bench/users_list.py`'s statements):
the 40,000-row walk for "rossi" 33-37 → 13 ms, the walk for "son" 14-20 → 6 ms, the capped
count of "rossi" 27-29 → 22-25 ms. The table grows from 273 to 326 MB and the name-ordered
index, which keeps the email and user ID for the words of one or two letters, from 104 to
158 MB; adding the column rewrites the table (43 s at a million users). SQLite needs no
change: it searches its FTS5 table.

Revision ID: 0017_search_column
Revises: 0016_fewer_indexes
"""

from alembic import op

revision = "0017_search_column"
down_revision = "0016_fewer_indexes"
branch_labels = None
depends_on = None

TEXT = "lower(first_name || ' ' || last_name || ' ' || email || ' ' || coalesce(employee_id, ''))"
KEY = "users (last_name, first_name, id, status, role, location_id)"


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX ix_users_search_trgm")
    op.execute("DROP INDEX ix_users_name_filters")
    op.execute(f"ALTER TABLE users ADD COLUMN search_text text GENERATED ALWAYS AS ({TEXT}) STORED")
    op.execute("CREATE INDEX ix_users_search_trgm ON users USING gin (search_text gin_trgm_ops)")
    # The email and user ID stay: a word of one or two letters is tested at their start.
    op.execute(
        f"CREATE INDEX ix_users_name_filters ON {KEY} INCLUDE (email, employee_id, search_text)"
    )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX ix_users_search_trgm")
    op.execute("DROP INDEX ix_users_name_filters")
    op.execute("ALTER TABLE users DROP COLUMN search_text")
    op.execute(f"CREATE INDEX ix_users_search_trgm ON users USING gin (({TEXT}) gin_trgm_ops)")
    op.execute(f"CREATE INDEX ix_users_name_filters ON {KEY} INCLUDE (email, employee_id)")
