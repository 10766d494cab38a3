"""An organisation-wide administrator lets Lisbon use 2 of a course's licenses on the course
page; assigning a third Lisbon person in the Course assignments dialog is refused with the
reason shown, while a Porto person is assigned (#17)."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.browser.conftest import open_menu_item, sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def _assert_accessible(page) -> None:
    results = Axe().run(page)
    assert results.violations_count == 0, results.generate_report()


def _assign_in_dialog(page, live_server, user, course):
    page.goto(f"{live_server}/admin/users")
    open_menu_item(page, user, "Course assignments")
    dialog = page.get_by_role("dialog", name=f"Course assignments: {user.name}")
    expect(dialog).to_be_visible()
    dialog.locator(f"input[name=course][value='{course.id}']").check()
    dialog.locator("button[form=assign-form]").click()
    return dialog


def test_a_location_allocation_refuses_a_third_lisbon_person(page, live_server, admin, make):
    lisbon, porto = make.location("Lisbon"), make.location("Porto")
    course = make.course("FIRE-101", seats=10, title="Fire safety")
    people = [
        make.user(first_name=f"Ana{n}", last_name="Lisboa", location_id=lisbon.id) for n in range(3)
    ]
    make.assignment(people[0], course)
    make.assignment(people[1], course)
    rui = make.user(first_name="Rui", last_name="Porto", location_id=porto.id)
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page, live_server, admin.email, PASSWORD)

    page.goto(f"{live_server}/admin/courses/{course.id}")
    section = page.locator("#course-allocations")
    expect(section.get_by_role("heading", name="Location allocations")).to_be_visible()
    section.get_by_label("Location").select_option(label="Lisbon")
    section.get_by_label("Licenses it may use").fill("2")
    section.get_by_role("button", name="Add allocation").click()
    expect(page.locator("#toasts")).to_contain_text("Lisbon may use 2 of the 10 FIRE-101 licenses.")
    row = page.locator(f"#allocation-{lisbon.id}")
    expect(row.locator("[data-allocation=seats]")).to_have_text("2")
    expect(row.locator("[data-allocation=held]")).to_have_text("2")
    _assert_accessible(page)

    dialog = _assign_in_dialog(page, live_server, people[2], course)
    # Refused: told inside the dialog (its live region), which stays open; nothing assigned.
    expect(dialog.locator(".toast--error")).to_contain_text(
        "No licenses left for Lisbon on FIRE-101: Lisbon may use 2, 2 in use."
    )
    expect(dialog).to_be_visible()

    _assign_in_dialog(page, live_server, rui, course)
    expect(page.locator("#toasts")).to_contain_text("Assigned FIRE-101 to Rui Porto")

    page.goto(f"{live_server}/admin/courses/{course.id}")
    expect(page.locator(f"#allocation-{lisbon.id} [data-allocation=held]")).to_have_text("2")
    # The refusal's 409 is logged by the browser and htmx; nothing else may be.
    assert [e for e in errors if "409" not in e] == [], errors
