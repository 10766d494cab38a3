"""An administrator assigns a course from the Users page with the keyboard only."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.browser.conftest import screenshot, sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def _assert_accessible(page) -> None:
    results = Axe().run(page)
    assert results.violations_count == 0, results.generate_report()


def _tab_to(page, selector: str, limit: int = 60) -> None:
    """Press Tab until the element matching `selector` has focus."""
    for _ in range(limit):
        if page.evaluate(f"document.activeElement.matches({selector!r})"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} never got the focus")


def test_assign_a_course_from_the_users_page_with_the_keyboard(page, live_server, admin, make):
    user = make.user(first_name="Jane", last_name="Doe", email="jane.doe@example.com")
    course = make.course("SAFE-101", seats=5, title="Workplace safety")
    full = make.course("FULL-1", seats=0, title="Fully booked")
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/courses")
    expect(page.locator(f"#course-{course.id} [data-pool=available]")).to_have_text("5")

    page.goto(f"{live_server}/admin/users")
    _tab_to(page, f"#more-{user.id}")
    page.keyboard.press("Enter")  # the row's "More" menu
    # The menu fetches its items when it opens: a person waits for them to appear.
    expect(page.locator(f"#courses-btn-{user.id}")).to_be_visible()
    _tab_to(page, f"#courses-btn-{user.id}")
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Course assignments: Jane Doe")
    expect(dialog).to_be_visible()
    expect(dialog.locator(f"input[value='{full.id}']")).to_be_disabled()
    expect(dialog).to_contain_text("no licenses available")
    _assert_accessible(page)

    # Focus starts inside the dialog; the keyboard picks the course and types the date.
    checkbox = dialog.locator(f"input[name=course][value='{course.id}']")
    expect(checkbox).to_be_focused()
    page.keyboard.press("Space")
    expect(checkbox).to_be_checked()
    due = date.today() + timedelta(days=21)
    _tab_to(page, "#due_date")
    page.keyboard.type(due.strftime("%m%d%Y"))
    expect(dialog.locator("#due_date")).to_have_value(due.isoformat())
    screenshot(page, "course-assignments")
    _tab_to(page, "button[form=assign-form]")
    page.keyboard.press("Enter")

    expect(dialog).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text("Assigned SAFE-101 to Jane Doe")
    expect(page.locator("#toasts")).to_contain_text("1 license taken")
    expect(page.locator(f"#more-{user.id}")).to_be_focused()

    page.goto(f"{live_server}/admin/courses")
    row = page.locator(f"#course-{course.id}")
    expect(row.locator("[data-pool=available]")).to_have_text("4")
    expect(row.locator("[data-pool=reserved]")).to_have_text("1")
    page.get_by_text("Add a course").click()  # the add form too
    expect(page.get_by_label("Code")).to_be_visible()
    _assert_accessible(page)
    assert errors == [], errors


def test_groups_dialog_saves_and_swaps_the_row(page, live_server, admin, make):
    nurses, doctors = make.group("Nurses"), make.group("Doctors")
    user = make.user(first_name="Jane", last_name="Doe", groups=[nurses])
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/groups")
    _assert_accessible(page)
    page.goto(f"{live_server}/admin/users")
    _tab_to(page, f"#more-{user.id}")
    page.keyboard.press("Enter")
    # The menu fetches its items when it opens: a person waits for them to appear.
    expect(page.locator(f"#groups-btn-{user.id}")).to_be_visible()
    _tab_to(page, f"#groups-btn-{user.id}")
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Groups of Jane Doe")
    expect(dialog).to_be_visible()
    _assert_accessible(page)
    dialog.get_by_label("Doctors").check()
    dialog.get_by_label("Nurses").uncheck()
    dialog.get_by_role("button", name="Save groups").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(f"#user-{user.id} .col-groups")).to_have_text("Doctors")
    expect(page.locator("#toasts")).to_contain_text("added to Doctors; removed from Nurses")
    assert doctors.id
