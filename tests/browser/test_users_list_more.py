"""The Users list, as a person uses it: the "course C in state S" filter, a count that
follows row actions, invitations that turn from queued to sent."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_filter_by_course_in_a_state(page, live_server, admin, make):
    fire = make.course("FIRE-1", title="Fire safety")
    make.course("GDPR-1", title="Data protection")
    late = make.user(first_name="Olga", last_name="Overdue")
    keen = make.user(first_name="Sven", last_name="Started")
    make.user(first_name="Nell", last_name="Nothing")
    make.assignment(late, fire, due=date.today() - timedelta(days=3))
    make.assignment(keen, fire, state="in_progress")
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users")
    count = page.locator("#users-count")

    page.get_by_text("Advanced filters").click()
    panel = page.locator(".filters-menu__panel")
    expect(panel).to_be_visible()
    panel.get_by_label("Enrolled in").select_option(label="FIRE-1")
    expect(count).to_have_text("2 users match these filters")
    panel.get_by_label("Enrolment state").select_option(label="Overdue")
    expect(count).to_have_text("1 user matches these filters")
    rows = page.locator("#users-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Overdue, Olga")
    violations = Axe().run(page).response["violations"]
    assert [v["id"] for v in violations] == [], violations
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    assert "course_state=overdue" in page.url  # the view can be bookmarked

    chips = page.get_by_role("list", name="Active filters")
    expect(chips).to_contain_text("FIRE-1 · Overdue")
    chips.get_by_role("link", name="FIRE-1 · Overdue").click()
    expect(count).to_have_text("4 users")
    assert "course_state" not in page.url


def test_the_count_follows_a_row_action_in_a_filtered_view(page, live_server, admin, make):
    pia = make.user(first_name="Pia", last_name="Pending", status="pending")
    make.user(first_name="Paz", last_name="Pending", status="pending")
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users?status=pending")
    count = page.locator("#users-count")
    expect(count).to_have_text("2 users match these filters")

    page.get_by_role("button", name="Approve Pia Pending").click()
    expect(page.locator("#toasts")).to_contain_text("Pia Pending is approved")
    expect(page.locator(f"#user-{pia.id}")).to_have_count(0)  # no longer pending: it leaves
    expect(count).to_have_text("1 user matches these filters")
    expect(page.locator("#users-table tbody tr")).to_have_count(1)
    # The focus went on to the next row, not back to the top of the page.
    expect(page.get_by_role("link", name="Pending, Paz")).to_be_focused()
    assert errors == [], errors


@pytest.fixture
def app_config():
    from tests.smtp_support import SMTPServer

    server = SMTPServer().start()
    yield {**server.config(), "_smtp": server}
    server.stop()


def test_a_queued_invitation_turns_into_sent_without_a_reload(
    page, live_server, app, app_config, admin, make
):
    from lmsweb import mailer
    from lmsweb.extensions import db

    user = make.user(first_name="Quinn", last_name="Queued")
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.clock.install()
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users?q=quinn")
    row = page.locator(f"#user-{user.id}")
    row.get_by_role("button", name="Notify Quinn Queued").click()
    expect(row).to_contain_text("Invitation queued")

    with app.app_context():  # the worker sends it meanwhile
        assert mailer.drain().sent == 1
        db.session.remove()
    # run_for, not fast_forward: the poll's timer may be set while the clock moves (the row
    # is swapped in and settled on timers too), and only run_for fires such a timer.
    page.clock.run_for(6_000)  # the row asks again every 5 s
    expect(row.locator(".status-icons")).to_contain_text("Notified")
    expect(row).not_to_contain_text("Invitation queued")
    # Delivered: it stops asking.
    assert row.locator(".status-icons[data-hx-trigger]").count() == 0
    assert errors == [], errors


def test_add_user_with_checkboxes_then_the_list_points_at_them(page, live_server, app, admin, make):
    from lmsweb.models import CourseAssignment, User
    from tests.conftest import count

    make.group("Nurses")
    make.group("Porters")
    make.course("FIRE-1", title="Fire safety")
    make.course("GDPR-1", title="Data protection")
    for n in range(60):  # more than a page: she would not be on page 1 by name
        make.user(first_name=f"Aaron{n:02d}", last_name="Able")
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users")
    page.get_by_role("link", name="Add user").click()
    dialog = page.get_by_role("dialog", name="Add a user")
    expect(dialog).to_be_visible()
    # Required fields say so, to the eye and to assistive technology.
    first = dialog.get_by_role("textbox", name="First name (required)")
    expect(first).to_have_attribute("required", "")
    expect(dialog.get_by_role("textbox", name="User ID", exact=True)).not_to_have_attribute(
        "required", ""
    )
    dialog.get_by_role("textbox", name="First name").fill("Ana")
    dialog.get_by_role("textbox", name="Last name").fill("Silva")
    dialog.get_by_role("textbox", name="Email (required)").fill("ana.silva@example.com")
    groups = dialog.get_by_role("group", name="Groups")
    groups.get_by_role("checkbox", name="Nurses").focus()
    page.keyboard.press("Space")
    courses = dialog.get_by_role("group", name="Courses to assign")
    courses.get_by_role("checkbox", name="FIRE-1").check()
    courses.get_by_role("checkbox", name="GDPR-1").check()
    dialog.get_by_label("Approve and send the invitation now").check()
    violations = Axe().run(page).response["violations"]
    assert [v["id"] for v in violations] == [], violations
    page.wait_for_load_state("networkidle")
    dialog.get_by_role("button", name="Add user").click()

    expect(page.locator("#toasts")).to_contain_text(
        "Added Ana Silva, approved, invitation queued, 2 courses assigned."
    )
    with app.app_context():
        from lmsweb.extensions import db

        ana = db.session.scalar(db.select(User).where(User.email == "ana.silva@example.com"))
        assert [g.name for g in ana.groups] == ["Nurses"]
        ana_id = ana.id
    assert count(app, CourseAssignment, CourseAssignment.user_id == ana_id) == 2
    row = page.locator(f"#user-{ana_id}")
    expect(row).to_be_visible()
    expect(row).to_be_focused()
    assert page.url.endswith(f"#user-{ana_id}")
    assert errors == [], errors


def test_filter_by_manager_from_the_panel(page, live_server, admin, make):
    boss = make.user(first_name="Bea", last_name="Boss", email="bea.boss@example.com")
    make.user(first_name="Rita", last_name="Report", manager_id=boss.id)
    make.user(first_name="Ravi", last_name="Report", manager_id=boss.id)
    chief = make.user(first_name="Carl", last_name="Chief", email="carl.chief@example.com")
    make.user(first_name="Cora", last_name="Report", manager_id=chief.id)
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users")
    page.get_by_text("Advanced filters").click()
    field = page.get_by_label("Manager", exact=True)
    field.focus()
    # Focused: the first managers by name; then, as one types, those it starts.
    options = page.locator("#users-manager-options option")
    expect(options).to_have_count(2)
    field.press_sequentially("bo")
    expect(options).to_have_count(1)
    expect(options).to_have_attribute("value", "bea.boss@example.com")
    field.fill("bea.boss@example.com")
    field.press("Enter")
    expect(page.locator("#users-count")).to_have_text("2 users match these filters")
    expect(page.get_by_role("list", name="Active filters")).to_contain_text("Bea Boss")
    assert page.url.endswith("/admin/users?manager=bea.boss@example.com")
    # The chip's name links back (a user's page links by id): the field shows the email.
    page.goto(f"{live_server}/admin/users?manager={boss.id}")
    expect(page.locator("#users-count")).to_have_text("2 users match these filters")
    expect(page.get_by_label("Manager", exact=True)).to_have_value("bea.boss@example.com")
    # A name typed in full, Enter: the one manager it matches.
    page.get_by_text("Advanced filters").click()
    page.get_by_label("Manager", exact=True).fill("Carl Chief")
    page.get_by_label("Manager", exact=True).press("Enter")
    expect(page.locator("#users-count")).to_have_text("1 user matches these filters")
    expect(page.get_by_role("list", name="Active filters")).to_contain_text("Carl Chief")
    assert page.url.endswith("/admin/users?manager=carl.chief@example.com")
