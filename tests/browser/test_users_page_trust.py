"""Issue #15: every control of the Users page does what it says, as a person sees it."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from playwright.sync_api import expect

from lmsweb.extensions import db
from lmsweb.models import CourseAssignment
from tests.browser.conftest import open_menu_item, sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_ticking_rows_counts_them_and_the_header_shows_the_partial_state(
    page, live_server, admin, make
):
    users = [make.user(first_name=f"Tick{n}", last_name="Box") for n in range(4)]
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users")
    count = page.locator("[data-bulk-count]")
    header = page.get_by_label("Select all users on this page")
    expect(count).to_have_text("0")

    for user in users[:3]:
        page.get_by_label(f"Select {user.name}").click()
    expect(count).to_have_text("3")
    assert header.evaluate("box => box.indeterminate")
    page.get_by_label(f"Select {users[0].name}").click()
    expect(count).to_have_text("2")

    header.click()  # the whole page (the admin's row too)
    expect(count).to_have_text("5")
    assert not header.evaluate("box => box.indeterminate")
    header.click()
    expect(count).to_have_text("0")


def _in_front(page, locator) -> bool:
    """Is the element what a person sees at its centre (not covered by a backdrop)?"""
    return locator.evaluate(
        """el => { const b = el.getBoundingClientRect();
                   const top = document.elementFromPoint(b.x + b.width / 2, b.y + b.height / 2);
                   return !!top && (el === top || el.contains(top)); }"""
    )


def test_course_dialog_focus_is_safe_due_dates_start_valid_and_toasts_are_in_front(
    page, live_server, admin, make, app
):
    user = make.user(first_name="Jane", last_name="Doe")
    done = make.course("DONE-1", title="Completed course")
    late = make.course("LATE-1", title="Overdue course")
    make.course("FREE-1", title="Free course")
    completed = make.assignment(user, done, state="completed")
    overdue = make.assignment(user, late, due=date.today() - timedelta(days=5))
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users?q=jane")
    open_menu_item(page, user, "Course assignments")
    dialog = page.get_by_role("dialog", name="Course assignments: Jane Doe")
    expect(dialog).to_be_visible()

    # Focus lands on a harmless control; Enter there archives nothing.
    focused = page.evaluate("document.activeElement.closest('#assign-form') !== null")
    assert focused, page.evaluate("document.activeElement.outerHTML")
    page.keyboard.press("Enter")
    expect(dialog.locator(f"#assignment-{completed.id}")).to_contain_text("Completed")
    with app.app_context():
        assert db.session.get(CourseAssignment, completed.id).archived_at is None

    # The overdue row's date field starts valid; moving the date on works and says so in
    # front of the dialog's backdrop.
    due = dialog.locator(f"#due-{overdue.id}")
    assert due.evaluate("el => el.validity.valid")
    new_due = date.today() + timedelta(days=14)
    due.fill(new_due.isoformat())
    dialog.get_by_role("button", name="Change due date of LATE-1").click()
    toast = dialog.locator(".toast").filter(has_text="LATE-1 for Jane Doe is now due")
    expect(toast).to_be_visible()
    assert _in_front(page, toast)


def test_demo_data_never_shows_a_pending_user_as_notified(page, live_server, admin, runner):
    result = runner.invoke(args=["lms", "seed-demo", "--users", "120"])
    assert result.exit_code == 0, result.output
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users?status=pending&per_page=100")
    rows = page.locator("tr[id^=user-]")
    expect(rows.first).to_be_visible()
    assert rows.count() > 5
    statuses = page.locator("#users-table tbody").inner_text()
    assert "Notified" not in statuses and "Invitation" not in statuses


def test_advanced_filters_close_like_a_menu_and_take_several_locations(
    page, live_server, admin, make
):
    lisbon, oslo, rome = make.location("Lisbon"), make.location("Oslo"), make.location("Rome")
    for place in (lisbon, oslo, rome):
        make.user(first_name=f"In{place.name}", last_name="Person", location_id=place.id)
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users")
    count = page.locator("#users-count")
    summary = page.get_by_text("Advanced filters")
    panel = page.locator(".filters-menu__panel")

    summary.click()
    expect(panel).to_be_visible()
    expect(panel.get_by_role("button", name="Apply filters")).to_be_hidden()  # instant apply
    page.get_by_label("Lisbon", exact=True).check()
    expect(count).to_contain_text("1 user matches")
    page.get_by_label("Oslo", exact=True).check()
    expect(count).to_contain_text("2 users match")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(page.locator("details.filters-menu > summary")).to_be_focused()

    summary.click()
    expect(panel).to_be_visible()
    page.locator("h1").click()  # a click outside closes it
    expect(panel).to_be_hidden()
    chips = page.get_by_role("list", name="Active filters")
    expect(chips).to_contain_text("Lisbon")
    expect(chips).to_contain_text("Oslo")


def test_export_says_what_it_exports_and_the_file_holds_it(
    page, live_server, admin, make, tmp_path
):
    from openpyxl import load_workbook

    site = make.location("Porto")
    for n in range(14):
        make.user(first_name=f"Act{n:02d}", last_name="Porto", location_id=site.id)
    for n in range(3):
        make.user(first_name=f"Pen{n}", last_name="Porto", location_id=site.id, status="pending")
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users?location={site.id}")
    expect(page.locator("#users-count")).to_contain_text("17 users match")
    exports = page.get_by_role("list", name="Export Users")
    expect(exports.get_by_role("link", name="Export 14 active users")).to_be_visible()
    with page.expect_download() as info:
        exports.get_by_role("link", name="Export this view (17)").click()
    target = tmp_path / "view.xlsx"
    info.value.save_as(target)
    rows = list(load_workbook(target).active.iter_rows(values_only=True))[1:]
    assert len(rows) == 17
    assert sorted(r[0] for r in rows if r[0].startswith("Pen")) == ["Pen0", "Pen1", "Pen2"]


def test_add_user_marks_its_required_fields(page, live_server, admin):
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users")
    page.get_by_role("link", name="Add user").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()

    def marked(label: str) -> bool:
        return dialog.locator("label", has_text=label).first.evaluate(
            "l => getComputedStyle(l, '::after').content.includes('required')"
        )

    assert marked("First name") and marked("Last name") and marked("Email")
    assert not marked("User ID")
    expect(dialog.get_by_label("Email")).to_have_attribute("required", "")


def test_the_overdue_quick_filter(page, live_server, admin, make):
    course = make.course("LATE-9", seats=5)
    late = make.user(first_name="Olly", last_name="Overdue")
    make.assignment(late, course, due=date.today() - timedelta(days=2))
    on_time = make.user(first_name="Otto", last_name="Ontime")
    make.assignment(on_time, course)
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users")
    page.get_by_role("link", name="Overdue only").click()
    expect(page).to_have_url(re.compile(r"training=overdue"))
    expect(page.locator("#users-count")).to_contain_text("1 user matches")
    expect(page.locator(f"#user-{late.id}")).to_be_visible()
    expect(page.locator(f"#user-{on_time.id}")).to_have_count(0)
    chips = page.get_by_role("list", name="Active filters")
    expect(chips).to_contain_text("Overdue")
    page.get_by_label("Search users").press_sequentially("oll")  # the filter stays on
    expect(page).to_have_url(re.compile(r"q=oll&training=overdue"))
    expect(page.locator("#users-count")).to_contain_text("1 user matches")
    expect(chips).to_contain_text("oll")
    chips.get_by_role("link", name=re.compile("Overdue")).click()
    expect(page.locator("#users-count")).to_contain_text("1 user matches")  # "oll" alone
    expect(page).not_to_have_url(re.compile(r"training="))


def test_leaving_the_search_box_does_not_search_again(page, live_server, admin, make):
    """Typing searches; the "change" the box fires when it is left must not send the filter
    form as well: that second request, answering after a chip's, brought back the filter
    the person had just removed."""
    make.user(first_name="Olly", last_name="Overdue")
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users")
    box = page.get_by_label("Search users")
    box.press_sequentially("oll")
    expect(page).to_have_url(re.compile(r"q=oll"))
    expect(page.locator("#users-count")).to_contain_text("1 user matches")
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url))
    box.press("Tab")
    page.wait_for_timeout(1000)  # a request, if any, is sent at once on "change"
    assert [url for url in sent if "/admin/users" in url] == []
