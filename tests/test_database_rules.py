"""Rules the database itself enforces, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from lmsweb.extensions import db
from lmsweb.models import AuditEvent, Course, CourseAssignment, Group, User
from tests.conftest import count


def _execute(app, statement, **params):
    with app.app_context():
        try:
            db.session.execute(sa.text(statement), params)
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise


def test_raw_delete_of_training_records_fails(app, make):
    user, course = make.learner(), make.course()
    make.assignment(user, course)
    with pytest.raises(DBAPIError, match="never deleted"):
        _execute(app, "DELETE FROM course_assignments")
    assert count(app, CourseAssignment) == 1


def test_users_with_training_records_cannot_be_deleted(app, make):
    user, course = make.learner(), make.course()
    make.assignment(user, course)
    with pytest.raises(DBAPIError):
        _execute(app, "DELETE FROM users WHERE id = :id", id=user.id)
    assert count(app, User, User.id == user.id) == 1


def test_audit_log_is_append_only(app, make):
    with app.app_context():
        db.session.add(AuditEvent(action="test", summary="kept", details={}))
        db.session.commit()
    with pytest.raises(DBAPIError, match="append-only"):
        _execute(app, "UPDATE audit_events SET summary = 'changed'")
    with pytest.raises(DBAPIError, match="append-only"):
        _execute(app, "DELETE FROM audit_events")
    assert count(app, AuditEvent, AuditEvent.summary == "kept") == 1


def test_email_is_unique_case_insensitively(make):
    make.user(email="jane@example.com")
    with pytest.raises(sa.exc.IntegrityError):
        make.user(email="JANE@Example.com")


def test_user_id_is_unique(make):
    make.user(employee_id="007")
    with pytest.raises(sa.exc.IntegrityError):
        make.user(employee_id="007")


def test_one_unarchived_assignment_per_user_and_course(app, make):
    user, course = make.learner(), make.course()
    make.assignment(user, course)
    with pytest.raises(sa.exc.IntegrityError):
        _execute(
            app,
            "INSERT INTO course_assignments (user_id, course_id, assigned_at, state) "
            "VALUES (:u, :c, CURRENT_TIMESTAMP, 'assigned')",
            u=user.id,
            c=course.id,
        )
    _execute(app, "UPDATE course_assignments SET archived_at = CURRENT_TIMESTAMP")
    _execute(
        app,
        "INSERT INTO course_assignments (user_id, course_id, assigned_at, state) "
        "VALUES (:u, :c, CURRENT_TIMESTAMP, 'assigned')",
        u=user.id,
        c=course.id,
    )


@pytest.mark.parametrize(
    "values",
    [
        "seats_reserved = -1",
        "seats_used = -1",
        "seats_total = 1, seats_reserved = 1, seats_used = 1",
        "seats_total = -5",
    ],
)
def test_license_counters_are_checked(app, make, values):
    course = make.course(seats=5)
    with pytest.raises(sa.exc.IntegrityError):
        _execute(app, f"UPDATE courses SET {values} WHERE id = :id", id=course.id)


def test_foreign_keys_are_enforced(app):
    with pytest.raises(sa.exc.IntegrityError):
        _execute(app, "INSERT INTO user_groups (user_id, group_id) VALUES (999, 999)")


def _raw_delete(database_url: str, statement: str) -> None:
    """A DELETE from outside the app: the sqlite3 module with foreign keys off (as the
    sqlite3 shell starts), or a plain psycopg connection."""
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(url.database, isolation_level=None)
        try:
            connection.execute("PRAGMA foreign_keys = OFF")
            assert connection.execute("PRAGMA foreign_keys").fetchone() == (0,)
            connection.execute(statement)
        finally:
            connection.close()
    else:
        with psycopg.connect(url.set(drivername="postgresql").render_as_string(False)) as conn:
            conn.execute(statement)


GUARDED = {
    "courses": ("DELETE FROM courses", "courses with training records are never deleted"),
    "users": ("DELETE FROM users", "users with training records are never deleted"),
    "groups": ("DELETE FROM groups", "groups with members are never deleted"),
}


@pytest.mark.parametrize("statement,message", GUARDED.values(), ids=GUARDED.keys())
def test_raw_deletes_of_what_keeps_training_data_are_refused(
    app, database_url, admin_client, make, statement, message
):
    group, course = make.group(), make.course()
    make.assignment(make.learner(groups=[group]), course)
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.RestrictViolation), match=message):
        _raw_delete(database_url, statement)
    assert count(app, Course) == 1
    assert count(app, User) == 2
    assert count(app, Group) == 1
    assert count(app, CourseAssignment) == 1
    assert admin_client.get("/admin/dashboard").status_code == 200


def test_courses_and_groups_without_training_data_can_still_be_deleted(app, database_url, make):
    make.group(), make.course()
    _raw_delete(database_url, "DELETE FROM courses")
    _raw_delete(database_url, "DELETE FROM groups")
    assert count(app, Course) == 0
    assert count(app, Group) == 0
