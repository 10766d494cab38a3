"""A person adds a user through the dialog, edits them, and imports a small roster."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot, sign_in
from tests.conftest import PASSWORD, count
from tests.import_support import xlsx_bytes

pytestmark = pytest.mark.browser


def test_add_a_user_then_edit_their_name(page, live_server, admin, app):
    from lmsweb.models import User

    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users?status=pending")
    page.get_by_role("link", name="Add user").click()
    dialog = page.get_by_role("dialog", name="Add a user")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("First name")).to_be_focused()
    dialog.get_by_label("First name").fill("Grace")
    dialog.get_by_label("Last name").fill("Hopper")
    dialog.get_by_label("Email").fill("not-an-email")
    dialog.get_by_role("button", name="Add user").click()
    dialog = page.get_by_role("dialog", name="Add a user")
    expect(dialog.locator(".field__error")).to_contain_text("email")
    # The refused field takes the focus (it was First name, the form's first field).
    expect(dialog.get_by_label("Email")).to_be_focused()
    screenshot(page, "add-user")  # the refusal, beside the value it refuses
    dialog.get_by_label("Email").fill("Grace.Hopper@Example.com")
    # Let every static request finish before the page navigates away (no dropped responses).
    page.wait_for_load_state("networkidle")
    dialog.get_by_role("button", name="Add user").click()
    # The list opens at the new user (its filters kept), the row highlighted and focused.
    grace = re.escape("q=grace.hopper@example.com&status=pending")
    expect(page).to_have_url(re.compile(f"/admin/users\\?{grace}#user-\\d+$"))
    expect(page.locator("#toasts")).to_contain_text(
        "Added Grace Hopper, pending approval, no invitation sent yet."
    )
    expect(page.locator("#users-table")).to_contain_text("Hopper, Grace")
    expect(page.locator("#users-table tr:focus")).to_contain_text("Hopper, Grace")

    page.wait_for_load_state("networkidle")
    page.get_by_role("link", name="Hopper, Grace").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Grace Hopper")
    page.wait_for_load_state("networkidle")
    page.get_by_label("Last name").fill("Brewster Hopper")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(f"/admin/users\\?{grace}$"))
    expect(page.locator("#users-table")).to_contain_text("Brewster Hopper, Grace")
    assert count(app, User, User.last_name == "Brewster Hopper") == 1
    # The browser logs the expected 422 of the invalid email; nothing else may fail.
    assert [e for e in errors if "status of 422" not in e] == [], errors


def test_import_a_small_file_through_preview_and_confirm(page, live_server, admin, app, tmp_path):
    from lmsweb.models import User

    roster = tmp_path / "roster.xlsx"
    roster.write_bytes(
        xlsx_bytes(
            [
                ["ann@example.com", "Ann", "Able", "001", "", ""],
                ["bob@example.com", "Bob", "Baker", "002", "", ""],
                ["broken", "Cy", "Cole", "003", "", ""],
            ]
        )
    )
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page, live_server, admin.email, PASSWORD)
    page.get_by_role("link", name="Import").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Import users")
    page.get_by_label("Spreadsheet").set_input_files(str(roster))
    page.get_by_role("button", name="Preview the import").click()
    expect(
        page.get_by_role("heading", name="Preview: nothing has been written yet")
    ).to_be_visible()
    expect(page.locator(".import-totals")).to_contain_text("2 to add")
    expect(page.locator("#import-preview")).to_contain_text("Invalid email")
    expect(page).to_have_url(f"{live_server}/admin/users/import/1")
    screenshot(page, "import-preview")
    assert count(app, User) == 1
    page.wait_for_load_state("networkidle")
    page.get_by_role("button", name="Import 2 users").click()
    expect(page.get_by_role("status").filter(has_text="is done")).to_contain_text("2 added")
    assert count(app, User) == 3
    assert errors == [], errors
