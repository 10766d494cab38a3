"""axe-core on every page, every dialog and after htmx swaps: no serious or critical violations.

The pages come from the app's routes (tests/a11y_support.py), so a new page is checked
without being added here; a new page with URL arguments needs a sample there. Admin pages
are checked as an administrator, learner pages as a learner, public pages anonymously.
On every page each kind of dialog opener (`[data-hx-target="#dialog-root"]`) is clicked and
the open dialog checked; htmx links and row actions are followed and the swapped result
checked. The light theme runs at a desktop width, the dark theme in a 360 px portal column."""

from __future__ import annotations

import pytest
from flask import Blueprint, render_template_string

from tests.a11y_support import ERROR_PAGES, page_list, seed_pages
from tests.browser.a11y import (
    DIALOG_OPENER,
    HTMX_PROBE,
    axe_violations,
    close_dialog,
    distinct,
    open_dialog,
    requests_done,
    wait_for_htmx,
)
from tests.browser.conftest import screenshot, sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

# htmx GETs a click starts that swap part of a page (pager, sort, chips), not dialogs; forms
# and search boxes are triggered by typing or change, not by a click.
SWAP_LINKS = ", ".join(
    f'main {tag}[data-hx-get]:not([data-hx-target="#dialog-root"])' for tag in ("a", "button")
)
# Row actions that POST and swap the row (approve, notify, restore, seats, ...): a button,
# or a form whose submit button is clicked.
ROW_ACTIONS = "main tbody [data-hx-post]"
# Screenshots for the README of the dark theme in a portal column (docs/screenshots).
DARK_SCREENSHOTS = {"users.index": "users-dark-360px", "learner.training": "my-training-dark-360px"}


# Links that open their page as a dialog through app.js (the Users rows' actions).
DIALOG_LINK = "a[data-dialog]"
# "More" menus, whose items load when one opens.
MENU = "details[data-menu] > summary"


def check_dialogs(page, where: str) -> list[str]:
    problems = []
    for selector, attribute in ((DIALOG_OPENER, "data-hx-get"), (DIALOG_LINK, "href")):
        for key, n in distinct(page, selector, attribute):
            try:
                open_dialog(page, page.locator(selector).nth(int(n)))
            except Exception as exc:  # noqa: BLE001 - report, then check the other dialogs
                problems.append(f"{where}: dialog {key} did not open: {exc}")
                page.reload()
                continue
            problems += axe_violations(page, f"{where} dialog {key}")
            close_dialog(page)
    menus = page.locator(MENU)
    if menus.count():
        before = requests_done(page)
        menus.first.click()
        wait_for_htmx(page, before)
        problems += axe_violations(page, f"{where} with a More menu open")
        page.keyboard.press("Escape")
    return problems


def check_swaps(page, url: str, where: str) -> list[str]:
    problems = []
    for selector, attribute in ((SWAP_LINKS, "data-hx-get"), (ROW_ACTIONS, "data-hx-post")):
        for key, n in distinct(page, selector, attribute, limit=6):
            before = requests_done(page)
            target = page.locator(selector).nth(int(n))
            if target.evaluate("element => element.tagName") == "FORM":
                if not target.evaluate("form => form.checkValidity()"):
                    continue  # the browser would not send it (an empty required field)
                target = target.locator("button[type=submit], button:not([type])").first
            target.click()
            wait_for_htmx(page, before)
            page.wait_for_load_state()  # an HX-Redirect answer loads another page
            problems += axe_violations(page, f"{where} after htmx {key}")
            page.goto(url)
    return problems


@pytest.mark.parametrize(
    ("scheme", "width"), [("light", 1280), ("dark", 360)], ids=["light-desktop", "dark-360px"]
)
def test_no_serious_axe_violations_on_any_page_or_dialog(
    browser, live_server, app, make, scheme, width
):
    seeds = seed_pages(app, make)
    pages = page_list(app, seeds, ERROR_PAGES)
    problems: list[str] = []
    checked = 0
    for who, email in (("anonymous", None), ("learner", seeds.learner_email), ("admin", None)):
        email = seeds.admin_email if who == "admin" else email
        context = browser.new_context(color_scheme=scheme, viewport={"width": width, "height": 800})
        context.add_init_script(HTMX_PROBE)
        page = context.new_page()
        page.on("dialog", lambda d: d.accept())  # hx-confirm
        if email:
            sign_in(page, live_server, email, PASSWORD)
            page.wait_for_url(lambda url: "/login" not in url)
        for check in (p for p in pages if p.audience == who):
            url = f"{live_server}{check.url}"
            response = page.goto(url)
            if response is None or response.status != check.status:
                status = response.status if response else "no response"
                problems.append(f"{check}: status {status}, expected {check.status}")
                continue
            where = f"{check} [{scheme}, {width}px]"
            problems += axe_violations(page, where)
            if scheme == "dark" and check.endpoint in DARK_SCREENSHOTS:
                screenshot(page, DARK_SCREENSHOTS[check.endpoint])
            problems += check_dialogs(page, where)
            problems += check_swaps(page, url, where)
            checked += 1
        context.close()
    assert checked >= 5
    assert not problems, f"{len(problems)} accessibility problems:\n\n" + "\n\n".join(problems)


PROBE_PAGE = """{% extends "base.html" %}{% block content %}<h1>Probe</h1>
<button type="button" id="probe-open" class="btn" data-hx-get="/admin/a11y-probe/dialog"
  data-hx-target="#dialog-root">Open the dialog</button>
<button type="button" class="btn" data-hx-get="/admin/a11y-probe/swap"
  data-hx-target="#probe-out">Load more</button>
<div id="probe-out"></div>{% endblock %}"""


def test_the_checks_look_inside_open_dialogs_and_swapped_content(browser, live_server, app, make):
    """The checks are only as good as what they reach: a flaw that shows only in an open
    dialog, or only after an htmx swap, is reported."""
    probe = Blueprint("a11y_probe", __name__, url_prefix="/admin/a11y-probe")
    probe.add_url_rule("", "page", lambda: render_template_string(PROBE_PAGE))
    probe.add_url_rule(
        "/dialog",
        "dialog",
        lambda: (
            '<dialog aria-labelledby="probe-title"><h2 id="probe-title">Probe</h2>'
            '<input type="text" name="unlabelled"></dialog>'
        ),
    )
    probe.add_url_rule("/swap", "swap", lambda: '<img src="/static/favicon.svg">')
    app.register_blueprint(probe)
    admin = make.admin()
    context = browser.new_context()
    context.add_init_script(HTMX_PROBE)
    page = context.new_page()
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server}/admin/a11y-probe")
    assert axe_violations(page, "probe") == []
    in_dialog = check_dialogs(page, "probe")
    after_swap = check_swaps(page, f"{live_server}/admin/a11y-probe", "probe")
    context.close()
    assert len(in_dialog) == 1 and "label" in in_dialog[0], in_dialog
    assert len(after_swap) == 1 and "image-alt" in after_swap[0], after_swap
