"""`flask lms ...` commands."""

from __future__ import annotations

import sqlalchemy as sa
from werkzeug.security import check_password_hash

from lmsweb.extensions import db
from lmsweb.models import Course, CourseAssignment, User
from tests.conftest import count, login


def test_create_admin_then_sign_in(app, runner):
    result = runner.invoke(
        args=["lms", "create-admin", "--email", "Boss@Example.com", "--password", "s3cret-pass"]
    )
    assert result.exit_code == 0, result.output
    client = app.test_client()
    login(client, "boss@example.com", "s3cret-pass")
    assert client.get("/admin/users").status_code == 200


def test_create_admin_prompts_for_the_password(app, runner):
    result = runner.invoke(
        args=["lms", "create-admin", "--email", "p@example.com"], input="long-enough\nlong-enough\n"
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == "p@example.com"))
        assert user.is_admin and check_password_hash(user.password_hash, "long-enough")
        assert "long-enough" not in result.output


def test_create_admin_refuses_a_short_password(app, runner):
    result = runner.invoke(
        args=["lms", "create-admin", "--email", "x@example.com", "--password", "short"]
    )
    assert result.exit_code != 0
    assert count(app, User) == 0


def test_seed_demo_then_check_reports_no_drift(app, runner):
    result = runner.invoke(args=["lms", "seed-demo", "--users", "400"])
    assert result.exit_code == 0, result.output
    assert count(app, User) == 400
    statuses = {s for (s,) in _rows(app, "SELECT DISTINCT status FROM users")}
    states = {s for (s,) in _rows(app, "SELECT DISTINCT state FROM course_assignments")}
    assert statuses == {"pending", "active", "archived"}
    assert states == {"assigned", "in_progress", "completed"}
    check = runner.invoke(args=["lms", "check"])
    assert check.exit_code == 0, check.output
    assert "no drift" in check.output


def test_check_reports_drift_and_repairs_it(app, runner, make):
    course = make.course(seats=10)
    make.assignment(make.learner(), course)
    with app.app_context():
        db.session.execute(sa.update(Course).values(seats_reserved=3))
        db.session.commit()
    result = runner.invoke(args=["lms", "check"])
    assert result.exit_code == 1
    assert f"DRIFT {course.code}: reserved stored 3, records imply 1" in result.output
    assert runner.invoke(args=["lms", "check", "--repair"]).exit_code == 0
    assert runner.invoke(args=["lms", "check"]).exit_code == 0
    assert count(app, CourseAssignment) == 1


def test_setup_prints_the_admin_sign_in_once(app, runner):
    first = runner.invoke(args=["lms", "setup"])
    assert first.exit_code == 0, first.output
    assert "password:" in first.output
    password = first.output.split("password:")[1].split()[0]
    client = app.test_client()
    login(client, "admin@example.com", password)
    assert client.get("/admin/users").status_code == 200
    again = runner.invoke(args=["lms", "setup"])
    assert again.exit_code == 0 and "password:" not in again.output
    assert "admin@example.com" in again.output


def _rows(app, sql):
    with app.app_context():
        return db.session.execute(sa.text(sql)).all()
