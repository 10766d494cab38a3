"""A person archives everyone a filter matches (more than a page), sees a toast with Undo,
and undoes it: the users, their records and the seats are back as they were."""

from __future__ import annotations

import shutil

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from lmsweb.extensions import db
from lmsweb.models import AuditEvent, Course, User
from tests.a11y_support import format_vnu, run_vnu
from tests.browser.conftest import screenshot, sign_in
from tests.conftest import PASSWORD, count

pytestmark = pytest.mark.browser


def _seats(app, course_id):
    with app.app_context():
        c = db.session.get(Course, course_id)
        return c.seats_reserved, c.seats_used


def test_archive_all_matching_then_undo_from_the_toast(
    page, live_server, app, admin, make, tmp_path
):
    depot = make.location("Depot")
    course = make.course("FORK-1", seats=60)
    users = [
        make.user(first_name=f"Dora{n:02d}", last_name="Depot", location_id=depot.id)
        for n in range(52)
    ]
    make.assignment(users[0], course)
    make.assignment(users[1], course, state="in_progress")
    assert _seats(app, course.id) == (1, 1)
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.clock.install()
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users?location={depot.id}")
    expect(page.locator("#users-count")).to_have_text("52 users match these filters")

    page.get_by_label("Select all users on this page").check()
    page.get_by_label("Select all 52 users matching these filters").check()
    expect(page.locator("[data-bulk-count]")).to_have_text("52")
    page.get_by_label("Action", exact=True).select_option("archive_user")
    page.get_by_role("button", name="Apply").click()
    dialog = page.get_by_role("dialog", name="Archive user")
    dialog.get_by_role("button", name="Archive user: 52 users").click()

    toast = page.locator("#toasts .toast").filter(has_text="Archived 52 users")
    expect(toast).to_be_visible()
    undo = toast.get_by_role("button", name="Undo")
    expect(undo).to_be_visible()
    expect(page.locator("#users-count")).to_have_text("0 users match these filters")
    assert count(app, User, User.location_id == depot.id, User.status == "archived") == 52
    assert _seats(app, course.id) == (0, 1)
    screenshot(page, "bulk-undo-toast")
    # Ten seconds later the Undo is still there (the page's clock jumps ahead).
    page.clock.fast_forward(10_000)
    expect(undo).to_be_visible()

    # A keyboard user reaches it (focus keeps the toast); axe and vnu find nothing wrong.
    undo.focus()
    violations = Axe().run(page).response["violations"]
    assert [v["id"] for v in violations] == [], violations
    html = "<!DOCTYPE html>\n" + page.evaluate("document.documentElement.outerHTML")
    page.keyboard.press("Enter")
    expect(page.locator("#toasts")).to_contain_text("Undone: 52 users are back")
    expect(page.locator("#users-count")).to_have_text("52 users match these filters")
    expect(page.locator(f"#user-{users[0].id}")).to_be_visible()
    assert count(app, User, User.location_id == depot.id, User.status == "active") == 52
    assert _seats(app, course.id) == (1, 1)
    with app.app_context():
        reversal = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "undo"))
        assert reversal.details["reverses_action"] == "bulk.archive_user"
    assert errors == [], "\n".join(errors)
    if shutil.which("java"):  # the page as it stood, toast and all, is valid HTML
        snapshot = tmp_path / "bulk-undo-toast.html"
        snapshot.write_text(html)
        problems = run_vnu([snapshot])
        assert not problems, format_vnu(problems, {})


def test_bulk_undo_says_why_it_cannot(page, live_server, app, admin, make):
    team = make.group("Team Blue")
    user = make.user(first_name="Gus", last_name="Group")
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users?q=gus")
    page.get_by_label(f"Select {user.name}").check()
    page.get_by_label("Action", exact=True).select_option("add_group")
    page.get_by_label("Group", exact=True).select_option(label="Team Blue")
    page.get_by_role("button", name="Apply").click()
    toast = page.locator("#toasts .toast").filter(has_text="Added to Team Blue: 1 user")
    expect(toast).to_be_visible()

    # Someone takes Gus out of the group meanwhile: the undo refuses and says so.
    with app.app_context():
        u = db.session.get(User, user.id)
        u.groups = []
        db.session.commit()
    toast.get_by_role("button", name="Undo").click()
    expect(page.locator(".toast--error")).to_contain_text("Team Blue has changed since")
    assert team.id
