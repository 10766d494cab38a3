"""Issue #15: every control of the Users page does what it says, as a person sees it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
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
