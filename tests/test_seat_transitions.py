"""A record's state decides in the database, not in what a request read earlier.

Each test reads a record (or user), lets another transaction change it and commit, and then
acts on what it read: exactly what a request that lost a race does. The change must be
refused with a clear message and nothing changed, and the pools must still agree with the
records. Deterministic; the racing processes themselves are in test_seat_races.py."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from lmsweb import licensing, lifecycle
from lmsweb.extensions import db
from lmsweb.models import Course, CourseAssignment, User
from tests.conftest import get

DUE = date.today() + timedelta(days=30)


def _stale(app, model, ident):
    """What a request read before the other one committed: detached, never refreshed."""
    with app.app_context():
        obj = db.session.get(model, ident)
        if isinstance(obj, CourseAssignment):
            obj.course  # noqa: B018 - loaded now, as the views load it
        db.session.expunge_all()
        return obj


def _meanwhile(app, change) -> None:
    """Another request: its own session and transaction, committed."""
    with app.app_context():
        change()
        db.session.commit()


def _refused(app, stale, action, message: str) -> None:
    with app.app_context():
        db.session.add(stale)
        with pytest.raises(licensing.DomainError, match=message):
            action(stale)
        db.session.rollback()


def _no_drift(app) -> None:
    with app.app_context():
        assert licensing.pool_drift() == []


def _unassign(record_id):
    return lambda: licensing.unassign(db.session.get(CourseAssignment, record_id))


def _start(record_id):
    return lambda: licensing.start(db.session.get(CourseAssignment, record_id))


def test_unassigning_an_already_unassigned_record_returns_no_second_seat(app, make):
    course = make.course(seats=3)
    record = make.assignment(make.user(), course)
    make.assignment(make.user(), course)
    stale = _stale(app, CourseAssignment, record.id)
    _meanwhile(app, _unassign(record.id))
    _refused(app, stale, licensing.unassign, "That assignment is already archived.")
    assert get(app, Course, course.id).seats_reserved == 1
    _no_drift(app)


def test_unassigning_a_record_started_meanwhile_is_refused(app, make):
    course = make.course(seats=3)
    record = make.assignment(make.user(), course)
    stale = _stale(app, CourseAssignment, record.id)
    _meanwhile(app, _start(record.id))
    _refused(app, stale, licensing.unassign, "A started course cannot be unassigned")
    after = get(app, CourseAssignment, record.id)
    assert (after.state, after.archived_at) == ("in_progress", None)
    _no_drift(app)


def test_starting_a_record_unassigned_meanwhile_is_refused(app, make):
    course = make.course(seats=3)
    record = make.assignment(make.user(), course)
    stale = _stale(app, CourseAssignment, record.id)
    _meanwhile(app, _unassign(record.id))
    _refused(app, stale, licensing.start, "This training record is archived.")
    assert get(app, Course, course.id).seats_used == 0
    _no_drift(app)


def test_completing_a_record_archived_meanwhile_is_refused(app, make):
    course = make.course(seats=3)
    record = make.assignment(make.user(), course, state="in_progress")
    stale = _stale(app, CourseAssignment, record.id)
    _meanwhile(app, lambda: licensing.archive_activity(db.session.get(CourseAssignment, record.id)))
    _refused(app, stale, licensing.complete, "This training record is archived.")
    assert get(app, CourseAssignment, record.id).state == "in_progress"
    _no_drift(app)


def test_archiving_a_record_archived_meanwhile_is_refused(app, make):
    course = make.course(seats=3)
    record = make.assignment(make.user(), course)
    stale = _stale(app, CourseAssignment, record.id)
    _meanwhile(app, _unassign(record.id))
    _refused(app, stale, licensing.archive_activity, "That activity is already archived.")
    assert get(app, CourseAssignment, record.id).archive_reason == "unassigned"
    _no_drift(app)


def test_a_second_start_moves_no_second_seat(app, make):
    course = make.course(seats=3)
    record = make.assignment(make.user(), course)
    stale = _stale(app, CourseAssignment, record.id)
    _meanwhile(app, _start(record.id))
    with app.app_context():
        db.session.add(stale)
        assert licensing.start(stale) is False
        db.session.commit()
    pool = get(app, Course, course.id)
    assert (pool.seats_reserved, pool.seats_used) == (0, 1)
    _no_drift(app)


def test_assigning_a_user_archived_meanwhile_is_refused(app, make):
    user, course = make.user(), make.course(seats=3)
    stale = _stale(app, User, user.id)
    _meanwhile(app, lambda: lifecycle.archive(db.session.get(User, user.id), "user"))
    with app.app_context():
        db.session.add(stale)
        with pytest.raises(licensing.DomainError, match="is archived"):
            licensing.assign(stale, db.session.get(Course, course.id), DUE)
        db.session.rollback()
    assert get(app, Course, course.id).seats_reserved == 0
    _no_drift(app)


def test_archiving_a_user_archived_meanwhile_is_refused_and_returns_nothing(app, make):
    user, course = make.user(), make.course(seats=3)
    make.assignment(user, course)
    stale = _stale(app, User, user.id)
    _meanwhile(app, lambda: lifecycle.archive(db.session.get(User, user.id), "user"))
    _refused(app, stale, lambda u: lifecycle.archive(u, "user"), "is already archived")
    assert get(app, Course, course.id).seats_reserved == 0
    _no_drift(app)


def test_restoring_a_user_restored_meanwhile_changes_nothing(app, make):
    user = make.user(status="archived")
    stale = _stale(app, User, user.id)
    _meanwhile(app, lambda: lifecycle.restore(db.session.get(User, user.id)))
    with app.app_context():
        db.session.add(stale)
        assert lifecycle.restore(stale) is False
        db.session.rollback()
