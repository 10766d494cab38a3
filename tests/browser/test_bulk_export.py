"""A person filters the Users list, selects everyone matching, approves and notifies them,
sees their statuses change, and downloads the export."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from openpyxl import load_workbook
from playwright.sync_api import expect

from lmsweb.models import OutboundEmail, User
from tests.browser.conftest import screenshot, sign_in
from tests.conftest import PASSWORD, count

pytestmark = pytest.mark.browser


def test_select_all_matching_approve_notify_and_export(
    page, live_server, app, admin, make, tmp_path
):
    north, south = make.location("North"), make.location("South")
    for n in range(55):
        make.user(
            first_name=f"Nora{n:02d}", last_name="North", status="pending", location_id=north.id
        )
    outsider = make.user(
        first_name="Sam", last_name="South", status="pending", location_id=south.id
    )
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page, live_server, admin.email, PASSWORD)

    # The filtered view (state lives in the URL).
    page.goto(f"{live_server}/admin/users?location={north.id}")
    expect(page.locator("#users-count")).to_have_text("55 users match these filters")
    banner_link = page.get_by_label("Select all 55 users matching these filters")
    expect(banner_link).to_be_hidden()

    # Header checkbox selects the page; the banner offers everyone matching.
    page.get_by_label("Select all users on this page").check()
    expect(page.locator("[data-bulk-count]")).to_have_text("50")
    expect(page.get_by_text("All 50 on this page are selected.")).to_be_visible()
    banner_link.check()
    expect(page.get_by_text("All 55 users matching these filters are selected.")).to_be_visible()
    expect(page.locator("[data-bulk-count]")).to_have_text("55")
    screenshot(page, "bulk-select-all")
    violations = Axe().run(page).response["violations"]
    assert [v["id"] for v in violations] == [], violations

    # Approve & notify them, from the keyboard-usable action bar.
    page.get_by_label("Action", exact=True).select_option("approve_notify")
    expect(page.get_by_label("Course")).to_be_hidden()
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#bulk-result")).to_contain_text("Approved 55 users")
    expect(page.locator("#bulk-result")).to_contain_text("queued an invitation to 55 users")
    first_row = page.locator("#users-table tbody tr").first
    expect(first_row.locator(".col-status")).not_to_contain_text("Pending")
    # As after the row action: the invitation is queued (not yet sent).
    expect(first_row).to_contain_text("Invitation queued")
    expect(page.locator("[data-bulk-count]")).to_have_text("0")
    screenshot(page, "bulk-result")
    assert count(app, User, User.location_id == north.id, User.status == "active") == 55
    assert count(app, OutboundEmail) == 55
    assert count(app, User, User.id == outsider.id, User.status == "pending") == 1

    # Export Users: the active users of this filtered view.
    with page.expect_download() as info:
        page.get_by_role("link", name="Export 55 active users").click()
    download = info.value
    assert download.suggested_filename.startswith("users-")
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    rows = list(load_workbook(target).active.iter_rows(values_only=True))
    assert rows[0][:3] == ("First name", "Last name", "Email")
    assert sorted(r[0] for r in rows[1:]) == [f"Nora{n:02d}" for n in range(55)]
    assert errors == [], errors


def test_assign_course_confirms_the_license_impact_in_a_dialog(page, live_server, app, admin, make):
    from lmsweb.models import Course, CourseAssignment

    location = make.location("East")
    for n in range(5):
        make.user(first_name=f"Eve{n}", last_name="East", location_id=location.id)
    course = make.course("FIRE", seats=3, title="Fire safety")
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users?location={location.id}")
    page.get_by_label("Select all users on this page").check()
    expect(page.locator("[data-bulk-count]")).to_have_text("5")
    page.get_by_label("Action", exact=True).select_option("assign_course")
    page.get_by_label("Course", exact=True).select_option(str(course.id))
    page.get_by_label("Due date").fill("2031-01-31")
    page.get_by_role("button", name="Apply").click()

    dialog = page.get_by_role("dialog", name="Assign course")
    expect(dialog).to_contain_text("Assign FIRE to 5 users: needs 5 seats, 3 available.")
    screenshot(page, "bulk-license-impact")
    assert count(app, CourseAssignment) == 0  # nothing until the administrator chooses
    dialog.get_by_role("button", name="Assign only 3 (as many as fit)").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#bulk-result")).to_contain_text("Assigned FIRE to 3 users")
    expect(page.locator("#bulk-result")).to_contain_text("2 no FIRE license left")
    assert count(app, CourseAssignment, CourseAssignment.course_id == course.id) == 3
    assert count(app, Course, Course.id == course.id, Course.seats_reserved == 3) == 1
