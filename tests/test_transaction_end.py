"""How a transaction ends (lmsweb.database): on PostgreSQL one that wrote nothing commits, so
the statements psycopg prepared on its connection stay prepared; one that wrote, or failed,
is rolled back as before, on either engine."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from lmsweb.database import PREPARED
from lmsweb.extensions import db
from lmsweb.models import Group, User, utcnow
from tests.conftest import count


def _postgresql_only(app) -> None:
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("PostgreSQL only: SQLite prepares no statement on a server")


def _prepared(connection) -> list[str]:
    statements = sa.text("SELECT statement FROM pg_prepared_statements")
    return connection.execute(statements).scalars().all()


def test_read_only_transactions_keep_their_prepared_statements(app):
    _postgresql_only(app)
    lookup = sa.select(User.id).where(User.email == "nobody@example.com")
    with app.app_context(), db.engine.connect() as connection:
        # psycopg forgot the statements prepared on a connection at every rollback: a
        # statement asked to be prepared was prepared again in each transaction.
        for _ in range(3):
            connection.execute(lookup.execution_options(**PREPARED)).all()
            connection.rollback()
        assert [s for s in _prepared(connection) if "FROM users" in s]


def test_only_the_statements_that_ask_are_prepared(app):
    _postgresql_only(app)
    lookup = sa.select(User.id).where(User.email == "nobody@example.com")
    with app.app_context(), db.engine.connect() as connection:
        # psycopg's own rule would prepare it at its sixth run, and the server then plan it
        # once for any parameters.
        for _ in range(7):
            connection.execute(lookup).all()
        connection.rollback()
        assert not [s for s in _prepared(connection) if "FROM users" in s]


def test_requests_leave_the_users_page_statements_prepared(app, admin_client):
    _postgresql_only(app)
    for _ in range(3):
        assert admin_client.get("/admin/users").status_code == 200
    with app.app_context():
        # One request at a time: the pool has lent every request the same connection.
        assert db.engine.pool.checkedin() == 1
        with db.engine.connect() as connection:
            prepared = _prepared(connection)
    assert [s for s in prepared if "users.id = ANY" in s], prepared
    # The filter panel's choices (an organisation-wide administrator's: one statement).
    assert [s for s in prepared if "AS kind" in s], prepared


def test_a_transaction_that_wrote_is_rolled_back(app):
    with app.app_context():
        db.session.execute(sa.insert(Group).values(name="Rolled back", created_at=utcnow()))
        db.session.rollback()
    assert count(app, Group, Group.name == "Rolled back") == 0


def test_a_failed_transaction_is_rolled_back(app):
    with app.app_context():
        db.session.execute(sa.insert(Group).values(name="Before the error", created_at=utcnow()))
        with pytest.raises(DBAPIError):
            db.session.execute(sa.text("SELECT * FROM no_such_table"))
        db.session.rollback()
        db.session.execute(sa.insert(Group).values(name="After", created_at=utcnow()))
        db.session.commit()
    assert count(app, Group, Group.name == "Before the error") == 0
    assert count(app, Group, Group.name == "After") == 1


@pytest.mark.parametrize(("setting", "threshold"), [("", 5), ("0", None)])
def test_prepared_statements_can_be_switched_off(monkeypatch, database_url, setting, threshold):
    from lmsweb import create_app

    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite prepares no statement on a server")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATABASE_PREPARED_STATEMENTS", setting)
    app = create_app({"SECRET_KEY": "test"})
    with app.app_context():
        with db.engine.connect() as connection:
            assert connection.connection.dbapi_connection.prepare_threshold == threshold
        db.engine.dispose()
