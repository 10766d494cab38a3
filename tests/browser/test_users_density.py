"""A dense Users list: one line per user, 15+ rows at 1280x800, a small 50-row partial,
status as icons with words for screen readers, and a keyboard-operable "More" menu."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from playwright.sync_api import expect

from tests.browser.a11y import assert_no_serious_violations
from tests.browser.conftest import screenshot, sign_in
from tests.conftest import HX, PASSWORD

pytestmark = pytest.mark.browser

VISIBLE_ROWS = """() => [...document.querySelectorAll('tr[id^=user-]')].filter(r => {
  const b = r.getBoundingClientRect(); return b.top >= 0 && b.bottom <= window.innerHeight;
}).length"""


@pytest.fixture
def demo(runner, admin):
    result = runner.invoke(args=["lms", "seed-demo", "--users", "120"])
    assert result.exit_code == 0, result.output


def test_fifteen_rows_fit_at_1280_and_each_is_one_line(page, live_server, admin, demo):
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users")
    rows = page.locator("tr[id^=user-]")
    expect(rows.first).to_be_visible()
    assert page.evaluate(VISIBLE_ROWS) >= 15
    # One line: no cell wraps (name and email are each one line, never broken mid-word).
    heights = rows.evaluate_all("rs => rs.slice(0, 20).map(r => r.getBoundingClientRect().height)")
    assert max(heights) < 45, heights
    screenshot(page, "users")


def test_the_50_row_partial_is_small(client, admin, demo):
    from tests.conftest import login

    login(client, admin.email)
    response = client.get("/admin/users?per_page=50", headers=HX)
    assert response.status_code == 200
    assert response.text.count('<tr id="user-') == 50
    assert len(response.data) <= 60_000
    assert response.text.count("<form") <= 2  # the row-post form and the pager's


def test_status_icons_speak_and_the_more_menu_works_by_keyboard(page, live_server, admin, make):
    course = make.course("SAFE-1", seats=5)
    user = make.user(first_name="Kim", last_name="Keys", notified_at=None)
    make.assignment(user, course, due=date.today() - timedelta(days=3))
    make.assignment(user, make.course("DONE-1"), state="completed")
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users?q=kim")
    row = page.locator(f"#user-{user.id}")
    expect(row.locator(".col-training")).to_contain_text("1 overdue")
    expect(row.locator(".col-training")).to_contain_text("1 completed")
    expect(row.get_by_role("listitem").filter(has_text="Not activated")).to_have_attribute(
        "title", "Not activated yet"
    )
    # The primary action is visible; the rest wait in "More".
    expect(row.get_by_role("button", name="Notify Kim Keys")).to_be_visible()
    more = page.locator(f"#more-{user.id}")
    more.focus()
    page.keyboard.press("Enter")
    menu = row.get_by_role("list", name="Actions for Kim Keys")
    expect(menu).to_be_visible()
    expect(menu.get_by_role("link", name="Groups of Kim Keys")).to_be_visible()
    screenshot(page, "more-menu")
    assert_no_serious_violations(page)
    page.keyboard.press("Tab")
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(more).to_be_focused()

    # From the menu, a dialog opens; closing it gives the focus back to "More".
    page.keyboard.press("Enter")
    menu.get_by_role("link", name=re.compile("^Course assignments")).click()
    dialog = page.get_by_role("dialog", name="Course assignments: Kim Keys")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(more).to_be_focused()


def test_at_360px_the_first_user_shows_without_scrolling(page, live_server, admin, demo):
    page.set_viewport_size({"width": 360, "height": 740})
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users")
    first = page.locator("tr[id^=user-]").first
    expect(first).to_be_visible()
    box = first.bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= 740, box
    assert box["height"] <= 160, box
    # Nothing reaches past the screen's right edge: the export links wrap (the second one
    # was cut at the edge, the page scrolling sideways).
    for link in page.locator(".export-links a").all():
        edge = link.bounding_box()
        assert edge["x"] >= 0 and edge["x"] + edge["width"] <= 360, edge
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    screenshot(page, "users-360px")
    # The navigation is one Menu button here; it opens and reaches every page.
    page.get_by_role("button", name="Menu").click()
    expect(
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard")
    ).to_be_visible()


GROUPS_CELL = """row => {
  const cell = row.querySelector('td.col-groups').getBoundingClientRect();
  return [...row.querySelectorAll('td.col-groups .chip')].map(chip => {
    const b = chip.getBoundingClientRect();
    return {text: chip.textContent, left: b.left, right: b.right, width: b.width,
            cellLeft: cell.left, cellRight: cell.right};
  });
}"""


def _chips_inside_the_cell(row) -> list[str]:
    """The visible text of a row's group chips, each asserted whole inside its cell."""
    chips = row.evaluate(GROUPS_CELL)
    for chip in chips:
        assert chip["width"] > 0, chips
        assert chip["cellLeft"] <= chip["left"] and chip["right"] <= chip["cellRight"], chips
    return [c["text"].split(" more")[0] for c in chips]


def test_a_user_in_many_groups_shows_how_many_more_whole_and_inside_the_cell(
    page, live_server, admin, make
):
    """A row shows the groups that fit (at most two) and "+N" for the rest. However long
    the names, every chip shows inside the cell: "+N" was cut by the cell's edge, and a
    second name too long to fit was cut to a lone "…". The row stays one line, and a lone
    long name is shortened inside its chip, not hidden."""
    long_name = "Health and Safety Committee of the Northern Region"
    groups = [
        make.group(long_name),
        make.group("Contractors"),
        make.group("Warehouse"),
        make.group("Night shift"),
    ]
    many = make.user(first_name="Gina", last_name="Groups", groups=groups)
    one = make.user(first_name="Gina", last_name="Single", groups=groups[:1])
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/users?q=gina")
    row = page.locator(f"#user-{many.id}")
    expect(row).to_be_visible()
    more = row.locator(".chip--more")
    expect(more).to_have_attribute("title", f"{long_name}, Night shift, Warehouse")
    assert _chips_inside_the_cell(row) == ["Contractors", "+3"]
    # Two short names fit beside each other, and beside "+N".
    short = make.user(
        first_name="Gina",
        last_name="Short",
        groups=[make.group("IT"), make.group("Legal"), groups[2]],
    )
    page.reload()
    assert _chips_inside_the_cell(page.locator(f"#user-{short.id}")) == ["IT", "Legal", "+1"]
    # Two names too long to stand side by side: the second is counted, not cut to "…".
    pair = make.user(
        first_name="Gina",
        last_name="Pair",
        groups=[make.group("Engineering"), make.group("Finance")],
    )
    page.reload()
    assert _chips_inside_the_cell(page.locator(f"#user-{pair.id}")) == ["Engineering", "+1"]
    assert row.evaluate("r => r.getBoundingClientRect().height") < 45
    (single,) = page.locator(f"#user-{one.id}").evaluate(GROUPS_CELL)
    assert single["width"] > 20 and single["right"] <= single["cellRight"] + 0.5, single
    expect(page.locator(f"#user-{one.id} .chip")).to_have_attribute("title", long_name)


@pytest.mark.parametrize(
    "path",
    [
        "/admin/users",
        "/admin/users/import",
        "/admin/courses",
        "/admin/rules",
        "/admin/groups",
        "/admin/locations",
        "/admin/dashboard",
        "/admin/outbox",
        "/admin/audit",
        "/admin/settings/scim",
        "/my/training",
    ],
)
# The organisation's name as a new installation has it: its two lines in the header pushed
# Sign out 7 px past a 360 px screen (the tests' own "Test Org" fitted).
@pytest.mark.parametrize("app_config", [{"ORG_NAME": "Example Organisation"}])
def test_no_page_scrolls_sideways_at_360px(page, live_server, admin, demo, path):
    """At 360 px every page fits the screen's width: a wide table scrolls inside its own
    frame. The courses page and the dashboard scrolled sideways: the screen-reader texts in
    their tables (absolutely positioned) escaped the table's frame and widened the page."""
    page.set_viewport_size({"width": 360, "height": 740})
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}{path}")
    page.wait_for_load_state("domcontentloaded")
    width = page.evaluate("document.documentElement.scrollWidth")
    # For the message: what reaches past the edge (a wide table's own cells scroll inside it).
    past = page.evaluate(
        "() => [...document.querySelectorAll('body *')]"
        ".filter(e => e.getBoundingClientRect().right > 361)"
        ".slice(0, 5).map(e => e.tagName + '.' + e.className)"
    )
    assert width <= 360, (path, width, past)


def _first_row_on_screen_at_360px(page, url: str, table: str, controls) -> None:
    """Open `url` at 360 px: each of `controls(first row)` lies within the screen's width."""
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(url)
    first = page.locator(f"{table} tbody tr").first
    for control in controls(first):
        box = control.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360, (url, box)
    assert_no_serious_violations(page)


@pytest.mark.parametrize("path", ["/admin/groups", "/admin/locations"])
def test_groups_and_locations_are_cards_at_360px(page, live_server, admin, demo, path):
    """At 360 px a group or location is a card: its rename field, Rename and Remove all on
    the screen. The table kept its three columns and scrolled inside its frame, the field
    cut off at the screen's edge and Remove out of sight."""
    sign_in(page, live_server, admin.email, PASSWORD)
    _first_row_on_screen_at_360px(
        page,
        f"{live_server}{path}",
        ".org .table",
        lambda row: (
            row.locator("input[name=name]"),
            row.get_by_role("button", name="Rename"),
            row.get_by_role("button", name=re.compile("^Remove")),
        ),
    )


def test_courses_are_cards_at_360px(page, live_server, admin, demo):
    """At 360 px a course is a card: its counts, pool and the licenses form on screen. The
    table kept its seven columns: the name a word a line, the rest out of sight."""
    sign_in(page, live_server, admin.email, PASSWORD)
    _first_row_on_screen_at_360px(
        page,
        f"{live_server}/admin/courses",
        "#courses-table",
        lambda row: (
            row.locator("[data-pool=available]"),
            row.locator("input[name=add]"),
            row.get_by_role("button", name="Change"),
        ),
    )
