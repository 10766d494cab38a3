"""Recertification: a completion about to expire gets a new assignment (a new seat); the old
record stays, expired on its expiry date. Time travels with time-machine; both engines."""

from __future__ import annotations

from datetime import date, datetime

import pytest
import sqlalchemy as sa
import time_machine

from lmsweb import licensing
from lmsweb.extensions import db
from lmsweb.models import Course, CourseAssignment, OutboundEmail, User
from tests.conftest import count, get, login

DONE = date(2026, 1, 10)  # completed; valid 365 days, renewed 30 days before expiry
RENEW = date(2026, 12, 11)
EXPIRY = date(2027, 1, 10)


@pytest.fixture(autouse=True)
def _own_dev_mailbox(app, tmp_path):
    """Mail drained without MAIL_SERVER lands in this test's own instance folder, not in the
    session's (where the outbox tests count the messages)."""
    app.instance_path = str(tmp_path)


def at(day: date):
    return time_machine.travel(datetime(day.year, day.month, day.day, 9, 0), tick=False)


def worker(runner, day):
    with at(day):
        result = runner.invoke(args=["lms", "worker", "--once", "--now", f"{day}T09:00"])
    assert result.exit_code == 0, result.output
    return result.output


def completed(app, user, course):
    with at(date(2025, 12, 1)), app.app_context():
        record = licensing.assign(
            db.session.get(User, user.id), db.session.get(Course, course.id), DONE
        )
        record.notified_at = record.assigned_at
        db.session.commit()
        record_id = record.id
    with at(DONE), app.app_context():
        licensing.complete(db.session.get(CourseAssignment, record_id), score=88)
        db.session.commit()
    return record_id


def open_record(app, user, course):
    with app.app_context():
        record = db.session.scalar(
            sa.select(CourseAssignment).where(
                CourseAssignment.user_id == user.id,
                CourseAssignment.course_id == course.id,
                CourseAssignment.archived_at.is_(None),
            )
        )
        if record is not None:
            db.session.expunge(record)
        return record


def test_renewal_makes_a_new_record_and_keeps_the_old_one_expired(app, admin, client, make, runner):
    course = make.course("CPR", seats=2, valid_for_days=365, renew_before_days=30)
    lee = make.user(first_name="Lee", email="lee@example.com")
    old_id = completed(app, lee, course)
    assert get(app, Course, course.id).seats_used == 1

    worker(runner, date(2026, 12, 10))
    assert open_record(app, lee, course).id == old_id  # not yet
    assert count(app, OutboundEmail) == 0

    output = worker(runner, RENEW)
    assert "1 renewals" in output
    new = open_record(app, lee, course)
    assert new.id != old_id and new.renewal_of_id == old_id
    assert new.state == "assigned" and new.due_date == EXPIRY
    old = get(app, CourseAssignment, old_id)
    assert old.state == "completed" and old.archive_reason == "renewed"
    assert old.expires_on == EXPIRY and old.score == 88
    pool = get(app, Course, course.id)
    assert (pool.seats_used, pool.seats_reserved) == (1, 1)  # a new seat
    with app.app_context():
        [email] = db.session.scalars(sa.select(OutboundEmail)).all()
        assert email.kind == "renewal" and email.recipient == "lee@example.com"
        assert email.subject == "Test Org: time to renew your certification (1 course)"
        assert "CPR Course" in email.body_text and "due 2027-01-10" in email.body_text
    worker(runner, RENEW)  # the same day again: nothing new
    assert count(app, CourseAssignment, CourseAssignment.user_id == lee.id) == 2

    admin_client = client
    with at(date(2026, 12, 20)):
        login(admin_client, admin.email)
        page = admin_client.get(f"/admin/users/{lee.id}")
        assert "Renewal due" in page.text and "expires 2027-01-10" in page.text
        listed = admin_client.get("/admin/users?training=renewal_due")
        assert f'id="user-{lee.id}"' in listed.text
        assert f'id="user-{lee.id}"' not in admin_client.get("/admin/users?training=expired").text
    with at(date(2027, 1, 11)):
        login(admin_client, admin.email)
        page = admin_client.get(f"/admin/users/{lee.id}")
        assert 'Expired</span> <span class="muted">on 2027-01-10' in page.text
        assert f'id="user-{lee.id}"' in admin_client.get("/admin/users?training=expired").text
        dashboard = admin_client.get("/admin/dashboard").text
        assert 'id="dash-expired">1<' in dashboard and 'id="dash-renewal-due">1<' in dashboard
        with app.app_context():
            licensing.complete(db.session.get(CourseAssignment, new.id), score=91)
            db.session.commit()
        assert f'id="user-{lee.id}"' not in admin_client.get("/admin/users?training=expired").text


def test_a_renewal_without_a_free_seat_waits_then_is_made(app, admin, client, make, runner):
    course = make.course("CPR", seats=1, valid_for_days=365, renew_before_days=30)
    lee = make.user(email="lee@example.com")
    old_id = completed(app, lee, course)
    worker(runner, RENEW)
    assert open_record(app, lee, course).id == old_id  # the old one stays open meanwhile
    assert get(app, CourseAssignment, old_id).expires_on == EXPIRY
    with at(RENEW):
        admin_client = client
        login(admin_client, admin.email)
        assert "Waiting for a license" in admin_client.get(f"/admin/users/{lee.id}").text
        response = admin_client.post(f"/admin/courses/{course.id}/seats", data={"add": "1"})
        assert response.status_code == 303
    new = open_record(app, lee, course)
    assert new.renewal_of_id == old_id and new.due_date == EXPIRY
    assert get(app, CourseAssignment, old_id).archive_reason == "renewed"
