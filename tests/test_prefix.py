"""Mounted under a URL prefix (a reverse proxy's sub-path) and behind proxies."""

from __future__ import annotations

import re
from html import unescape

import pytest

from lmsweb.models import AuditEvent
from tests.conftest import HX, PASSWORD, count, csrf_from

P = "/training"


@pytest.fixture
def app_config():
    return {"URL_PREFIX": "training/"}


def _sign_in(client, email, next_path=None):
    url = f"{P}/login" + (f"?next={next_path}" if next_path else "")
    token = csrf_from(client.get(url).text)
    r = client.post(url, data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 303, r.text
    client.csrf_token = csrf_from(client.get(f"{P}/my/training").text)
    return r


def _local_urls(html: str) -> list[str]:
    """Every same-site URL a page links to, posts to or has htmx request."""
    urls = re.findall(r'(?:href|src|action|data-hx-(?:get|post))="(/[^"]*)"', html)
    return [u for u in urls if not u.startswith("//")]


def test_pages_link_only_inside_the_prefix(app, admin):
    client = app.test_client()
    login_page = client.get(f"{P}/login")
    assert login_page.status_code == 200
    assert all(u.startswith(P + "/") for u in _local_urls(login_page.text))
    r = _sign_in(client, admin.email)
    assert r.headers["Location"] == f"{P}/admin/users"
    for path in ("/admin/users", "/admin/audit", "/my/training"):
        page = client.get(P + path)
        assert page.status_code == 200, path
        urls = _local_urls(page.text)
        assert urls, path
        assert [u for u in urls if not u.startswith(P + "/")] == [], path
    with client.get(f"{P}/static/js/embed.js") as script:
        assert script.status_code == 200


def test_outside_the_prefix_is_not_found(app):
    assert app.test_client().get("/login").status_code == 404


def test_redirects_keep_the_prefix(app, admin):
    client = app.test_client()
    r = client.get(f"{P}/admin/audit?action=x")
    assert r.status_code == 303
    assert r.headers["Location"].startswith(f"{P}/login?next=")
    hx = client.get(f"{P}/admin/audit", headers=HX)
    assert hx.status_code == 401 and hx.headers["HX-Redirect"] == f"{P}/login"
    # `next` is a path inside the app; the redirect after sign-in adds the prefix.
    r = _sign_in(client, admin.email, next_path="/admin/audit")
    assert r.headers["Location"] == f"{P}/admin/audit"
    r = client.post(f"{P}/logout")
    assert r.status_code == 303 and r.headers["Location"] == f"{P}/login"


def test_acts_under_the_prefix(app, admin):
    """An action through the prefix: the audit export (a GET) and sign-out (a POST)."""
    client = app.test_client()
    _sign_in(client, admin.email)
    page = client.get(f"{P}/admin/audit")
    export = re.search(r'id="audit-export" href="([^"]+)"', page.text).group(1)
    assert export.startswith(f"{P}/admin/audit/export.xlsx")
    with client.get(export) as download:
        assert download.status_code == 200
        assert download.data.startswith(b"PK")
    assert count(app, AuditEvent, AuditEvent.action == "audit.export") == 1
    partial = client.get(f"{P}/admin/audit?action=audit.export", headers=HX)
    assert "<html" not in partial.text and 'id="audit-table"' in partial.text


def _row_next(html: str) -> str:
    """The `next` the rows' actions carry (the filtered list to go back to): they post
    through the table's one #row-post form."""
    form = re.search(r'<form id="row-post".*?</form>', html, re.S).group(0)
    return unescape(re.search(r'name="next" value="([^"]*)"', form).group(1))


def test_a_row_action_after_an_htmx_save_stays_inside_the_prefix(app, admin, make):
    user = make.user(status="pending")
    client = app.test_client()
    _sign_in(client, admin.email)
    listing = client.get(f"{P}/admin/users?status=pending")
    back = _row_next(listing.text)
    assert back == "/admin/users?status=pending"  # app-relative: the prefix is added on redirect
    saved = client.post(f"{P}/admin/users/{user.id}/approve", data={"next": back}, headers=HX)
    assert saved.status_code == 200
    # The swapped row posts through the same form again: its actions stay inside the prefix.
    assert f'formaction="{P}/admin/users/{user.id}/notify"' in saved.text
    r = client.post(f"{P}/admin/users/{user.id}/notify", data={"next": back})
    assert r.status_code == 303
    assert r.headers["Location"] == f"{P}/admin/users?status=pending"
    assert client.get(r.headers["Location"]).status_code == 200


def _fail_sign_in(client, forwarded_for):
    headers = {"X-Forwarded-For": forwarded_for, "X-Forwarded-Proto": "https"}
    token = csrf_from(client.get(f"{P}/login", headers=headers).text)
    data = {"email": "nobody@example.com", "password": "wrong", "csrf_token": token}
    return client.post(f"{P}/login", data=data, headers=headers).status_code


@pytest.mark.parametrize(
    "app_config",
    [{"URL_PREFIX": "/training", "PROXY_COUNT": 1, "LOGIN_ATTEMPTS_PER_ADDRESS": "2/hour"}],
)
def test_behind_one_proxy_the_forwarded_client_address_counts(app):
    """Two clients behind the same proxy are throttled separately."""
    client = app.test_client()
    assert [_fail_sign_in(client, "203.0.113.9") for _ in range(3)] == [422, 422, 429]
    assert _fail_sign_in(client, "203.0.113.10") == 422


@pytest.mark.parametrize(
    "app_config", [{"URL_PREFIX": "/training", "LOGIN_ATTEMPTS_PER_ADDRESS": "2/hour"}]
)
def test_without_proxy_count_forwarded_headers_are_ignored(app):
    client = app.test_client()
    assert [_fail_sign_in(client, f"203.0.113.{n}") for n in range(3)] == [422, 422, 429]
