"""The Users list's queries at scale: which index SQLite's planner takes (without statistics,
the plan chosen on a small database is the plan a large one gets)."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from lmsweb.extensions import db
from lmsweb.user_queries import training_counts

from .conftest import IS_POSTGRES

sqlite_only = pytest.mark.skipif(IS_POSTGRES, reason="SQLite's planner and statistics")


def captured(app, work) -> list[tuple[str, tuple]]:
    """The statements (with parameters) that `work()` executes."""
    seen: list[tuple[str, tuple]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many):
        seen.append((statement, parameters))

    engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        work()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


@sqlite_only
def test_training_counts_look_up_the_page_users_not_every_open_record(appctx, make):
    users = [make.user() for _ in range(3)]
    course = make.course("PLAN-1")
    make.assignment(users[0], course)
    assert (
        db.session.scalar(sa.text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"))
        == 0
    )
    # A page's worth of ids (50): the planner weighs that many lookups against one range.
    ids = [u.id for u in users] + list(range(10_000, 10_047))
    ((statement, parameters),) = captured(appctx, lambda: training_counts(ids, date.today()))
    plan = " ".join(
        row[-1]
        for row in db.session.connection().exec_driver_sql(
            f"EXPLAIN QUERY PLAN {statement}", parameters
        )
    )
    # Not `archived_at=?`: that range is every open training record of the organisation.
    assert "(user_id=?)" in plan and "archived_at=?" not in plan, plan
    assert training_counts(ids, date.today())[users[0].id].open == 1
