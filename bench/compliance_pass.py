"""One worker pass of the compliance schedule at 100,000 users, 10% of them due a reminder.

Seeds a fresh database (SQLite file under bench/.data/; with TEST_DATABASE_URL pointing at
PostgreSQL, a fresh database there too): BENCH_USERS users (default 100,000) in 500
locations and 200 groups, a manager for every 20 people, one assignment each of a course
that reminds 7 days before the due date, weekly while overdue and escalates after 14 days.
10% are due in 3 days (a reminder), 1% are 20 days overdue (an overdue reminder and an
escalation), the rest due in 60 days. Then times `schedule.run_pass` (what the worker does
before draining the outbox; the outbox's own rate is bench/mail_worker.py) and counts the
SQL statements it issued and the emails it queued. A second pass on the same day must
queue nothing.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta

from bench import _support

USERS = int(os.environ.get("BENCH_USERS", "100000"))
DATA = _support.DATA / "compliance_pass"


def main() -> None:
    for engine, url in _support.databases(
        "compliance_pass.sqlite3", "lmsweb_bench_compliance", fresh=True
    ):
        if engine == "sqlite":
            from pathlib import Path

            for suffix in ("", "-wal", "-shm"):
                Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
        print(f"\n[{engine}]")
        measure(url)


def measure(url: str) -> None:
    os.environ["LMSWEB_INSTANCE"] = str(DATA / "instance")
    from flask_migrate import upgrade
    from sqlalchemy import event, func, insert, select

    from lmsweb import create_app, schedule
    from lmsweb.config import normalise_database_url
    from lmsweb.extensions import db
    from lmsweb.models import (
        Course,
        CourseAssignment,
        Group,
        Location,
        OutboundEmail,
        User,
        user_groups,
    )

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": normalise_database_url(url),
            "SECRET_KEY": "bench",
            "PUBLIC_BASE_URL": "http://lms.bench",
        }
    )
    now = datetime(2026, 6, 1, 8, 0)
    today = now.date()
    with app.app_context():
        upgrade()
        started = time.perf_counter()
        db.session.execute(insert(Location), [{"name": f"Site {i}"} for i in range(500)])
        db.session.execute(insert(Group), [{"name": f"Team {i}"} for i in range(200)])
        course = Course(
            code="SAFE", title="Safety", seats_total=USERS, seats_reserved=USERS, seats_used=0,
            remind_before_days=7, remind_overdue_every_days=7, escalate_after_days=14,
        )  # fmt: skip
        db.session.add(course)
        db.session.flush()
        chunk = 10_000
        for start in range(0, USERS, chunk):
            db.session.execute(
                insert(User),
                [
                    {"id": i + 1, "email": f"u{i}@example.com", "first_name": "Bench",
                     "last_name": str(i), "role": "learner", "status": "active",
                     "location_id": i % 500 + 1,
                     "manager_id": None if i % 20 == 0 else i - i % 20 + 1,
                     "session_version": 1, "created_at": now}
                    for i in range(start, min(start + chunk, USERS))
                ],
            )  # fmt: skip
            db.session.execute(
                insert(user_groups),
                [{"user_id": i + 1, "group_id": i % 200 + 1}
                 for i in range(start, min(start + chunk, USERS))],
            )  # fmt: skip
            db.session.execute(
                insert(CourseAssignment),
                [
                    {"user_id": i + 1, "course_id": course.id, "state": "assigned",
                     "assigned_at": now - timedelta(days=30), "notified_at": now,
                     "due_date": today + timedelta(
                         days=3 if i % 10 == 1 else -20 if i % 100 == 2 else 60)}
                    for i in range(start, min(start + chunk, USERS))
                ],
            )  # fmt: skip
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            db.session.execute(db.text("ANALYZE"))
            db.session.commit()
        print(f"seeded {USERS} users and assignments in {time.perf_counter() - started:.1f} s")
        db.session.remove()

        statements: list[str] = []

        def count(conn, cursor, statement, params, context, executemany):
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            started = time.perf_counter()
            result = schedule.run_pass(now)
            elapsed = time.perf_counter() - started
            first = len(statements)
            statements.clear()
            again = schedule.run_pass(now)
            second = len(statements)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        queued = db.session.scalar(select(func.count()).select_from(OutboundEmail))
        engine = url.split(":", 1)[0]
        print(f"engine: {engine}; users: {USERS}")
        print(result.summary())
        print(
            f"one pass: {elapsed:.2f} s, {first} SQL statements, {queued} emails queued "
            f"({result.learner_emails} learners, {result.manager_emails} managers)"
        )
        print(
            f"the same pass again: {again.learner_emails + again.manager_emails} emails, "
            f"{second} statements"
        )
        db.session.remove()
        db.engine.dispose()


if __name__ == "__main__":
    main()
