"""An administrator creates a SCIM token scoped to a location and a group, by keyboard, and
the tokens table says whom each token reaches."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.a11y import axe_violations
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_a_scoped_token_is_created_by_keyboard_and_shown_with_its_scope(page, live_server, make):
    make.admin(email="admin@example.com")
    make.location("Lisbon")
    make.location("Porto")
    make.group("Warehouse")
    sign_in(page, live_server, "admin@example.com", PASSWORD)
    page.goto(f"{live_server}/admin/settings/scim")
    assert axe_violations(page, "SCIM settings") == []

    # A token for everyone has nothing more to choose: the lists appear with the other
    # choice (the form was a long column of every location and group either way).
    expect(page.get_by_role("checkbox", name="Lisbon")).to_be_hidden()
    expect(page.get_by_role("group", name="Groups")).to_be_hidden()
    page.get_by_label("Token name").fill("Lisbon directory")
    page.get_by_label("Token name").press("Tab")
    # The radios are one tab stop; the arrow keys choose.
    expect(page.get_by_label("Everyone (organisation-wide)")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(
        page.get_by_label("Only the people at these locations or in these groups")
    ).to_be_checked()
    expect(page.get_by_role("group", name="Groups")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("checkbox", name="Lisbon")).to_be_focused()
    page.keyboard.press("Space")
    page.get_by_role("checkbox", name="Warehouse").focus()
    page.keyboard.press("Space")
    page.get_by_role("button", name="Create token").focus()
    page.keyboard.press("Enter")

    expect(page.get_by_label("New token")).to_have_value(re.compile(r"^lms_scim_"))
    row = page.locator("#scim-tokens tr", has_text="Lisbon directory")
    expect(row.locator("td[data-label=Reaches]")).to_have_text("Lisbon, Warehouse")
    assert axe_violations(page, "SCIM settings with a scoped token") == []
