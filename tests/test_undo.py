"""Undo tokens: only valid, own, unused ones reverse anything; refusals change nothing."""

from __future__ import annotations

import json

from lmsweb.models import AuditEvent, Course, CourseAssignment
from tests.conftest import HX, count, get, login


def _unassign(client, user, assignment) -> dict:
    response = client.post(
        f"/admin/users/{user.id}/courses",
        data={"action": "unassign", "assignment": assignment.id},
        headers={**HX, "HX-Target": "courses-dialog-body"},
    )
    assert response.status_code == 200, response.text
    return json.loads(response.headers["HX-Trigger"])["showToast"]["undo"]


def test_an_undo_works_once_and_only_for_its_administrator(app, admin_client, make):
    user = make.user()
    course = make.course(seats=1)
    assignment = make.assignment(user, course)
    offer = _unassign(admin_client, user, assignment)
    assert get(app, Course, course.id).seats_reserved == 0

    other = make.admin(email="other.admin@example.com")
    other_client = app.test_client()
    login(other_client, other.email)
    refused = other_client.post(offer["url"], data={"token": offer["token"]}, headers=HX)
    assert refused.status_code == 409
    assert "Only the administrator who made the change" in refused.text

    forged = admin_client.post(offer["url"], data={"token": offer["token"] + "x"}, headers=HX)
    assert forged.status_code == 409 and "not valid" in forged.text
    assert get(app, CourseAssignment, assignment.id).archived_at is not None

    done = admin_client.post(offer["url"], data={"token": offer["token"]}, headers=HX)
    assert done.status_code == 204
    assert get(app, CourseAssignment, assignment.id).archived_at is None
    assert get(app, Course, course.id).seats_reserved == 1

    again = admin_client.post(offer["url"], data={"token": offer["token"]}, headers=HX)
    assert again.status_code == 409 and "already been undone" in again.text
    assert get(app, Course, course.id).seats_reserved == 1
    assert count(app, AuditEvent, AuditEvent.action == "undo") == 1


def test_undo_refuses_when_the_seat_has_gone_since(app, admin_client, make):
    user, other = make.user(), make.user()
    course = make.course(seats=1)
    assignment = make.assignment(user, course)
    offer = _unassign(admin_client, user, assignment)
    make.assignment(other, course)  # the freed seat is taken by someone else
    refused = admin_client.post(offer["url"], data={"token": offer["token"]}, headers=HX)
    assert refused.status_code == 409 and "No licenses available" in refused.text
    assert get(app, CourseAssignment, assignment.id).archived_at is not None
    assert get(app, Course, course.id).seats_reserved == 1
