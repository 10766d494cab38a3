"""A database conflict PostgreSQL resolves by giving up one transaction (a deadlock, a
serialisation failure) answers 409 with "try again", rolls the request back whole and logs
no traceback; any other database error stays a 500."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from lmsweb.errors import CONFLICT_MESSAGE, MESSAGES
from lmsweb.extensions import db
from lmsweb.models import User
from lmsweb.security import public

from .conftest import IS_POSTGRES


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL detects deadlocks between sessions")
def test_a_deadlocked_request_answers_409_and_changes_nothing(app, make, caplog):
    """A real deadlock: another session holds A and waits for B; the request holds B and
    then wants A, closing the cycle. The request waits last and looks for deadlocks first
    (50 ms against the other's 10 s), so it is the one PostgreSQL gives up."""
    a, b = make.user(first_name="Ann"), make.user(first_name="Bob")
    other_has_a, request_has_b = threading.Event(), threading.Event()
    other_done = threading.Event()

    def other_session():
        engine = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        with engine.begin() as conn:
            conn.execute(sa.text("SET LOCAL deadlock_timeout = '10s'"))
            conn.execute(sa.update(User).where(User.id == a.id).values(first_name="Ann-other"))
            other_has_a.set()
            assert request_has_b.wait(10)
            conn.execute(sa.update(User).where(User.id == b.id).values(first_name="Bob-other"))
        engine.dispose()
        other_done.set()

    @public
    def both_rows():
        db.session.execute(sa.text("SET LOCAL deadlock_timeout = '50ms'"))
        assert other_has_a.wait(10)
        db.session.execute(sa.update(User).where(User.id == b.id).values(first_name="Bob-request"))
        request_has_b.set()
        time.sleep(0.5)  # the other session is waiting for B by now
        db.session.execute(sa.update(User).where(User.id == a.id).values(first_name="Ann-request"))
        db.session.commit()
        return "changed"

    app.add_url_rule("/test-both-rows", view_func=both_rows)
    thread = threading.Thread(target=other_session)
    thread.start()
    response = app.test_client().get("/test-both-rows")
    thread.join(20)
    assert other_done.is_set()
    assert response.status_code == 409, response.text
    assert CONFLICT_MESSAGE in response.text
    with app.app_context():
        names = dict(db.session.execute(sa.select(User.id, User.first_name)).all())
    # The request's change to B is gone with it; the other session's changes are kept.
    assert names[a.id] == "Ann-other" and names[b.id] == "Bob-other"
    assert "Traceback" not in caplog.text


def test_another_database_error_stays_a_500(app, make):
    @public
    def broken():
        db.session.execute(sa.text("SELECT no_such_column FROM users"))
        return "never"

    app.add_url_rule("/test-broken", view_func=broken)
    response = app.test_client().get("/test-broken")
    assert response.status_code == 500
    assert MESSAGES[500] in response.text
