"""A person signs in and sees the Users page."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import screenshot, sign_in
from tests.conftest import PASSWORD

pytestmark = __import__("pytest").mark.browser


def test_admin_signs_in_and_sees_the_users_page(page, live_server, app, admin, make):
    from lmsweb import sqlite_write_transaction
    from lmsweb.extensions import db
    from lmsweb.seed import seed_demo

    with app.app_context(), sqlite_write_transaction():
        seed_demo(120)  # a realistic list for the README's screenshot
        db.session.commit()
    location = make.location("Lisbon Riverside")
    make.user(
        first_name="Jane", last_name="Doe", email="jane.doe@example.com", location_id=location.id
    )
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page, live_server, admin.email, PASSWORD)
    expect(page).to_have_url(f"{live_server}/admin/users")
    expect(page.get_by_role("heading", level=1)).to_have_text("Users")
    page.get_by_label("Search users").fill("doe")
    expect(page.locator("#users-table")).to_contain_text("Doe, Jane")
    page.get_by_label("Search users").fill("")
    expect(page.locator("#users-count")).not_to_contain_text("match")
    expect(page.get_by_role("navigation", name="Main")).to_contain_text("Users")
    screenshot(page, "users")
    assert errors == [], errors  # no CSP violations or script errors
