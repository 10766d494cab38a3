"""The details page as a user profile: every row action, an editable training table with
Undo, "Resend invitation" for a user who never activated, one date format."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from playwright.sync_api import expect

from lmsweb.extensions import db
from lmsweb.models import Course, CourseAssignment, User
from tests.browser.conftest import open_menu_item, sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_profile_edits_training_with_undo_and_offers_every_action(
    page, live_server, admin, make, app
):
    user = make.user(first_name="Pia", last_name="Profile", invite_status="sent")
    course = make.course("SAFE-9", seats=2, title="Safety")
    a = make.assignment(user, course, due=date(2030, 11, 30))
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users?q=pia")
    page.get_by_role("link", name="Profile, Pia").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Pia Profile")

    actions = page.get_by_role("list", name="Actions for Pia Profile")
    expect(actions.get_by_role("button", name="Resend invitation")).to_be_visible()
    for name in ("Groups", "Course assignments", "Archive"):
        expect(actions.get_by_role("link", name=name)).to_be_visible()
    # Never activated: the invitation, not a password reset.
    expect(page.get_by_role("button", name="Resend invitation").first).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("password reset"))).to_have_count(0)

    training = page.locator("#courses-dialog-body")
    expect(training.locator(f"#assignment-{a.id}")).to_contain_text("Not started")
    expect(page.locator("main")).not_to_contain_text(re.compile(r"\d{4}-\d{2}-\d{2}"))
    new_due = date.today() + timedelta(days=40)
    training.locator(f"#due-{a.id}").fill(new_due.isoformat())
    training.get_by_role("button", name="Change due date of SAFE-9").click()
    expect(page.locator("#toasts")).to_contain_text(f"now due {new_due.strftime('%d %b %Y')}")

    training.get_by_role("button", name="Unassign SAFE-9").click()
    toast = page.locator(".toast").filter(has_text="Unassigned SAFE-9")
    expect(toast).to_be_visible()
    with app.app_context():
        assert db.session.get(Course, course.id).seats_reserved == 0
    toast.get_by_role("button", name="Undo").click()
    expect(training.get_by_role("button", name="Unassign SAFE-9")).to_be_visible()
    with app.app_context():
        assert db.session.get(Course, course.id).seats_reserved == 1
        assert db.session.get(CourseAssignment, a.id).archived_at is None


def test_profile_of_an_activated_user_offers_a_password_reset(page, live_server, admin, make, app):
    user = make.learner(first_name="Ada", last_name="Active", invite_status="sent")
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users/{user.id}")
    expect(page.get_by_role("button", name=re.compile("password reset"))).to_be_visible()
    pending = make.user(first_name="Pat", last_name="Waiting", status="pending")
    page.goto(f"{live_server}/admin/users/{pending.id}")
    page.get_by_role("list", name="Actions for Pat Waiting").get_by_role(
        "button", name="Approve", exact=True
    ).click()
    expect(page.locator("#toasts")).to_contain_text("Pat Waiting is approved")
    with app.app_context():
        assert db.session.get(User, pending.id).status == "active"


def test_opening_a_profile_shows_its_top_not_the_assign_courses_form(
    page, live_server, admin, make
):
    """The profile's training editor is the Course assignments dialog's body, whose first
    free course takes the focus in the dialog. On the profile it took the focus too, so the
    page opened scrolled down to "Assign courses", the name and details out of sight."""
    user = make.user(first_name="Tom", last_name="Top")
    for n in range(8):
        make.course(f"TOP-{n}", seats=3)
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users/{user.id}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Tom Top")
    page.wait_for_load_state("load")
    assert page.evaluate("window.scrollY") == 0
    expect(page.get_by_role("heading", level=1)).to_be_in_viewport()
    assert page.evaluate("document.activeElement.name") != "course"
    # The Emails heading stands apart from the invitation form above it (it touched it).
    gap = page.evaluate(
        """() => {
          const h = [...document.querySelectorAll('h3')].find(e => e.textContent === 'Emails');
          const above = h.previousElementSibling.getBoundingClientRect();
          return h.getBoundingClientRect().top - above.bottom;
        }"""
    )
    assert gap >= 16, gap
    # In the dialog, the first free course still takes the focus.
    page.goto(f"{live_server}/admin/users?q=tom")
    open_menu_item(page, user, "Course assignments")
    dialog = page.get_by_role("dialog", name="Course assignments: Tom Top")
    expect(dialog.locator("input[name=course]").first).to_be_focused()
