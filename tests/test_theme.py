"""The colour tokens of app.css meet WCAG AA for every pair the stylesheet puts together,
in the light theme and in the dark one (`prefers-color-scheme: dark`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = Path(__file__).resolve().parents[1] / "lmsweb" / "static" / "css" / "app.css"
TEXT, NON_TEXT = 4.5, 3.0  # WCAG 1.4.3 (normal text) and 1.4.11 (focus rings, control borders)

SURFACES = ("bg", "surface", "surface-2")
# (foreground, background, minimum, where the stylesheet uses the pair)
PAIRS = [
    *((fg, bg, TEXT, "body text") for fg in ("text", "muted") for bg in SURFACES),
    *((fg, bg, TEXT, "links") for fg in ("primary", "primary-hover") for bg in SURFACES),
    ("on-primary", "primary", TEXT, "primary buttons, brand mark"),
    ("on-primary", "primary-hover", TEXT, "primary buttons on hover"),
    ("on-danger", "danger", TEXT, "danger buttons"),
    ("info", "info-bg", TEXT, "current navigation entry, role and progress badges"),
    ("ok", "ok-bg", TEXT, "completed badges"),
    ("danger", "danger-bg", TEXT, "overdue and failed badges"),
    ("muted", "surface-2", TEXT, "archived badges, table headings"),
    *((s, bg, TEXT, "status icons, errors") for s in ("ok", "warn", "danger") for bg in SURFACES),
    *(("text", bg, TEXT, "alerts") for bg in ("danger-bg", "warn-bg", "info-bg", "ok-bg")),
    ("bg", "text", TEXT, "toasts"),
    *(("focus", bg, NON_TEXT, "focus ring") for bg in (*SURFACES, "info-bg")),
    *(("control-border", bg, NON_TEXT, "form control borders") for bg in SURFACES),
    ("primary", "surface", NON_TEXT, "checkbox and radio accent"),
]


def tokens(scheme: str) -> dict[str, str]:
    """The `--lms-*` colours of a scheme: the light `:root`, overridden by the dark block."""
    css = CSS.read_text()
    light = re.search(r":root\s*{(.*?)}", css, re.S)
    dark = re.search(r"prefers-color-scheme:\s*dark\)\s*{\s*:root\s*{(.*?)}", css, re.S)
    assert light and dark
    found = {}
    for block in [light.group(1)] + ([dark.group(1)] if scheme == "dark" else []):
        found.update(re.findall(r"--lms-([\w-]+):\s*(#[0-9a-fA-F]{6})\b", block))
    return found


def luminance(colour: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(int(colour[i : i + 2], 16) / 255) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_formula_matches_known_values():
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_token_pair_meets_wcag_aa(scheme):
    colours = tokens(scheme)
    failures = []
    for fg, bg, minimum, where in PAIRS:
        assert fg in colours and bg in colours, f"--lms-{fg} or --lms-{bg} is not a token"
        ratio = contrast(colours[fg], colours[bg])
        if ratio < minimum:
            failures.append(
                f"--lms-{fg} {colours[fg]} on --lms-{bg} {colours[bg]}: {ratio:.2f} < "
                f"{minimum} ({where})"
            )
    assert not failures, f"{scheme} theme:\n" + "\n".join(failures)
