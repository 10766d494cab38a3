"""Two worker processes run the same pass at the same moment: every occurrence is emailed
once. Separate processes, so separate connections and transactions (PostgreSQL: READ
COMMITTED, the unique notice key is the claim; SQLite: one writer at a time)."""

from __future__ import annotations

import mailbox
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import insert

from lmsweb.extensions import db
from lmsweb.models import Course, CourseAssignment, OutboundEmail, User, utcnow

LEARNERS = 300
TODAY = date(2026, 3, 2)

WORKER = """
import sys, time
from datetime import datetime
from lmsweb import create_app
from lmsweb.worker import run_once
app = create_app({"SQLALCHEMY_DATABASE_URI": sys.argv[1], "PUBLIC_BASE_URL": "http://lms.test"})
start = float(sys.argv[2])
with app.app_context():
    time.sleep(max(start - time.time(), 0))
    result = run_once(datetime.fromisoformat(sys.argv[3]))
    print(result.schedule.learner_emails, result.schedule.manager_emails, result.mail.sent)
"""


def test_two_workers_running_the_same_pass_email_each_occurrence_once(
    app, database_url, make, tmp_path
):
    course = make.course("SAFE", seats=LEARNERS, remind_before_days=7, escalate_after_days=3)
    boss = make.user(email="boss@example.com")
    with app.app_context():
        now = utcnow()
        db.session.execute(
            insert(User),
            [
                {"email": f"l{i}@example.com", "first_name": "L", "last_name": str(i),
                 "role": "learner", "status": "active", "manager_id": boss.id,
                 "session_version": 1, "created_at": now}
                for i in range(LEARNERS)
            ],
        )  # fmt: skip
        ids = db.session.scalars(sa.select(User.id).where(User.email.like("l%"))).all()
        # Half are due in 3 days (a reminder), half are 5 days overdue (an escalation, and
        # the overdue reminders are off for this course); all were announced long ago.
        db.session.execute(
            insert(CourseAssignment),
            [
                {"user_id": uid, "course_id": course.id, "state": "assigned",
                 "assigned_at": now, "notified_at": now,
                 "due_date": TODAY + timedelta(days=3 if n % 2 else -5)}
                for n, uid in enumerate(ids)
            ],
        )  # fmt: skip
        db.session.execute(
            sa.update(Course).where(Course.id == course.id).values(seats_reserved=LEARNERS)
        )
        db.session.execute(
            sa.update(Course).where(Course.id == course.id).values(remind_overdue_every_days=0)
        )
        db.session.commit()
        db.session.remove()
        db.engine.dispose()

    env = {**os.environ, "LMSWEB_INSTANCE": str(tmp_path), "SECRET_KEY": "x" * 40}
    env.pop("MAIL_SERVER", None)
    start = time.time() + 3
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, database_url, str(start), f"{TODAY}T08:00"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]  # fmt: skip
    outputs = [w.communicate(timeout=120) for w in workers]
    for worker, (_out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    learner_emails = sum(int(out.split()[0]) for out, _ in outputs)
    manager_emails = sum(int(out.split()[1]) for out, _ in outputs)
    assert learner_emails == LEARNERS // 2
    assert manager_emails == 1

    with app.app_context():
        per_recipient = Counter(db.session.scalars(sa.select(OutboundEmail.recipient)))
        assert per_recipient["boss@example.com"] == 1
        learners = {r: n for r, n in per_recipient.items() if r != "boss@example.com"}
        assert len(learners) == LEARNERS // 2 and set(learners.values()) == {1}
        statuses = set(db.session.scalars(sa.select(OutboundEmail.status)))
        assert statuses == {"sent"}
    box = mailbox.mbox(Path(tmp_path) / "dev-mailbox.mbox")
    try:
        messages = list(box)
    finally:
        box.close()
    delivered = Counter(message["To"] for message in messages)
    assert len(delivered) == LEARNERS // 2 + 1 and set(delivered.values()) == {1}
    escalation = next(m for m in messages if m["To"] == "boss@example.com")
    assert escalation["Subject"].endswith(f"({LEARNERS // 2} records)")
