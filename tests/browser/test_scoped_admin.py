"""Scoped administrators (#17), as people click it: an organisation-wide administrator
scopes another on the details page; that administrator signs in, sees the scope in the top
bar and only their people."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_an_administrator_scoped_on_the_details_page_sees_only_their_people(
    page, live_server, admin, make
):
    lisbon, porto, madrid = make.location("Lisbon"), make.location("Porto"), make.location("Madrid")
    warehouse = make.group("Warehouse")
    make.learner(first_name="Lena", last_name="Lisboa", location_id=lisbon.id)
    make.learner(first_name="Walt", last_name="Worker", location_id=porto.id, groups=[warehouse])
    make.learner(first_name="Otto", last_name="Outsider", location_id=madrid.id)
    sam = make.admin(first_name="Sam", last_name="Site", email="sam.site@example.com")

    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users/{sam.id}")
    section = page.get_by_role("region", name="Administrator scope")
    expect(section).to_contain_text("Now: Organisation-wide")
    section.get_by_label("Only the users of these locations and groups").check()
    section.get_by_role("group", name="Locations").get_by_label("Lisbon").check()
    section.get_by_role("group", name="Groups").get_by_label("Warehouse").check()
    section.get_by_role("button", name="Save scope").click()
    expect(page.locator("#admin-scope-now")).to_have_text("Lisbon, Warehouse")
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, live_server, sam.email, PASSWORD)
    page.goto(f"{live_server}/admin/users")
    expect(page.get_by_role("banner")).to_contain_text("Scope: Lisbon, Warehouse")
    results = page.locator("#users-results")
    expect(results).to_contain_text("Lisboa")
    expect(results).to_contain_text("Worker")
    expect(results).not_to_contain_text("Outsider")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Courses")).to_have_count(0)
    expect(nav.get_by_role("link", name="Dashboard")).to_be_visible()
