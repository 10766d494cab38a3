"""Archive a user from the Users page, watch the pools, restore them, find the record."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import open_menu_item, screenshot, sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def pool_cell(page, course_id: int, name: str):
    return page.locator(f"#pool-{course_id} [data-field={name}]")


def test_archive_and_restore_from_the_users_page(page, live_server, admin, make):
    started = make.course(code="HS-200", title="Health and Safety", seats=5)
    unstarted = make.course(code="GDPR-101", title="Data Protection", seats=5)
    sam = make.learner(first_name="Sam", last_name="Starter", email="sam@example.com")
    make.assignment(sam, started, state="in_progress")
    make.assignment(sam, unstarted)
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page, live_server, admin.email, PASSWORD)

    # The pools before: one seat used in HS-200, one reserved in GDPR-101.
    page.goto(f"{live_server}/admin/dashboard")
    expect(pool_cell(page, unstarted.id, "reserved")).to_have_text("1")
    expect(pool_cell(page, unstarted.id, "available")).to_have_text("4")
    expect(pool_cell(page, started.id, "used")).to_have_text("1")

    # Archive from the Users page: the dialog says what will happen first.
    page.goto(f"{live_server}/admin/users")
    open_menu_item(page, sam, "Archive")
    dialog = page.get_by_role("dialog", name="Archive Sam Starter?")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#archive-unstarted")).to_contain_text("GDPR-101")
    expect(dialog.locator("#archive-seats")).to_contain_text("the GDPR-101 pool (1)")
    expect(dialog.locator("#archive-started")).to_contain_text("HS-200")
    screenshot(page, "archive-dialog")
    dialog.get_by_role("button", name="Archive user").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(f"#user-{sam.id}")).to_have_count(0)  # the list hides archived users
    expect(page.locator("#toasts")).to_contain_text("1 seat returned (GDPR-101: 1)")

    # The unstarted seat came back; the started one stays used.
    page.goto(f"{live_server}/admin/dashboard")
    expect(pool_cell(page, unstarted.id, "reserved")).to_have_text("0")
    expect(pool_cell(page, unstarted.id, "available")).to_have_text("5")
    expect(pool_cell(page, started.id, "used")).to_have_text("1")
    expect(pool_cell(page, started.id, "available")).to_have_text("4")

    # Found under the archived filter, and restored.
    page.goto(f"{live_server}/admin/users?status=archived")
    row = page.locator(f"#user-{sam.id}")
    expect(row).to_contain_text("Archived")
    row.get_by_role("button", name="Restore Sam Starter").click()
    expect(page.locator(f"#user-{sam.id}")).to_have_count(0)  # no longer archived
    expect(page.locator("#toasts")).to_contain_text("Restored Sam Starter")
    page.goto(f"{live_server}/admin/users")
    expect(page.locator(f"#user-{sam.id}")).to_be_visible()
    expect(page.locator(f"#user-{sam.id}")).not_to_contain_text("Archived")

    # The archived records are on the dashboard, marked, with the reason.
    page.goto(f"{live_server}/admin/dashboard")
    page.get_by_label("Archived").select_option("yes")
    expect(page).to_have_url(re.compile(r"archived=yes"))
    records = page.locator("#records-table tbody tr")
    expect(records).to_have_count(2)
    expect(records.first).to_contain_text("Starter, Sam")
    expect(records.first).to_contain_text("user archived")
    expect(page.locator("#records-count")).to_have_text("2 training records")
    page.get_by_role("heading", level=1).scroll_into_view_if_needed()
    screenshot(page, "dashboard")
    assert errors == [], errors
