"""The compliance cycle through time: assignment notice, reminders, overdue reminders,
escalation to the manager, completion. The clock travels (time-machine) and the worker runs
as `flask lms worker --once --now ...` against a real SMTP server; runs on both engines."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa
import time_machine

from lmsweb import licensing, lifecycle
from lmsweb.extensions import db
from lmsweb.models import CourseAssignment, OutboundEmail, ScheduleNotice, User
from tests.smtp_support import SMTPServer, html_body, text_body

DAY0 = date(2026, 1, 5)
DUE = DAY0 + timedelta(days=30)  # 2026-02-04


@pytest.fixture(autouse=True)
def _own_dev_mailbox(app, tmp_path):
    """Mail drained without MAIL_SERVER lands in this test's own instance folder, not in the
    session's (where the outbox tests count the messages)."""
    app.instance_path = str(tmp_path)


@pytest.fixture
def app_config():
    server = SMTPServer().start()
    yield {**server.config(), "_smtp": server}
    server.stop()


@pytest.fixture
def smtp(app_config):
    return app_config["_smtp"]


def at(day: date):
    return time_machine.travel(datetime(day.year, day.month, day.day, 8, 0), tick=False)


def run_worker(runner, day: date):
    with at(day):
        result = runner.invoke(args=["lms", "worker", "--once", "--now", f"{day}T08:00"])
    assert result.exit_code == 0, result.output
    return result


def courses_in(message) -> list[str]:
    """The course codes a message lists, in its order."""
    return re.findall(r"\b(SAFE|FIRE)\b", text_body(message))


def test_a_course_through_its_whole_cycle_emails_exactly_this(app, smtp, make, runner):
    safe = make.course(
        "SAFE", title="Safety", remind_before_days=7, remind_overdue_every_days=7,
        escalate_after_days=14,
    )  # fmt: skip
    fire = make.course(
        "FIRE", title="Fire drill", remind_before_days=3, remind_overdue_every_days=7,
        escalate_after_days=0,
    )  # fmt: skip
    boss = make.user(first_name="Maria", last_name="Boss", email="boss@example.com")
    lee = make.user(first_name="Lee", email="lee@example.com", manager_id=boss.id)
    gone = make.user(first_name="Gone", email="gone@example.com", manager_id=boss.id)
    waiting = make.user(first_name="Pending", email="pending@example.com", status="pending")
    with at(DAY0), app.app_context():
        for user in (lee, gone, waiting):
            for course in (safe, fire):
                licensing.assign(db.session.get(User, user.id), course_obj(course), DUE)
        # Left the organisation without being archived through the app (a directory sync):
        # still has open records, and must get nothing.
        db.session.get(User, gone.id).status = "archived"
        db.session.commit()

    sent: list[tuple[date, str, str, list[str]]] = []
    day = DAY0
    while day <= date(2026, 2, 27):
        if day == date(2026, 2, 20):
            with at(day), app.app_context():
                record = db.session.scalar(
                    sa.select(CourseAssignment).where(
                        CourseAssignment.user_id == lee.id, CourseAssignment.course_id == safe.id
                    )
                )
                licensing.complete(record, score=95)
                db.session.commit()
        before = len(smtp.messages)
        run_worker(runner, day)
        if day in (date(2026, 1, 28), date(2026, 2, 5)):
            run_worker(runner, day)  # the same pass again sends nothing more
        for message in smtp.messages[before:]:
            sent.append((day, message["To"], message["Subject"], courses_in(message)))
            assert html_body(message).startswith("<!doctype html>")
        day += timedelta(days=1)

    assert sent == [
        (DAY0, "lee@example.com", "Test Org: new training assigned (2 courses)", ["SAFE", "FIRE"]),
        (date(2026, 1, 28), "lee@example.com", "Test Org: training due soon (1 course)", ["SAFE"]),
        (date(2026, 2, 1), "lee@example.com", "Test Org: training due soon (1 course)", ["FIRE"]),
        (date(2026, 2, 5), "lee@example.com", "Test Org: overdue training (2 courses)",
         ["SAFE", "FIRE"]),
        (date(2026, 2, 12), "lee@example.com", "Test Org: overdue training (2 courses)",
         ["SAFE", "FIRE"]),
        (date(2026, 2, 18), "boss@example.com",
         "Test Org: overdue training in your team (1 record)", ["SAFE"]),
        (date(2026, 2, 19), "lee@example.com", "Test Org: overdue training (2 courses)",
         ["SAFE", "FIRE"]),
        (date(2026, 2, 26), "lee@example.com", "Test Org: overdue training (1 course)",
         ["FIRE"]),
    ]  # fmt: skip
    first, escalation = smtp.messages[0], smtp.messages[5]
    assert "SAFE Safety: due 2026-02-04" in text_body(first)
    assert "http://lms.test/my/training" in text_body(first)
    assert "lee@example.com" in text_body(escalation) and "SAFE Safety" in text_body(escalation)
    assert "due 2026-02-04 (14 days overdue)" in text_body(escalation)
    assert "gone@example.com" not in text_body(escalation)
    with app.app_context():
        recipients = set(db.session.scalars(sa.select(OutboundEmail.recipient)))
        assert recipients == {"lee@example.com", "boss@example.com"}


def course_obj(course):
    from lmsweb.models import Course

    return db.session.get(Course, course.id)


def test_emails_stop_when_the_course_turns_them_off(app, make, runner):
    quiet = make.course("QUIET", emails_enabled=False)
    lee = make.user(email="lee@example.com")
    with at(DAY0), app.app_context():
        licensing.assign(db.session.get(User, lee.id), course_obj(quiet), DAY0)
        db.session.commit()
    for offset in range(0, 20):
        run_worker(runner, DAY0 + timedelta(days=offset))
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboundEmail)) == 0


def test_an_archived_manager_gets_no_escalation(app, make, runner):
    course = make.course("SAFE", escalate_after_days=1, remind_overdue_every_days=0)
    boss = make.user(email="boss@example.com")
    lee = make.user(email="lee@example.com", manager_id=boss.id)
    with at(DAY0), app.app_context():
        licensing.assign(db.session.get(User, lee.id), course_obj(course), DAY0)
        lifecycle.archive(db.session.get(User, boss.id), "user")
        db.session.commit()
    run_worker(runner, DAY0 + timedelta(days=5))
    with app.app_context():
        kinds = db.session.execute(sa.select(OutboundEmail.recipient, OutboundEmail.kind)).all()
        assert kinds == [("lee@example.com", "assignment")]
        assert (
            db.session.scalar(
                sa.select(sa.func.count())
                .select_from(ScheduleNotice)
                .where(ScheduleNotice.kind == "escalation")
            )
            == 0
        )


def test_the_worker_refuses_a_malformed_clock(runner):
    result = runner.invoke(args=["lms", "worker", "--once", "--now", "tomorrow"])
    assert result.exit_code == 2 and "use YYYY-MM-DDTHH:MM" in result.output
