"""Undo of a bulk action: the toast's token names the bulk audit event, whose details hold
what changed (server-side, also for "select all matching"); the reversal restores exactly
that, seats included, or refuses with the reason and changes nothing."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date

from lmsweb import licensing
from lmsweb.extensions import db
from lmsweb.models import AuditEvent, Course, CourseAssignment, User
from tests.a11y_support import format_vnu, run_vnu
from tests.conftest import HX, count, get
from tests.test_bulk import members, post

UNDO = "/admin/users/undo"


def _offer(response) -> dict:
    assert response.status_code == 200, response.text
    toast = json.loads(response.headers["HX-Trigger"])["showToast"]
    assert "undo" in toast, toast
    return toast["undo"]


def _undo(client, offer):
    return client.post(offer["url"], data={"token": offer["token"]}, headers=HX)


def _seats(app, course):
    c = get(app, Course, course.id)
    return c.seats_reserved, c.seats_used


def test_archive_users_of_all_matching_is_undone_with_their_records_and_seats(
    app, admin_client, make
):
    loc = make.location("Porto")
    course = make.course(seats=5)
    pending = make.user(status="pending", location_id=loc.id)
    active = make.user(location_id=loc.id)
    unstarted = make.assignment(active, course)
    started = make.assignment(pending, course, state="in_progress")
    assert _seats(app, course) == (1, 1)

    offer = _offer(
        post(
            admin_client,
            "archive_user",
            matching={"filter_location": str(loc.id)},
            confirm="1",
        )
    )
    assert "user_ids" not in offer["token"]
    assert get(app, User, pending.id).status == "archived"
    assert _seats(app, course) == (0, 1)

    done = _undo(admin_client, offer)
    assert done.status_code == 204, done.text
    assert "2 users are back" in json.loads(done.headers["HX-Trigger"])["showToast"]["message"]
    assert get(app, User, pending.id).status == "pending"
    assert get(app, User, active.id).status == "active"
    assert get(app, User, active.id).archived_at is None
    assert get(app, CourseAssignment, unstarted.id).archived_at is None
    assert get(app, CourseAssignment, started.id).archived_at is None
    assert _seats(app, course) == (1, 1)
    event = get(app, AuditEvent, count(app, AuditEvent))
    assert event.action == "undo" and event.details["reverses_action"] == "bulk.archive_user"

    again = _undo(admin_client, offer)
    assert again.status_code == 409 and "already been undone" in again.text


def test_archive_undo_refuses_when_a_user_was_restored_meanwhile(app, admin_client, make):
    a, b = make.user(), make.user()
    offer = _offer(post(admin_client, "archive_user", ids=[a.id, b.id], confirm="1"))
    post(admin_client, "restore", ids=[b.id])
    refused = _undo(admin_client, offer)
    assert refused.status_code == 409
    assert "has changed since; nothing was undone" in refused.text
    assert get(app, User, a.id).status == "archived"
    assert count(app, AuditEvent, AuditEvent.action == "undo") == 0


def test_archive_activity_undo_reopens_records(app, admin_client, make):
    course = make.course(seats=2)
    a, b = make.user(), make.user()
    ra, rb = make.assignment(a, course), make.assignment(b, course, state="completed")
    offer = _offer(
        post(admin_client, "archive_activity", ids=[a.id, b.id], course=course.id, confirm="1")
    )
    assert _seats(app, course) == (0, 1)
    assert _undo(admin_client, offer).status_code == 204
    assert get(app, CourseAssignment, ra.id).archived_at is None
    assert get(app, CourseAssignment, rb.id).archived_at is None
    assert _seats(app, course) == (1, 1)


def test_group_membership_undo_both_ways(app, admin_client, make):
    group = make.group("Night shift")
    inside = make.user(groups=[group])
    outside = make.user()
    offer = _offer(post(admin_client, "add_group", ids=[outside.id], group=group.id))
    assert members(app, group) == {inside.id, outside.id}
    assert _undo(admin_client, offer).status_code == 204
    assert members(app, group) == {inside.id}

    offer = _offer(post(admin_client, "remove_group", ids=[inside.id], group=group.id))
    assert members(app, group) == set()
    post(admin_client, "add_group", ids=[inside.id], group=group.id)  # changed since
    refused = _undo(admin_client, offer)
    assert refused.status_code == 409 and "Night shift has changed since" in refused.text
    assert members(app, group) == {inside.id}


def test_assign_course_undo_unassigns_without_deleting(app, admin_client, make):
    course = make.course(seats=3)
    a, b = make.user(), make.user()
    offer = _offer(
        post(admin_client, "assign_course", ids=[a.id, b.id], course=course.id, confirm="1")
    )
    assert _seats(app, course) == (2, 0)
    records = count(app, CourseAssignment)
    done = _undo(admin_client, offer)
    assert done.status_code == 204, done.text
    assert _seats(app, course) == (0, 0)
    assert count(app, CourseAssignment) == records  # archived as "unassigned", not deleted
    assert count(app, CourseAssignment, CourseAssignment.archive_reason == "unassigned") == 2


def test_assign_course_undo_refuses_once_a_record_is_started(app, admin_client, make):
    course = make.course(seats=3)
    a, b = make.user(first_name="Sam", last_name="Starter"), make.user()
    offer = _offer(
        post(admin_client, "assign_course", ids=[a.id, b.id], course=course.id, confirm="1")
    )
    with app.app_context():
        record = db.session.scalar(
            db.select(CourseAssignment).where(CourseAssignment.user_id == a.id)
        )
        licensing.start(record)
        db.session.commit()
    refused = _undo(admin_client, offer)
    assert refused.status_code == 409 and "Sam Starter has started" in refused.text
    assert _seats(app, course) == (1, 1)


def test_change_due_date_undo_puts_each_date_back(app, admin_client, make):
    course = make.course(seats=3)
    a, b = make.user(), make.user()
    ra = make.assignment(a, course, due=date(2031, 1, 10))
    rb = make.assignment(b, course, due=date(2031, 2, 20))
    offer = _offer(
        post(
            admin_client,
            "change_due_date",
            ids=[a.id, b.id],
            course=course.id,
            due_date="2031-06-30",
        )
    )
    assert get(app, CourseAssignment, ra.id).due_date == date(2031, 6, 30)
    assert _undo(admin_client, offer).status_code == 204
    assert get(app, CourseAssignment, ra.id).due_date == date(2031, 1, 10)
    assert get(app, CourseAssignment, rb.id).due_date == date(2031, 2, 20)


def test_actions_without_a_reversal_offer_no_undo(app, admin_client, make):
    user = make.user(status="pending")
    response = post(admin_client, "approve", ids=[user.id])
    assert "undo" not in json.loads(response.headers["HX-Trigger"])["showToast"]


def test_without_javascript_the_result_page_carries_an_undo_form(app, admin_client, make, tmp_path):
    group = make.group()
    user = make.user()
    page = post(admin_client, "add_group", ids=[user.id], group=group.id, htmx=False)
    assert page.status_code == 200
    assert 'name="token"' in page.text and ">Undo</button>" in page.text
    if shutil.which("java"):
        path = tmp_path / "bulk-result.html"
        path.write_bytes(page.data)
        errors = run_vnu([path])
        assert not errors, format_vnu(errors, {})
    undone = admin_client.post(
        "/admin/users/undo", data={"token": _token(page.text), "next": "/admin/users"}
    )
    assert undone.status_code == 303 and members(app, group) == set()


def _token(html: str) -> str:
    return re.search(r'name="token" value="([^"]+)"', html).group(1)
