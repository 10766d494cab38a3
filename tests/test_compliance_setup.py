"""The compliance cycle's set-up: a course's schedule, and users' managers."""

from __future__ import annotations

from lmsweb.models import AuditEvent, Course, User
from tests.conftest import HX, count, get


def test_a_new_course_gets_the_default_schedule_and_due_period(app, admin_client):
    response = admin_client.post(
        "/admin/courses/new", data={"code": "FIRE-1", "title": "Fire", "seats": "5"}
    )
    assert response.status_code == 303
    with app.app_context():
        from sqlalchemy import select

        from lmsweb.extensions import db

        course = db.session.scalar(select(Course).where(Course.code == "FIRE-1"))
        assert course.default_due_days == 30
        assert (
            course.remind_before_days,
            course.remind_overdue_every_days,
            course.escalate_after_days,
            course.valid_for_days,
            course.renew_before_days,
            course.emails_enabled,
        ) == (7, 7, 14, 0, 30, True)
        course_id = course.id
    page = admin_client.get(f"/admin/courses/{course_id}")
    assert page.status_code == 200
    assert (
        "Reminds 7 days before the due date, then weekly while overdue; tells the manager "
        "after 14 days overdue; a completion never expires." in page.text
    )


def test_the_schedule_is_set_on_the_new_course_form_and_the_course_page(app, admin_client):
    data = {
        "code": "GDPR",
        "title": "Data protection",
        "seats": "3",
        "remind_before_days": "3",
        "remind_overdue_every_days": "0",
        "escalate_after_days": "0",
        "valid_for_days": "365",
        "renew_before_days": "30",
    }
    assert admin_client.post("/admin/courses/new", data=data).status_code == 303
    course = next(c for c in _courses(app) if c.code == "GDPR")
    assert (course.remind_before_days, course.valid_for_days) == (3, 365)
    page = admin_client.get(f"/admin/courses/{course.id}")
    assert (
        "Reminds 3 days before the due date, and none while overdue; never tells the manager; "
        "renews yearly (30 days before a completion expires)." in page.text
    )
    partial = admin_client.get(f"/admin/courses/{course.id}", headers=HX)
    assert partial.status_code == 200
    changed = admin_client.post(
        f"/admin/courses/{course.id}",
        data={"remind_overdue_every_days": "7", "escalate_after_days": "14", "emails": "off"},
    )
    assert changed.status_code == 303
    course = get(app, Course, course.id)
    assert (course.remind_before_days, course.remind_overdue_every_days) == (3, 7)
    assert course.escalate_after_days == 14 and course.emails_enabled is False
    assert count(app, AuditEvent, AuditEvent.action == "course.schedule") == 1
    assert (
        "Sends no emails about this course" in admin_client.get(f"/admin/courses/{course.id}").text
    )


def test_a_bad_schedule_is_refused_and_changes_nothing(app, admin_client, make):
    course = make.course("SAFE", valid_for_days=365, renew_before_days=30)
    for data, message in [
        ({"remind_before_days": "-1"}, "Enter 0 to 3650 days."),
        ({"remind_before_days": "soon"}, "Not a valid integer value."),
        ({"renew_before_days": "400"}, "Renew fewer days before expiry"),
    ]:
        response = admin_client.post(f"/admin/courses/{course.id}", data=data)
        assert response.status_code == 422 and message in response.text
    assert get(app, Course, course.id).renew_before_days == 30
    assert count(app, AuditEvent, AuditEvent.action == "course.schedule") == 0
    assert admin_client.get("/admin/courses/99999").status_code == 404


def _courses(app):
    with app.app_context():
        from sqlalchemy import select

        from lmsweb.extensions import db

        rows = db.session.scalars(select(Course)).all()
        for row in rows:
            db.session.expunge(row)
        return rows


def _new_user(**overrides):
    data = {
        "first_name": "Jane",
        "last_name": "Doe",
        "email": "jane@example.com",
        "location": "",
        "role": "learner",
    }
    return {**data, **overrides}


def test_a_manager_is_set_on_add_and_edit_shown_and_filtered_on(app, admin_client, make):
    boss = make.user(first_name="Maria", last_name="Boss", email="maria.boss@example.com")
    other = make.user(first_name="Otto", last_name="Other", email="otto@example.com")
    refused = admin_client.post(
        "/admin/users/new", data=_new_user(manager_email="nobody@example.com")
    )
    assert refused.status_code == 422 and "No user has this email" in refused.text
    assert count(app, User, User.email == "jane@example.com") == 0
    added = admin_client.post(
        "/admin/users/new", data=_new_user(manager_email="Maria.Boss@example.com")
    )
    assert added.status_code == 303
    with app.app_context():
        from sqlalchemy import select

        from lmsweb.extensions import db

        jane = db.session.scalar(select(User).where(User.email == "jane@example.com"))
        assert jane.manager_id == boss.id
        jane_id = jane.id
    page = admin_client.get(f"/admin/users/{jane_id}")
    assert 'id="user-manager"' in page.text and "Maria Boss" in page.text
    listed = admin_client.get(f"/admin/users?manager={boss.id}")
    assert f'id="user-{jane_id}"' in listed.text and f'id="user-{other.id}"' not in listed.text
    assert "Manager" in listed.text and "Maria Boss" in listed.text  # the removable chip
    self_managed = admin_client.post(
        f"/admin/users/{jane_id}", data=_new_user(manager_email="jane@example.com")
    )
    assert self_managed.status_code == 422 and "their own manager" in self_managed.text
    edited = admin_client.post(
        f"/admin/users/{jane_id}", data=_new_user(manager_email="otto@example.com")
    )
    assert edited.status_code == 303
    assert get(app, User, jane_id).manager_id == other.id
    assert (
        count(app, AuditEvent, AuditEvent.action == "user.update", AuditEvent.target_id == jane_id)
        == 1
    )
    cleared = admin_client.post(f"/admin/users/{jane_id}", data=_new_user(manager_email=""))
    assert cleared.status_code == 303 and get(app, User, jane_id).manager_id is None
