"""The Groups and Course Assignments dialogs: partial and full page, changes, errors, audit."""

from __future__ import annotations

import json
from datetime import date, timedelta

from lmsweb.models import AuditEvent, Course, CourseAssignment, User
from tests.conftest import HX, count, get

TOMORROW = date.today() + timedelta(days=1)


def _trigger(response) -> dict:
    return json.loads(response.headers["HX-Trigger"])


# --- Groups ---------------------------------------------------------------------------


def test_groups_dialog_partial_and_full_page(admin_client, make):
    a, b = make.group("Alpha"), make.group("Beta")
    user = make.user(groups=[a])
    partial = admin_client.get(f"/admin/users/{user.id}/groups", headers=HX)
    assert partial.status_code == 200
    assert partial.text.lstrip().startswith("<dialog")
    assert 'aria-labelledby="groups-dialog-title"' in partial.text
    assert f'value="{a.id}" checked' in partial.text
    assert f'value="{b.id}">' in partial.text
    assert "HX-Request" in partial.headers["Vary"]
    page = admin_client.get(f"/admin/users/{user.id}/groups?next=/admin/users?q=x")
    assert "<h1>Groups of" in page.text and "<!doctype html>" in page.text
    assert 'name="next" value="/admin/users?q=x"' in page.text


def test_saving_groups_replaces_the_set_swaps_the_row_and_audits(app, admin_client, make):
    a, b, c = make.group("Alpha"), make.group("Beta"), make.group("Gamma")
    user = make.user(groups=[a, b])
    response = admin_client.post(
        f"/admin/users/{user.id}/groups", data={"group": [b.id, c.id]}, headers=HX
    )
    assert response.status_code == 200
    assert response.headers["HX-Retarget"] == f"#user-{user.id}"
    assert response.text.lstrip().startswith(f'<tr id="user-{user.id}"')
    trigger = _trigger(response)
    assert trigger["closeDialog"] is True
    assert trigger["showToast"]["message"].endswith("added to Gamma; removed from Alpha.")
    from lmsweb.extensions import db

    with app.app_context():
        names = [g.name for g in db.session.get(User, user.id).groups]
    assert names == ["Beta", "Gamma"]
    assert count(app, AuditEvent, AuditEvent.action == "user.groups") == 1


def test_groups_plain_post_redirects_to_next_and_unknown_group_is_422(admin_client, make):
    user = make.user()
    group = make.group()
    ok = admin_client.post(
        f"/admin/users/{user.id}/groups", data={"group": [group.id], "next": "/admin/users?q=a"}
    )
    assert ok.status_code == 303 and ok.headers["Location"] == "/admin/users?q=a"
    offsite = admin_client.post(
        f"/admin/users/{user.id}/groups", data={"group": [group.id], "next": "https://evil.test/"}
    )
    assert offsite.headers["Location"] == "/admin/users"
    bad = admin_client.post(f"/admin/users/{user.id}/groups", data={"group": ["999"]}, headers=HX)
    assert bad.status_code == 422
    assert "Unknown group" in bad.text


# --- Course assignments ---------------------------------------------------------------


def test_courses_dialog_partial_and_full_page(admin_client, make):
    user = make.user(first_name="Jane", last_name="Doe")
    open_course = make.course("OPEN-1", seats=3)
    full = make.course("FULL-1", seats=1)
    make.assignment(make.user(), full)
    started = make.course("DONE-1", seats=2)
    make.assignment(user, started, state="in_progress")
    partial = admin_client.get(f"/admin/users/{user.id}/courses", headers=HX)
    assert partial.status_code == 200
    assert partial.text.lstrip().startswith("<dialog")
    assert "Course assignments: Jane Doe" in partial.text
    # A course without seats is listed but disabled, saying why.
    assert f'value="{full.id}" disabled' in partial.text
    assert "no licenses available (all 1 assigned or in use)" in partial.text
    # Enabled, and first to take the focus (not a row's Archive activity button).
    assert f'value="{open_course.id}" autofocus>' in partial.text
    assert "Archive activity" in partial.text
    page = admin_client.get(f"/admin/users/{user.id}/courses")
    assert "<h1>Course assignments: Jane Doe</h1>" in page.text


def test_assign_takes_seats_swaps_the_row_toasts_and_audits(app, admin_client, make):
    user = make.user(first_name="Jane", last_name="Doe")
    c1, c2 = make.course("A-1", seats=2), make.course("B-2", seats=5)
    response = admin_client.post(
        f"/admin/users/{user.id}/courses",
        data={"action": "assign", "course": [c1.id, c2.id], "due_date": TOMORROW.isoformat()},
        headers=HX,
    )
    assert response.status_code == 200, response.text
    assert response.headers["HX-Retarget"] == f"#user-{user.id}"
    message = _trigger(response)["showToast"]["message"]
    assert "Assigned A-1, B-2 to Jane Doe" in message and "2 licenses taken" in message
    assert get(app, Course, c1.id).seats_reserved == 1
    assert get(app, Course, c2.id).seats_available == 4
    assert count(app, CourseAssignment, CourseAssignment.due_date == TOMORROW) == 2
    assert count(app, AuditEvent, AuditEvent.action == "assignment.assign") == 2


def test_assign_without_date_uses_each_course_default(app, admin_client, make):
    user = make.user()
    course = make.course(seats=1, default_due_days=14)
    response = admin_client.post(
        f"/admin/users/{user.id}/courses", data={"action": "assign", "course": course.id}
    )
    assert response.status_code == 303
    with app.app_context():
        from lmsweb.extensions import db

        a = db.session.query(CourseAssignment).one()
        assert a.due_date == date.today() + timedelta(days=14)


def test_bad_input_is_422_with_errors_and_changes_nothing(app, admin_client, make):
    user = make.user()
    course = make.course(seats=1)
    url = f"/admin/users/{user.id}/courses"
    past = (date.today() - timedelta(days=1)).isoformat()
    for data, text in [
        ({"action": "assign", "course": course.id, "due_date": past}, "cannot be in the past"),
        (
            {"action": "assign", "course": "9999", "due_date": TOMORROW.isoformat()},
            "Unknown course",
        ),
        ({"action": "assign", "course": "abc"}, "Unknown course"),
        ({"action": "assign"}, "Choose at least one course"),
    ]:
        for headers in (HX, {"HX-Request": "true", "HX-Target": "courses-dialog-body"}, {}):
            response = admin_client.post(url, data=data, headers=headers)
            assert response.status_code == 422, (data, response.text)
            assert text in response.text
            assert 'class="field__error"' in response.text
    assert count(app, CourseAssignment) == 0
    assert get(app, Course, course.id).seats_reserved == 0


def test_no_seats_is_409_with_a_clear_message_and_all_or_nothing(app, admin_client, make):
    user = make.user()
    ok, full = make.course("OK-1", seats=3), make.course("FULL-1", seats=0)
    response = admin_client.post(
        f"/admin/users/{user.id}/courses",
        data={"action": "assign", "course": [ok.id, full.id]},
        headers=HX,
    )
    assert response.status_code == 409
    assert response.text.startswith("No licenses available for FULL-1")
    assert get(app, Course, ok.id).seats_reserved == 0
    plain = admin_client.post(
        f"/admin/users/{user.id}/courses", data={"action": "assign", "course": [full.id]}
    )
    assert plain.status_code == 409 and "No licenses available" in plain.text
    assert count(app, CourseAssignment) == 0


def test_unassign_returns_the_seat(app, admin_client, make):
    user = make.user()
    course = make.course("U-1", seats=1)
    a = make.assignment(user, course)
    response = admin_client.post(
        f"/admin/users/{user.id}/courses",
        data={"action": "unassign", "assignment": a.id},
        headers={**HX, "HX-Target": "courses-dialog-body"},
    )
    assert response.status_code == 200
    assert "1 license returned" in _trigger(response)["showToast"]["message"]
    assert not response.text.lstrip().startswith("<dialog")  # the body only
    assert "Archived records (1)" in response.text
    assert get(app, Course, course.id).seats_available == 1
    assert get(app, CourseAssignment, a.id).archive_reason == "unassigned"
    assert count(app, AuditEvent, AuditEvent.action == "assignment.unassign") == 1


def test_archive_activity_keeps_the_seat_used_and_allows_reassigning(app, admin_client, make):
    user = make.user()
    course = make.course("R-1", seats=2)
    a = make.assignment(user, course, state="completed")
    url = f"/admin/users/{user.id}/courses"
    started = admin_client.post(url, data={"action": "unassign", "assignment": a.id}, headers=HX)
    assert started.status_code == 409 and "cannot be unassigned" in started.text
    response = admin_client.post(
        url, data={"action": "archive_activity", "assignment": a.id}, headers=HX
    )
    assert response.status_code == 200
    assert "license stays used" in _trigger(response)["showToast"]["message"]
    assert get(app, Course, course.id).seats_used == 1
    again = admin_client.post(url, data={"action": "assign", "course": course.id}, headers=HX)
    assert again.status_code == 200
    pool = get(app, Course, course.id)
    assert (pool.seats_used, pool.seats_reserved, pool.seats_available) == (1, 1, 0)
    assert count(app, CourseAssignment) == 2


def test_change_due_date_inline(app, admin_client, make):
    user = make.user()
    a = make.assignment(user, make.course(seats=1))
    url = f"/admin/users/{user.id}/courses"
    new = date.today() + timedelta(days=60)
    response = admin_client.post(
        url,
        data={"action": "change_due_date", "assignment": a.id, "due_date": new.isoformat()},
        headers=HX,
    )
    assert response.status_code == 200
    assert get(app, CourseAssignment, a.id).due_date == new
    assert count(app, AuditEvent, AuditEvent.action == "assignment.due_date") == 1
    past = admin_client.post(
        url,
        data={"action": "change_due_date", "assignment": a.id, "due_date": "2000-01-01"},
        headers=HX,
    )
    assert past.status_code == 422 and "cannot be in the past" in past.text
    assert get(app, CourseAssignment, a.id).due_date == new


def test_someone_elses_assignment_is_not_found(app, admin_client, make):
    user, other = make.user(), make.user()
    a = make.assignment(other, make.course(seats=1))
    response = admin_client.post(
        f"/admin/users/{user.id}/courses", data={"action": "unassign", "assignment": a.id}
    )
    assert response.status_code == 404
    assert get(app, CourseAssignment, a.id).archived_at is None


def test_row_has_the_dialog_buttons(admin_client, make):
    user = make.user()
    # Invited and activated: Course assignments is the row's primary action.
    activated = make.learner(invite_status="sent")
    html = admin_client.get("/admin/users").text
    assert f'id="courses-btn-{activated.id}"' in html and "data-dialog" in html
    menu = admin_client.get(f"/admin/users/{user.id}/menu", headers=HX).text
    assert f'id="courses-btn-{user.id}"' in menu
    assert f'id="groups-btn-{user.id}"' in menu
