"""The course catalogue and its license pools."""

from __future__ import annotations

import json

from lmsweb.models import AuditEvent, Course
from tests.conftest import HX, count, get


def test_catalogue_full_page_and_partial_show_the_pool(admin_client, make):
    course = make.course("SAFE-1", seats=10, title="Safety basics")
    make.assignment(make.user(), course)
    make.assignment(make.user(), course, state="in_progress")
    make.assignment(make.user(), course, state="completed")
    page = admin_client.get("/admin/courses")
    assert page.status_code == 200
    assert "<h1>Courses</h1>" in page.text
    assert f'<tr id="course-{course.id}">' in page.text
    for field, value in [("total", 10), ("reserved", 1), ("used", 2), ("available", 7)]:
        assert f'data-pool="{field}">{value}<' in page.text
    assert 'aria-label="2 used, 1 reserved, 7 available of 10"' in page.text
    assert 'class="pool-bar__used" x="0" y="0" width="20.00"' in page.text
    partial = admin_client.get("/admin/courses", headers=HX)
    assert partial.text.lstrip().startswith('<div id="courses-content">')
    assert "HX-Request" in partial.headers["Vary"]


def test_add_course_and_reject_duplicates(app, admin_client):
    data = {
        "code": "FIRE-1",
        "title": "Fire safety",
        "seats": "25",
        "description": "Evacuation drills",
        "launch_url": "https://content.example.org/fire",
        "default_due_days": "14",
    }
    response = admin_client.post("/admin/courses/new", data=data, headers=HX)
    assert response.status_code == 200
    assert (
        "Added FIRE-1 with 25 licenses"
        in json.loads(response.headers["HX-Trigger"])["showToast"]["message"]
    )
    assert count(app, Course, Course.code == "FIRE-1", Course.seats_total == 25) == 1
    assert count(app, AuditEvent, AuditEvent.action == "course.create") == 1
    again = admin_client.post("/admin/courses/new", data={**data, "code": "fire-1"}, headers=HX)
    assert again.status_code == 422 and "already exists" in again.text
    bad = admin_client.post(
        "/admin/courses/new",
        data={"code": "", "title": "x", "seats": "-1", "default_due_days": "0"},
    )
    assert bad.status_code == 422
    assert "Enter a course code." in bad.text and "<h1>Add a course</h1>" in bad.text
    assert count(app, Course) == 1
    plain = admin_client.post("/admin/courses/new", data={**data, "code": "FIRE-2"})
    assert plain.status_code == 303 and plain.headers["Location"] == "/admin/courses"
    assert admin_client.get("/admin/courses/new").status_code == 200


def test_add_and_lower_seats_never_below_in_use(app, admin_client, make):
    course = make.course("P-1", seats=3)
    make.assignment(make.user(), course)
    make.assignment(make.user(), course, state="in_progress")
    url = f"/admin/courses/{course.id}/seats"
    more = admin_client.post(url, data={"add": "5"}, headers=HX)
    assert more.status_code == 200
    assert more.text.lstrip().startswith(f'<tr id="course-{course.id}">')
    assert "Added 5 licenses to P-1: 8 in total, 6 available." in more.headers["HX-Trigger"]
    fewer = admin_client.post(url, data={"add": "-6"}, headers=HX)
    assert fewer.status_code == 200
    assert get(app, Course, course.id).seats_total == 2
    too_far = admin_client.post(url, data={"add": "-1"}, headers=HX)
    assert too_far.status_code == 409
    assert "cannot go below" in too_far.text
    assert get(app, Course, course.id).seats_total == 2
    assert count(app, AuditEvent, AuditEvent.action == "course.seats") == 2
    not_a_number = admin_client.post(url, data={"add": "1.5"}, headers=HX)
    assert not_a_number.status_code == 422 and "whole number" in not_a_number.text
    plain = admin_client.post(url, data={"add": "1"})
    assert plain.status_code == 303
    assert admin_client.post("/admin/courses/9999/seats", data={"add": "1"}).status_code == 404


def test_learners_cannot_see_courses(learner_client):
    assert learner_client.get("/admin/courses").status_code == 403


def _queries(app, client, url: str) -> int:
    from sqlalchemy import event

    from lmsweb.extensions import db

    statements = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get(url).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return len(statements)


def test_page_queries_do_not_grow_with_the_number_of_rows(app, admin_client, make):
    user = make.user()
    for _ in range(2):
        course = make.course(seats=3)
        make.assignment(user, course)
    group = make.group()
    pages = [
        "/admin/courses",
        "/admin/groups",
        "/admin/locations",
        f"/admin/users/{user.id}/courses",
    ]
    few = {url: _queries(app, admin_client, url) for url in pages}
    for _ in range(10):
        course = make.course(seats=3)
        make.assignment(user, course)
        make.user(groups=[group], location_id=make.location().id)
    many = {url: _queries(app, admin_client, url) for url in pages}
    assert many == few


def test_edit_course_details_audited_and_code_unique(app, admin_client, make):
    course = make.course("OLD-1", seats=4, title="Old title")
    make.course("TAKEN-1")
    url = f"/admin/courses/{course.id}/edit"
    page = admin_client.get(url)
    assert "<h1>Edit OLD-1</h1>" in page.text and 'name="seats"' not in page.text
    data = {"code": "NEW-1", "title": "New title", "default_due_days": "10", "seats": "999"}
    assert admin_client.post(url, data=data).status_code == 303
    saved = get(app, Course, course.id)
    assert (saved.code, saved.title, saved.default_due_days) == ("NEW-1", "New title", 10)
    assert saved.seats_total == 4  # the pool is not edited here
    assert count(app, AuditEvent, AuditEvent.action == "course.update") == 1
    clash = admin_client.post(url, data={**data, "code": "taken-1"})
    assert clash.status_code == 422 and "already exists" in clash.text
