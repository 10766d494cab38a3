"""Undo, not "are you sure": destructive actions answer with a toast carrying Undo, which
restores exactly the prior state (seats included) or says why it cannot."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from lmsweb.extensions import db
from lmsweb.models import AuditEvent, Course, CourseAssignment, User
from tests.browser.conftest import open_menu_item, screenshot, sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def _course(app, course_id: int) -> tuple[int, int, int]:
    with app.app_context():
        c = db.session.get(Course, course_id)
        return c.seats_total, c.seats_reserved, c.seats_used


def _record(app, assignment_id: int) -> CourseAssignment:
    with app.app_context():
        a = db.session.get(CourseAssignment, assignment_id)
        db.session.expunge(a)
        return a


def _open_courses(page, user):
    open_menu_item(page, user, "Course assignments")
    dialog = page.get_by_role("dialog", name=f"Course assignments: {user.name}")
    expect(dialog).to_be_visible()
    return dialog


def test_unassign_and_archive_activity_are_undone_from_the_toast(
    page, live_server, admin, make, app
):
    user = make.user(first_name="Una", last_name="Undo")
    safe = make.course("SAFE-1", seats=3, title="Safety")
    done = make.course("DONE-1", seats=3, title="Done course")
    open_one = make.assignment(user, safe)
    completed = make.assignment(user, done, state="completed")
    assert _course(app, safe.id) == (3, 1, 0)
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users?q=una")
    dialog = _open_courses(page, user)

    # Unassign acts at once, with no question; the toast offers Undo.
    dialog.get_by_role("button", name="Unassign SAFE-1").click()
    toast = dialog.locator(".toast").filter(has_text="Unassigned SAFE-1")
    expect(toast).to_be_visible()
    expect(dialog.locator(f"#assignment-{open_one.id}")).to_have_count(1)  # now archived
    assert _course(app, safe.id) == (3, 0, 0)
    screenshot(page, "undo-toast")
    toast.get_by_role("button", name="Undo").click()
    expect(dialog.locator(".toast").filter(has_text="Undone: SAFE-1 is back")).to_be_visible()
    expect(dialog.get_by_role("button", name="Unassign SAFE-1")).to_be_visible()
    assert _course(app, safe.id) == (3, 1, 0)  # the seat is taken again
    assert _record(app, open_one.id).archived_at is None  # the same record, never a new one

    # Archive activity of a completed record: Undo un-archives it, the seat stays used.
    dialog.get_by_role("button", name="Archive activity DONE-1").click()
    toast = dialog.locator(".toast").filter(has_text="Archived Una Undo's DONE-1 activity")
    expect(toast).to_be_visible()
    assert _record(app, completed.id).archived_at is not None
    toast.get_by_role("button", name="Undo").click()
    expect(dialog.locator(".toast").filter(has_text="Undone: DONE-1 is back")).to_be_visible()
    assert _record(app, completed.id).archived_at is None
    assert _record(app, completed.id).state == "completed"
    assert _course(app, done.id) == (3, 0, 1)

    # Each undo is on the audit trail as the reversal of its event.
    with app.app_context():
        undos = db.session.scalars(db.select(AuditEvent).where(AuditEvent.action == "undo")).all()
        reversed_actions = sorted(e.details["reverses_action"] for e in undos)
        assert reversed_actions == ["assignment.archive_activity", "assignment.unassign"]
        for e in undos:
            assert (
                db.session.get(AuditEvent, e.details["reverses"]).action
                == e.details["reverses_action"]
            )


def test_undo_refuses_with_a_reason_when_something_changed_since(
    page, live_server, admin, make, app
):
    user = make.user(first_name="Ray", last_name="Reassigned")
    safe = make.course("SAFE-2", seats=5, title="Safety")
    make.assignment(user, safe)
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users?q=ray")
    dialog = _open_courses(page, user)
    dialog.get_by_role("button", name="Unassign SAFE-2").click()
    toast = dialog.locator(".toast").filter(has_text="Unassigned SAFE-2")
    expect(toast).to_be_visible()

    # Assigned again before the Undo: the undo would make two open records, so it says no.
    dialog.locator("#assign-form").get_by_label(re.compile("SAFE-2")).check()
    dialog.get_by_role("button", name="Assign", exact=True).click()
    expect(page.locator("#toasts")).to_contain_text("Assigned SAFE-2 to Ray Reassigned")
    assert _course(app, safe.id) == (5, 1, 0)
    undo = page.get_by_role("button", name="Undo")
    expect(undo).to_be_visible()
    undo.click()
    expect(page.locator(".toast--error")).to_contain_text("has been assigned SAFE-2 again since")
    assert _course(app, safe.id) == (5, 1, 0)
    with app.app_context():
        opened = db.session.scalars(
            db.select(CourseAssignment).where(
                CourseAssignment.user_id == user.id, CourseAssignment.archived_at.is_(None)
            )
        ).all()
        assert len(opened) == 1


def test_archive_user_and_remove_from_group_are_undone(page, live_server, admin, make, app):
    sales = make.group("Sales")
    user = make.user(first_name="Ari", last_name="Archive", groups=[sales])
    course = make.course("GDPR-1", seats=2)
    a = make.assignment(user, course)
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users?q=ari")

    open_menu_item(page, user, "Archive")
    page.get_by_role("dialog").get_by_role("button", name="Archive user").click()
    expect(page.locator(f"#user-{user.id}")).to_have_count(0)
    assert _course(app, course.id) == (2, 0, 0)
    page.locator("#toasts").get_by_role("button", name="Undo").click()
    expect(page.locator("#toasts")).to_contain_text("Undone: Ari Archive is active again")
    expect(page.locator(f"#user-{user.id}")).to_be_visible()  # back in this filtered list
    assert _course(app, course.id) == (2, 1, 0)
    assert _record(app, a.id).archived_at is None
    with app.app_context():
        assert db.session.get(User, user.id).status == "active"

    open_menu_item(page, user, "Groups")
    dialog = page.get_by_role("dialog", name="Groups of Ari Archive")
    dialog.get_by_label("Sales").uncheck()
    dialog.get_by_role("button", name="Save groups").click()
    expect(page.locator(f"#user-{user.id} .col-groups")).not_to_contain_text("Sales")
    page.locator("#toasts").get_by_role("button", name="Undo").click()
    expect(page.locator("#toasts")).to_contain_text("Undone: Ari Archive is back in Sales")
    expect(page.locator(f"#user-{user.id} .col-groups")).to_contain_text("Sales")
