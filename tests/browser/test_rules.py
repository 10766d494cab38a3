"""A person creates an enrolment rule: sees its preview and license impact, applies it, and
finds the new assignments on the lists."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.browser.conftest import screenshot, sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_create_a_rule_see_its_preview_apply_it_and_see_the_assignments(
    page, live_server, admin, make
):
    nurses = make.group("Nurses")
    course = make.course("HYG-1", seats=2, title="Hand hygiene")
    for name in ("Ana", "Ben", "Cai"):
        make.user(first_name=name, last_name="Nurse", groups=[nurses])
    make.user(first_name="Otto", last_name="Outsider")
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page, live_server, admin.email, PASSWORD)

    page.goto(f"{live_server}/admin/rules")
    expect(page.get_by_role("heading", name="No rules yet")).to_be_visible()
    page.get_by_role("link", name="New rule").click()
    page.get_by_label("Members of the group").select_option(label="Nurses")
    page.get_by_label("Get the course").select_option(label="HYG-1 — Hand hygiene")
    page.get_by_label("Due in (days)").fill("21")
    page.get_by_role("button", name="Preview").click()

    preview = page.locator("#rule-preview")
    expect(preview).to_contain_text("Members of Nurses: 3 people, of whom 0 already have HYG-1.")
    expect(preview).to_contain_text("It assigns 3 and takes 2 licenses of the 2 available.")
    expect(preview).to_contain_text("1 will wait for a license until you add licenses to HYG-1.")
    assert "/admin/rules/new" in page.url  # htmx swapped the preview in place
    screenshot(page, "rule-preview")
    violations = Axe().run(page).response["violations"]
    assert [v["id"] for v in violations] == [], violations

    page.get_by_role("button", name="Create the rule and assign").click()
    expect(page).to_have_url(f"{live_server}/admin/rules")
    expect(page.get_by_role("status").or_(page.locator(".toast, .flash")).first).to_contain_text(
        "Assigned 2, 1 waiting for a license."
    )
    row = page.locator("#rules-table tbody tr").first
    expect(row).to_contain_text("Members of Nurses")
    expect(row).to_contain_text("HYG-1")
    expect(row.locator("td").nth(3)).to_have_text("2")
    expect(row.locator("td").nth(4)).to_have_text("1")

    # The assignments on the training records list, and who waits on the Users list.
    page.goto(f"{live_server}/admin/dashboard?course={course.id}")
    records = page.locator("#records tbody tr")
    expect(records).to_have_count(2)
    expect(page.locator("#records")).to_contain_text("Nurse, Ana")
    expect(page.locator("#records")).to_contain_text("Nurse, Ben")
    page.goto(f"{live_server}/admin/users?training=waiting")
    expect(page.locator("#users-table tbody tr")).to_have_count(1)
    expect(page.locator("#users-table tbody")).to_contain_text("Cai")
    assert errors == []
