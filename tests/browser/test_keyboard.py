"""Keyboard-only use, visible focus, and the 360 px portal column: approve, assign a course
and archive through the Users page's row actions and dialogs."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from lmsweb.extensions import db
from lmsweb.models import Course, CourseAssignment, User
from tests.browser.a11y import HTMX_PROBE, OPEN_DIALOG, requests_done, wait_closed, wait_for_htmx
from tests.browser.conftest import screenshot, sign_in
from tests.browser.keyboard import (
    assert_focus_visible,
    enter,
    escape,
    focused,
    is_focused,
    named,
    shift_tab,
    tab,
    tab_through,
    tab_to,
)
from tests.conftest import PASSWORD, get

pytestmark = pytest.mark.browser

NARROW = {"width": 360, "height": 740}


@pytest.fixture
def narrow_page(browser):
    """A page in a 360 px wide frame, like a portal's side column."""
    context = browser.new_context(viewport=NARROW, locale="en-US")
    context.add_init_script(HTMX_PROBE)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def keyboard_page(browser):
    """A desktop-sized page that counts finished htmx requests."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.add_init_script(HTMX_PROBE)
    page = context.new_page()
    yield page
    context.close()


def sign_in_by_keyboard(page, base: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/login")
    email_field = page.get_by_label("Email")
    if not is_focused(email_field):  # it has autofocus; fall back to tabbing
        tab_to(page, email_field)
    assert_focus_visible(page)
    page.keyboard.type(email)
    tab(page)
    assert focused(page)["id"] == "password"
    assert_focus_visible(page)
    page.keyboard.type(password)
    tab(page)
    assert focused(page)["name"] == "Sign in"
    assert_focus_visible(page)
    enter(page)
    page.wait_for_url(lambda url: "/login" not in url)


def test_sign_in_with_the_keyboard_alone(keyboard_page, live_server, admin):
    page = keyboard_page
    page.goto(f"{live_server}/login")
    screenshot(page, "sign-in")
    sign_in_by_keyboard(page, live_server, admin.email)
    expect(page).to_have_url(f"{live_server}/admin/users")
    # Shift+Tab from the start of the content goes back to the navigation.
    page.get_by_role("heading", level=1).wait_for()
    tab_to(page, page.get_by_role("link", name="Skip to content"))
    enter(page)
    assert focused(page)["id"] == "main"
    tab(page)
    assert_focus_visible(page)
    shift_tab(page)


def test_users_list_by_keyboard(keyboard_page, live_server, admin, make):
    page = keyboard_page
    location = make.location("Lisbon")
    jane = make.user(
        first_name="Jane", last_name="Doe", email="jane.doe@example.com", location_id=location.id
    )
    make.user(first_name="Pat", last_name="Pending", status="pending")
    sign_in(page, live_server, admin.email, PASSWORD)
    page.get_by_role("heading", level=1, name="Users").wait_for()

    # Every stop on the page shows where focus is, and the rows' controls are reachable.
    stops = tab_through(page)
    assert stops[0]["name"] == "Skip to content"
    assert any(s["name"] == "Select Jane Doe" for s in stops), [s["name"] for s in stops]

    checkbox = page.get_by_role("checkbox", name="Select Jane Doe")
    tab_to(page, checkbox)
    page.keyboard.press("Space")
    expect(checkbox).to_be_checked()
    shift_tab(page)
    assert not is_focused(checkbox)
    tab(page)
    assert is_focused(checkbox)
    page.keyboard.press("Space")
    expect(checkbox).not_to_be_checked()
    assert page.locator(f"#user-{jane.id}").is_visible()


def test_learner_page_by_keyboard(keyboard_page, live_server, learner, make):
    page = keyboard_page
    make.assignment(learner, make.course(title="Fire Safety"))
    sign_in_by_keyboard(page, live_server, learner.email)
    expect(page.get_by_role("heading", level=1)).to_have_text("My training")
    screenshot(page, "my-training")
    names = [s["name"] for s in tab_through(page)]
    assert "Sign out" in names


def test_users_table_stacks_in_a_360px_column(narrow_page, live_server, admin, make):
    page = narrow_page
    group = make.group("Health & Safety Reps")
    for n in range(6):
        make.user(first_name=f"Person{n}", last_name="Longname-Hyphenated", groups=[group])
    sign_in(page, live_server, admin.email, PASSWORD)
    page.get_by_role("heading", level=1, name="Users").wait_for()

    layout = page.evaluate(
        """() => {
      const row = document.querySelector('#users-table tbody tr');
      const head = document.querySelector('#users-table thead');
      return {rowDisplay: getComputedStyle(row).display,
              headWidth: head.getBoundingClientRect().width,
              pageWidth: document.documentElement.scrollWidth,
              viewport: window.innerWidth};
    }"""
    )
    assert layout["rowDisplay"] == "grid", layout  # rows stack as cards
    assert layout["headWidth"] <= layout["viewport"], layout  # the head: a strip of sort links
    assert layout["pageWidth"] <= layout["viewport"], layout  # nothing scrolls sideways
    # A card: name, email, training and status, its primary action and "More".
    card = page.locator("#users-table tbody tr").first
    expect(card.locator(".col-email")).to_be_visible()
    expect(card.locator("summary")).to_be_visible()
    assert card.bounding_box()["height"] <= 160
    # Sorting still works with the pointer in the narrow column.
    page.locator("#users-table thead").get_by_role("link", name="Name").click()
    expect(page).to_have_url(re.compile(r"sort=-name"))


def test_reduced_motion_stops_the_busy_bar(browser, live_server, admin):
    context = browser.new_context(reduced_motion="reduce")
    page = context.new_page()
    sign_in(page, live_server, admin.email, PASSWORD)
    page.get_by_role("heading", level=1).wait_for()
    animation = page.evaluate(
        "getComputedStyle(document.querySelector('#busy span')).animationName"
    )
    context.close()
    assert animation == "none"


def test_slow_htmx_requests_show_the_busy_bar_and_mark_the_region_busy(
    keyboard_page, live_server, admin
):
    page = keyboard_page
    sign_in(page, live_server, admin.email, PASSWORD)
    page.get_by_role("heading", level=1).wait_for()
    held = []
    page.route("**/admin/users?slow=1", lambda route: held.append(route))
    before = requests_done(page)
    # Not awaited: htmx.ajax's promise settles only once the held response is let go.
    page.evaluate("() => { htmx.ajax('GET', '/admin/users?slow=1', {target: '#users-results'}); }")
    page.wait_for_function("() => document.getElementById('busy').classList.contains('is-busy')")
    # The bar fades in after a short delay, so quick requests never flicker it.
    page.wait_for_function(
        "() => getComputedStyle(document.getElementById('busy')).opacity === '1'"
    )
    assert page.get_attribute("#users-results", "aria-busy") == "true"
    held[0].continue_()
    wait_for_htmx(page, before)
    assert page.get_attribute("#users-results", "aria-busy") is None
    assert "is-busy" not in (page.get_attribute("#busy", "class") or "")


# --- Approve, assign a course and archive: keyboard alone, and pointer at 360 px -----------


class Keyboard:
    """Operates controls with the keyboard alone, checking visible focus on the way."""

    def __init__(self, page):
        self.page = page

    def press(self, control) -> None:
        tab_to(self.page, control)
        enter(self.page)

    def choose(self, control) -> None:
        """Tick a checkbox, pick a radio button or an option."""
        tag, kind = control.evaluate("el => [el.tagName.toLowerCase(), el.type || '']")
        if kind == "radio":
            # Arrow keys move within a radio group; Tab enters it at the checked one.
            tab_to(
                self.page,
                control.locator("xpath=ancestor::form[1]")
                .locator(f"input[type=radio][name='{control.get_attribute('name')}']")
                .first,
            )
            for _ in range(10):
                if control.is_checked():
                    return
                self.page.keyboard.press("ArrowDown")
            assert control.is_checked(), "the radio button was never selected"
        else:
            tab_to(self.page, control)
            self.page.keyboard.press("Space")

    def select(self, select, label: str) -> None:
        tab_to(self.page, select)
        self.page.keyboard.type(label)  # type-ahead picks the option

    def close(self) -> None:
        escape(self.page)


class Pointer:
    """Operates controls by clicking, as on a touch screen in a narrow column."""

    def __init__(self, page):
        self.page = page

    def press(self, control) -> None:
        control.scroll_into_view_if_needed()
        control.click()

    def choose(self, control) -> None:
        control.check()

    def select(self, select, label: str) -> None:
        select.select_option(label=label)

    def close(self) -> None:
        self.page.locator(f"{OPEN_DIALOG} [data-close-dialog]").first.click()


def _state(app, user_id: int, course_id: int):
    with app.app_context():
        user = db.session.get(User, user_id)
        assignments = db.session.scalars(
            sa.select(CourseAssignment).where(
                CourseAssignment.user_id == user_id, CourseAssignment.course_id == course_id
            )
        ).all()
        course = db.session.get(Course, course_id)
        return user.status, [(a.state, a.archived_at) for a in assignments], course


def open_more(row):
    """The row's "More" menu button (a <summary>); its items load when it opens."""
    return row.locator("details.menu > summary")


def approve_assign_archive(page, app, base: str, actor, admin, make) -> None:
    """Approve a pending user, assign them a course, archive them: through the Users page,
    its row actions and its dialogs, with `actor` (Keyboard or Pointer) doing the operating."""
    location = make.location("Lisbon")
    course = make.course(code="FIRE-1", title="Fire Safety Awareness", seats=3)
    pat = make.user(
        first_name="Pat",
        last_name="Pending",
        email="pat.pending@example.com",
        status="pending",
        location_id=location.id,
    )
    sign_in(page, base, admin.email, PASSWORD)
    page.get_by_role("heading", level=1, name="Users").wait_for()
    row = page.locator(f"#user-{pat.id}")

    # Approve: the row is swapped in place and focus stays on it.
    before = requests_done(page)
    actor.press(row.get_by_role("button", name=named(r"^approve pat")))
    wait_for_htmx(page, before)
    assert get(app, User, pat.id).status == "active"
    expect(row.locator(".col-status")).not_to_contain_text("Pending")
    assert is_focused(row), f"focus left the changed row: {focused(page)}"

    # Course assignment, from the row's "More" menu: a <dialog> opens with focus inside;
    # choose the course, assign.
    actor.press(open_more(row))
    actor.press(row.get_by_role("link", name=named(r"course")))
    dialog = page.locator(OPEN_DIALOG)
    dialog.wait_for()
    assert dialog.evaluate("d => d.contains(document.activeElement)"), focused(page)
    expect(dialog).to_have_attribute("aria-labelledby", named(r"\S"))
    choice = dialog.locator(f"input[name=course][value='{course.id}']")
    if choice.count():
        actor.choose(choice)
    else:
        actor.select(dialog.locator("select[name=course]"), course.title)
    due = dialog.locator("input[name=due_date]")
    if due.count() and not due.input_value():
        due_date = date.today() + timedelta(days=30)
        if isinstance(actor, Keyboard):
            tab_to(page, due)
            page.keyboard.type(due_date.strftime("%m%d%Y"))  # en-US segments: mm dd yyyy
        else:
            due.fill(due_date.isoformat())
    before = requests_done(page)
    actor.press(dialog.get_by_role("button", name=named(r"^\s*assign")))
    wait_for_htmx(page, before)
    wait_closed(page)
    status, records, pool = _state(app, pat.id, course.id)
    assert [r[0] for r in records] == ["assigned"] and records[0][1] is None
    assert pool.seats_reserved == 1
    assert row.evaluate("r => r.contains(document.activeElement)"), (
        f"focus did not return to the row after the dialog closed: {focused(page)}"
    )

    # Archive the user: the dialog explains, the choice is the user (not only the activity).
    actor.press(open_more(row))
    actor.press(row.get_by_role("link", name=named(r"archive")))
    dialog.wait_for()
    mode = dialog.locator("input[name=mode][value=user]")
    if mode.count():
        actor.choose(mode)
    before = requests_done(page)
    submit = dialog.get_by_role("button", name=named(r"archive")).filter(
        has_not_text=named("activity")
    )
    actor.press(submit)
    wait_for_htmx(page, before)
    status, records, pool = _state(app, pat.id, course.id)
    assert status == "archived"
    assert records[0][1] is not None  # the unstarted record is archived, never deleted
    assert pool.seats_reserved == 0  # and its seat went back to the pool
    expect(page.locator(OPEN_DIALOG)).to_have_count(0)


def test_approve_assign_and_archive_with_the_keyboard_alone(
    keyboard_page, live_server, app, admin, make
):
    approve_assign_archive(keyboard_page, app, live_server, Keyboard(keyboard_page), admin, make)


def test_approve_assign_and_archive_with_the_pointer_at_360px(
    narrow_page, live_server, app, admin, make
):
    approve_assign_archive(narrow_page, app, live_server, Pointer(narrow_page), admin, make)
    screenshot(narrow_page, "users-360px-after-archive")


def test_escape_closes_a_dialog_and_returns_focus(keyboard_page, live_server, app, admin, make):
    user = make.user(first_name="Sam", last_name="Active")
    page = keyboard_page
    sign_in(page, live_server, admin.email, PASSWORD)
    row = page.locator(f"#user-{user.id}")
    opener = open_more(row)
    Keyboard(page).press(opener)
    Keyboard(page).press(row.get_by_role("link", name=named("course")))
    page.wait_for_selector(OPEN_DIALOG)
    escape(page)
    wait_closed(page)
    assert is_focused(opener), f"focus did not return to the opener: {focused(page)}"
