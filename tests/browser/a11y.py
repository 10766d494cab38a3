"""Browser helpers for the accessibility checks: axe-core (bundled with axe-playwright-python,
so offline), waiting for htmx to settle, and opening dialogs."""

from __future__ import annotations

import re

from axe_playwright_python.sync_playwright import Axe

SERIOUS = ("serious", "critical")
DIALOG_OPENER = '[data-hx-get][data-hx-target="#dialog-root"]'
OPEN_DIALOG = "#dialog-root dialog[open]"
# A dialog loses [open] when it closes; its "close" handler (app.js) then removes it and
# returns focus, in a task of its own. Wait for that removal before asserting where focus is.
ANY_DIALOG = "#dialog-root dialog"
# Counts finished htmx requests, so a test can wait for the swap a click started.
HTMX_PROBE = """
window.__lmsDone = 0;
document.addEventListener("htmx:afterRequest", function () { window.__lmsDone += 1; });
"""
_axe = Axe()


def axe_violations(page, where: str) -> list[str]:
    """Serious and critical axe-core violations on the page as it is now, readably."""
    results = _axe.run(page)
    problems = []
    for violation in results.response["violations"]:
        if violation.get("impact") not in SERIOUS:
            continue
        nodes = violation["nodes"]
        lines = [
            f"{where}: [{violation['impact']}] {violation['id']}: {violation['help']} "
            f"({len(nodes)} element{'s' if len(nodes) != 1 else ''}) {violation['helpUrl']}"
        ]
        for node in nodes[:5]:
            summary = (node.get("failureSummary") or "").replace("\n", " ")
            lines.append(f"    {' '.join(map(str, node['target']))}: {summary}")
            lines.append(f"      {node.get('html', '')[:160]}")
        if len(nodes) > 5:
            lines.append(f"    ... and {len(nodes) - 5} more")
        problems.append("\n".join(lines))
    return problems


def requests_done(page) -> int:
    return page.evaluate("window.__lmsDone || 0")


def wait_for_htmx(page, before: int) -> None:
    """Wait until a request started after `before` finished and its swap settled."""
    page.wait_for_function(
        "n => (window.__lmsDone || 0) > n && "
        "!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')",
        arg=before,
    )


def distinct(page, selector: str, attribute: str, limit: int = 10) -> list[tuple[str, str]]:
    """One (key, element id or nth) per distinct attribute value, digits folded: one row's
    'Archive' stands for every row's."""
    seen: dict[str, int] = {}
    elements = page.locator(selector)
    for n in range(elements.count()):
        value = elements.nth(n).get_attribute(attribute) or ""
        key = re.sub(r"\d+", "#", value)
        if key not in seen and elements.nth(n).is_visible():
            seen[key] = n
        if len(seen) >= limit:
            break
    return [(key, str(n)) for key, n in seen.items()]


def open_dialog(page, opener) -> None:
    """Click an opener and wait for its <dialog> to be open."""
    opener.click()
    page.wait_for_selector(OPEN_DIALOG)


def close_dialog(page) -> None:
    page.keyboard.press("Escape")
    wait_closed(page)


def wait_closed(page) -> None:
    """Until the dialog is gone and focus has been returned (not just its [open] removed)."""
    page.wait_for_selector(ANY_DIALOG, state="detached")


def assert_no_serious_violations(page, where: str = "page") -> None:
    problems = axe_violations(page, where)
    assert not problems, "\n\n".join(problems)
