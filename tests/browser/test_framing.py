"""A portal on another origin frames lmsweb: allowed when listed in FRAME_ANCESTORS,
refused when not; with cross-site cookies an administrator signs in, approves a pending
user and works in the frame.

The portal is a second HTTP server on 127.0.0.2 (another loopback address, so another
site than lmsweb's 127.0.0.1): its page is the only place with inline script here."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from lmsweb.models import AuditEvent, User
from tests.conftest import PASSWORD, count, get

pytestmark = pytest.mark.browser

PORTAL_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Intranet portal</title></head>
<body>
<h1>Intranet portal</h1>
<iframe id="lms" title="Training" src="{src}" width="900" height="600"></iframe>
<script>
  window.heights = [];
  window.frameLoads = 0;
  document.getElementById("lms").addEventListener("load", function () {{ window.frameLoads++; }});
  window.addEventListener("message", function (event) {{
    if (event.origin === "{lms_origin}" && event.data && event.data.type === "lmsweb:height") {{
      window.heights.push(event.data.height);
      document.getElementById("lms").height = event.data.height;
    }}
  }});
</script>
</body></html>
"""


@pytest.fixture
def app_config():
    return {"CROSS_SITE_COOKIES": True}


@pytest.fixture
def portal(live_server):
    """Serve the portal page on 127.0.0.2, framing lmsweb's sign-in in embedded mode."""
    html = PORTAL_PAGE.format(src=f"{live_server}/login?embed=1", lms_origin=live_server)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.2", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.2:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_a_listed_portal_frames_lmsweb_and_an_admin_works_inside(
    page, app, live_server, portal, admin, make
):
    app.config["FRAME_ANCESTORS"] = [portal]
    pat = make.user(
        first_name="Pat", last_name="Pending", email="pat.pending@example.com", status="pending"
    )
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(portal)
    frame = page.frame_locator("#lms")
    expect(frame.get_by_role("heading", name="Sign in")).to_be_visible()

    # Sign in inside the frame: a cross-site POST carrying the SameSite=None cookie + CSRF.
    frame.get_by_label("Email").fill(admin.email)
    frame.get_by_label("Password").fill(PASSWORD)
    frame.get_by_role("button", name="Sign in").click()
    expect(frame.get_by_role("heading", level=1)).to_have_text("Users")
    # Embedded mode: no application header or footer; a compact bar whose Menu reaches every
    # page (the Dashboard, where archived records live, included).
    expect(frame.locator(".app-header")).to_have_count(0)
    expect(frame.locator("footer")).to_have_count(0)
    nav = frame.get_by_role("navigation", name="Main")
    dashboard = nav.get_by_role("link", name="Dashboard")
    expect(dashboard).to_be_hidden()
    nav.get_by_role("button", name="Menu").click()
    dashboard.click()
    expect(frame.get_by_role("heading", level=1)).to_contain_text("Dashboard")
    frame.get_by_role("button", name="Menu").click()
    frame.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    expect(frame.get_by_role("heading", level=1)).to_have_text("Users")

    # The height reaches the portal (posted only to the listed origin).
    page.wait_for_function("window.heights.length > 0")

    # Approve the pending user in the frame: an htmx POST carrying the frame's cookie and
    # CSRF header; the row is swapped in place and the database says active.
    row = frame.locator(f"#user-{pat.id}")
    expect(row).to_contain_text("Pending")
    row.get_by_role("button", name="Approve Pat Pending", exact=True).click()
    expect(row.locator(".col-status")).not_to_contain_text("Pending")
    expect(row.get_by_role("button", name="Approve Pat Pending", exact=True)).to_have_count(0)
    assert get(app, User, pat.id).status == "active"
    assert count(app, AuditEvent, AuditEvent.action == "user.approve") == 1

    # The audit log in the frame: an export (an audited administrative action), then an
    # htmx search whose request carries the frame's cookie.
    lms = page.frame(url=lambda url: url.startswith(live_server))
    lms.goto(f"{live_server}/admin/audit")
    expect(frame.get_by_role("heading", level=1)).to_have_text("Audit log")
    with page.expect_download() as download:
        frame.get_by_role("link", name="Export to Excel").click()
    assert download.value.suggested_filename.startswith("audit-log-")
    assert count(app, AuditEvent, AuditEvent.action == "audit.export") == 1
    frame.get_by_label("Action").select_option("")  # nothing changes yet
    frame.get_by_label("Actor").fill("nobody-by-this-name")
    expect(frame.locator("#audit-results")).to_contain_text("No events match")
    frame.get_by_label("Actor").fill("ada.admin")
    expect(frame.locator("#audit-count")).to_have_text("2 events")  # the approval, the export

    # An administrative POST inside the frame: sign out, then sign in again.
    frame.get_by_role("button", name="Sign out").click()
    expect(frame.get_by_role("heading", name="Sign in")).to_be_visible()
    frame.get_by_label("Email").fill(admin.email)
    frame.get_by_label("Password").fill(PASSWORD)
    frame.get_by_role("button", name="Sign in").click()
    expect(frame.get_by_role("heading", level=1)).to_have_text("Users")
    assert errors == [], errors


def test_an_unlisted_portal_is_refused(page, app, portal):
    app.config["FRAME_ANCESTORS"] = []
    page.goto(portal)
    page.wait_for_function("window.frameLoads > 0")
    lms_frames = [f for f in page.frames if f.url.startswith("http://127.0.0.1")]
    assert lms_frames == []  # Chromium replaced the framed page with its error page
    expect(page.frame_locator("#lms").get_by_role("heading", name="Sign in")).to_have_count(0)


@pytest.mark.parametrize("app_config", [{"CROSS_SITE_COOKIES": False}])
def test_without_cross_site_cookies_the_frame_offers_a_top_level_sign_in(
    page, app, live_server, portal, admin
):
    """SameSite=Lax cookies never reach a cross-site frame: the sign-in says so and offers
    a top-level window instead of failing silently."""
    app.config["FRAME_ANCESTORS"] = [portal]
    page.goto(portal)
    frame = page.frame_locator("#lms")
    frame.get_by_label("Email").fill(admin.email)
    frame.get_by_label("Password").fill(PASSWORD)
    frame.get_by_role("button", name="Sign in").click()
    expect(frame.locator("#cookie-blocked")).to_contain_text("did not keep the sign-in cookie")
    with page.expect_popup() as popup_info:
        frame.get_by_role("link", name="Sign in in a new window").click()
    popup = popup_info.value
    expect(popup).to_have_url(f"{live_server}/login?next=/login/done")
    popup.get_by_label("Email").fill(admin.email)
    popup.get_by_label("Password").fill(PASSWORD)
    popup.get_by_role("button", name="Sign in").click()
    expect(popup.get_by_role("heading", level=1)).to_have_text("You are signed in")
