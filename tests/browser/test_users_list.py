"""A person filters, searches, sorts and pages the Users list; reload and back keep it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_filter_search_page_reload_and_back(page, live_server, admin, make):
    lisbon, oslo = make.location("Lisbon"), make.location("Oslo")
    sales = make.group("Sales")
    for n in range(30):
        make.user(
            first_name=f"Marco{n:02d}",
            last_name="Rossi",
            location_id=lisbon.id,
            groups=[sales] if n % 2 else [],
        )
    make.user(first_name="Olga", last_name="Rossi", location_id=oslo.id, groups=[sales])
    make.user(first_name="Ann", last_name="Archived", status="archived")
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users")
    rows = page.locator("#users-table tbody tr")
    count = page.locator("#users-count")
    expect(count).to_have_text("32 users")  # everyone but the archived user

    # Active search: typing filters the table and pushes the state to the address bar.
    page.get_by_label("Search users").press_sequentially("ross")
    expect(count).to_contain_text("31 users match")
    expect(page).to_have_url(re.compile(r"\?q=ross$"))

    # Advanced filters: a location, then a group; chips show each.
    page.get_by_text("Advanced filters").click()
    page.get_by_label("Lisbon", exact=True).check()
    expect(count).to_contain_text("30 users match")
    page.get_by_label("Sales").check()
    expect(count).to_contain_text("15 users match")
    expect(page).to_have_url(re.compile(r"group=\d+"))
    chips = page.get_by_role("list", name="Active filters")
    expect(chips).to_contain_text("Lisbon")
    expect(chips).to_contain_text("Sales")

    # Removing a chip widens the list and updates the form out of band.
    page.get_by_text("Advanced filters").click()  # close the panel
    chips.get_by_role("link", name=re.compile("Lisbon")).click()
    expect(count).to_contain_text("16 users match")
    page.get_by_text("Advanced filters").click()
    expect(page.get_by_label("Lisbon", exact=True)).not_to_be_checked()

    # Page size and paging.
    page.get_by_label("Sales").uncheck()
    page.get_by_text("Advanced filters").click()
    expect(count).to_contain_text("31 users match")
    page.get_by_label("Rows per page").select_option("25")
    expect(rows).to_have_count(25)
    page.get_by_role("link", name="Next").click()
    expect(rows).to_have_count(6)
    expect(page.locator(".pager__page")).to_have_text("Page 2 of 2")
    expect(page).to_have_url(re.compile(r"page=2"))
    paged_url = page.url

    # Sorting: a second click reverses.
    name_header = page.get_by_role("columnheader", name=re.compile("^Name"))
    name_header.get_by_role("link").click()
    expect(name_header).to_have_attribute("aria-sort", "descending")
    expect(rows.first).to_contain_text("Rossi, Olga")

    # Reload keeps everything; back returns to the previous state.
    page.reload()
    expect(name_header).to_have_attribute("aria-sort", "descending")
    expect(page.get_by_label("Search users")).to_have_value("ross")
    expect(rows).to_have_count(25)
    page.go_back()
    expect(page).to_have_url(paged_url)
    expect(rows).to_have_count(6)
    expect(page.locator(".pager__page")).to_have_text("Page 2 of 2")

    # Clear all brings back the default view.
    page.get_by_role("link", name="Clear all").first.click()
    expect(count).to_have_text("32 users")
    expect(page.get_by_label("Search users")).to_have_value("")
    assert errors == [], errors
