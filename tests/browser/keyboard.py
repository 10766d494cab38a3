"""Helpers for keyboard-only browser tests: Tab / Shift+Tab / Enter / Escape, moving focus to
an element by tabbing, and asserting that the focused element shows where focus is."""

from __future__ import annotations

import re

MAX_TABS = 400

# What the focused element is, and whether it is visibly marked (outline or box-shadow).
_FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
  const shadow = style.boxShadow && style.boxShadow !== "none";
  const name = (el.getAttribute("aria-label") || el.innerText || el.value || el.name || "")
    .trim().slice(0, 60);
  return {tag: el.tagName.toLowerCase(), id: el.id, name: name, type: el.type || "",
          visible: outline || shadow, outline: style.outlineStyle + " " + style.outlineWidth,
          html: el.outerHTML.slice(0, 160)};
}"""


def tab(page, times: int = 1) -> None:
    for _ in range(times):
        page.keyboard.press("Tab")


def shift_tab(page, times: int = 1) -> None:
    for _ in range(times):
        page.keyboard.press("Shift+Tab")


def enter(page) -> None:
    page.keyboard.press("Enter")


def escape(page) -> None:
    page.keyboard.press("Escape")


def focused(page) -> dict | None:
    """The focused element (tag, id, name, type, html, visible), or None for the body."""
    return page.evaluate(_FOCUSED)


def assert_focus_visible(page) -> dict:
    """Something other than the body has focus, and it is visibly marked."""
    info = focused(page)
    assert info is not None, "focus is on the page body, not on a control"
    assert info["visible"], f"no visible focus indicator ({info['outline']}) on {info['html']}"
    return info


def is_focused(locator) -> bool:
    return locator.evaluate(
        "el => el === document.activeElement || el.contains(document.activeElement)"
    )


def tab_to(page, locator, *, backwards: bool = False, check_visible: bool = True) -> int:
    """Press Tab (or Shift+Tab) until `locator` has focus (unless it has already), asserting
    a visible focus indicator on every stop; the number of presses. Fails if never reached."""
    target = locator.first
    target.wait_for(state="visible")
    if is_focused(target):
        return 0
    for n in range(1, MAX_TABS + 1):
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
        if check_visible and focused(page) is not None:
            assert_focus_visible(page)
        if is_focused(target):
            return n
    raise AssertionError(f"{target} never received focus after {MAX_TABS} presses of Tab")


def tab_through(page, limit: int = MAX_TABS) -> list[dict]:
    """Tab through the whole page once from the top, asserting visible focus on every stop;
    the stops in order."""
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); }")
    stops: list[dict] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        info = focused(page)
        if info is None or (stops and info["html"] == stops[0]["html"]):
            break  # wrapped around to the browser chrome or the first stop
        assert info["visible"], f"no visible focus indicator ({info['outline']}) on {info['html']}"
        stops.append(info)
    return stops


def named(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.I)
