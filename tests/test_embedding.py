"""Framing by portals, cross-site cookies, embedded mode and the blocked-cookie fallback."""

from __future__ import annotations

import re

import pytest

from tests.conftest import HX, PASSWORD, csrf_from, login

PORTAL = "https://portal.example.org"


def _directive(response, name):
    csp = response.headers["Content-Security-Policy"]
    for part in csp.split(";"):
        words = part.split()
        if words and words[0] == name:
            return words[1:]
    return None


def test_only_self_may_frame_by_default(client):
    r = client.get("/login")
    assert _directive(r, "frame-ancestors") == ["'self'"]
    assert _directive(r, "object-src") == ["'none'"]
    assert "X-Frame-Options" not in r.headers  # CSP frame-ancestors decides


@pytest.mark.parametrize("app_config", [{"FRAME_ANCESTORS": [PORTAL, "https://intra.example"]}])
def test_listed_portals_may_frame(client):
    assert _directive(client.get("/login"), "frame-ancestors") == [
        "'self'",
        PORTAL,
        "https://intra.example",
    ]


@pytest.mark.parametrize("app_config", [{"CROSS_SITE_COOKIES": True}])
def test_cross_site_cookies_are_samesite_none_secure_partitioned(app, admin):
    client = app.test_client()
    cookie = client.get("/login").headers["Set-Cookie"]
    for attribute in ("SameSite=None", "Secure", "HttpOnly", "Partitioned"):
        assert attribute in cookie
    # CSRF is still enforced: a cross-site POST without the token changes nothing.
    token = csrf_from(client.get("/login").text)
    bad = client.post("/login", data={"email": admin.email, "password": PASSWORD})
    assert bad.status_code == 400
    ok = client.post(
        "/login", data={"email": admin.email, "password": PASSWORD, "csrf_token": token}
    )
    assert ok.status_code == 303
    assert client.post("/logout").status_code == 400  # no token


def test_default_cookies_are_same_site(client):
    cookie = client.get("/login").headers["Set-Cookie"]
    assert "SameSite=Lax" in cookie and "Partitioned" not in cookie


def _chrome(html: str) -> dict[str, bool]:
    """ "nav": the full header's navigation; embedded pages keep a compact one (menu)."""
    return {
        "nav": 'class="app-header"' in html,
        "menu": 'class="embed-bar"' in html and 'aria-label="Main"' in html,
        "footer": "<footer" in html,
        "embed-bar": 'class="embed-bar"' in html,
    }


@pytest.mark.parametrize("app_config", [{"FRAME_ANCESTORS": [PORTAL]}])
def test_embed_parameter_drops_the_chrome_for_the_session(admin_client):
    assert _chrome(admin_client.get("/admin/audit").text)["nav"]
    page = admin_client.get("/admin/audit?embed=1").text
    assert _chrome(page) == {"nav": False, "menu": True, "footer": False, "embed-bar": True}
    # Every admin page stays reachable inside the frame, the Dashboard included.
    assert 'href="/admin/dashboard"' in page and 'aria-controls="main-nav"' in page
    assert "is-embedded" in page
    assert f'<meta name="lms-frame-ancestors" content="{PORTAL}">' in page
    # Remembered for the session, on other pages too.
    assert _chrome(admin_client.get("/my/training").text)["nav"] is False
    # And switched off again.
    assert _chrome(admin_client.get("/my/training?embed=0").text)["nav"] is True


def test_embedded_mode_survives_sign_in(app, admin):
    client = app.test_client()
    client.get("/login?embed=1")
    login(client, admin.email)
    assert _chrome(client.get("/admin/users").text)["nav"] is False


@pytest.mark.parametrize("app_config", [{"EMBED_MODE": True}])
def test_embed_mode_setting(admin_client):
    page = admin_client.get("/admin/users?embed=0").text
    assert _chrome(page)["nav"] is False and _chrome(page)["footer"] is False


def test_no_inline_script_and_embed_script_is_a_file(admin_client):
    page = admin_client.get("/admin/audit?embed=1").text
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts and all('src="' in attrs and body.strip() == "" for attrs, body in scripts)
    assert "js/embed.js" in page
    assert not re.search(r"<[^>]+\son[a-z]+=", page)  # no inline event handlers


def test_embed_script_posts_only_to_listed_origins(app):
    """The script takes its target origins from the page (FRAME_ANCESTORS), never '*'."""
    with app.open_resource("static/js/embed.js") as handle:
        script = handle.read().decode()
    assert '"*"' not in script and "'*'" not in script
    assert "lms-frame-ancestors" in script and "postMessage" in script


def test_blocked_cookie_offers_a_top_level_sign_in(app, admin):
    """In a frame whose cookie the browser blocks, the POST arrives without the session
    that holds the CSRF token: say so and offer a sign-in in a top-level window."""
    token = csrf_from(app.test_client().get("/login?embed=1").text)
    cookieless = app.test_client(use_cookies=False)
    r = cookieless.post(
        "/login?embed=1", data={"email": admin.email, "password": PASSWORD, "csrf_token": token}
    )
    assert r.status_code == 400
    assert 'id="cookie-blocked"' in r.text
    link = re.search(r'href="([^"]+)" target="_blank">Sign in in a new window', r.text)
    assert link and link.group(1).startswith("/login?next=")
    # The top-level window signs in and lands on the "return to the portal" page.
    window = app.test_client()
    login_url = link.group(1).replace("&amp;", "&")
    token = csrf_from(window.get(login_url).text)
    done = window.post(
        login_url, data={"email": admin.email, "password": PASSWORD, "csrf_token": token}
    )
    assert done.status_code == 303 and done.headers["Location"] == "/login/done"
    assert "You are signed in" in window.get("/login/done").text


def test_a_stale_form_elsewhere_gets_the_ordinary_message(admin_client):
    admin_client.csrf_token = None
    r = admin_client.post("/logout", data={})
    assert r.status_code == 400 and "security token" in r.text
    r = admin_client.post("/logout", data={}, headers=HX)
    assert r.mimetype == "text/plain"
