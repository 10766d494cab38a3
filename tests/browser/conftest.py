"""Browser tests: Playwright driving Debian's Chromium against a live server thread.

Without Chromium (CHROMIUM_PATH, else `chromium` on PATH, else /usr/bin/chromium) they are
skipped with one reason; in CI (CI=true) a missing browser stops the run instead."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
REQUIRED = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def pytest_collection_modifyitems(config, items):
    """Skip (or, in CI, fail) before any fixture runs: the session-wide browser fixture
    would otherwise try to launch the missing executable and error out every test."""
    if os.path.exists(CHROMIUM):
        return
    message = f"Chromium not found at {CHROMIUM}"
    here = Path(__file__).parent
    browser_items = [item for item in items if here in Path(str(item.path)).parents]
    if REQUIRED and browser_items:
        raise pytest.UsageError(f"{message}: browser tests are mandatory in CI")
    reason = (
        f"{message}: browser tests skipped (`make test` installs it as root where apt-get "
        "exists; else apt-get install -y chromium)"
    )
    for item in browser_items:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    }


@pytest.fixture
def live_server(app):
    """Serve the test app on a free loopback port in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)
    server.server_close()
    # Requests still being answered (a poll, a fetch the page made as it closed) finish
    # before the app's engine is disposed: a connection they held would otherwise be left
    # open, and its garbage collection fail a later test (ResourceWarning).
    deadline = time.monotonic() + 2  # an idle keep-alive connection holds none: not awaited
    for handler in threading.enumerate():
        if "process_request_thread" in handler.name:  # socketserver's thread per request
            handler.join(timeout=max(deadline - time.monotonic(), 0))


def screenshot(page, name: str) -> None:
    """Save a screenshot for the README (docs/screenshots), kept current by the tests."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


def sign_in(page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    # Signed in once the browser has left the sign-in page and the next page's scripts have
    # run: a test acting at once otherwise met the sign-in page still, or a page whose
    # app.js did not listen yet (the busy-bar test waited 30 s for a class never added).
    page.wait_for_url(lambda url: "/login" not in url)
    page.wait_for_load_state("domcontentloaded")


def open_menu_item(page, user, name: str) -> None:
    """Open a Users row's "More" menu and choose the item `name` (as a person clicks)."""
    from playwright.sync_api import expect

    page.locator(f"#more-{user.id}").click()
    menu = page.get_by_role("list", name=f"Actions for {user.name}")
    expect(menu).to_be_visible()
    menu.get_by_role("link", name=re.compile(f"^{re.escape(name)}\\b")).click()
