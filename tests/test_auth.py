"""Sign-in, sign-out, headers and the rendering helper."""

from __future__ import annotations

from lmsweb.models import User
from tests.conftest import HX, PASSWORD, csrf_from, get, login


def test_sign_in_lands_admin_on_users_and_learner_on_training(app, admin, learner):
    a, b = app.test_client(), app.test_client()
    assert login(a, admin.email).headers["Location"] == "/admin/users"
    assert login(b, learner.email).headers["Location"] == "/my/training"
    assert a.get("/admin/users").status_code == 200
    assert b.get("/admin/users").status_code == 403


def test_wrong_password_and_unknown_email_get_the_same_answer(client, admin):
    token = csrf_from(client.get("/login").text)
    wrong = client.post(
        "/login", data={"email": admin.email, "password": "nope-nope", "csrf_token": token}
    )
    unknown = client.post(
        "/login", data={"email": "nobody@example.com", "password": "nope-nope", "csrf_token": token}
    )
    assert wrong.status_code == unknown.status_code == 422
    message = "That email and password do not match an active account."
    assert message in wrong.text and message in unknown.text
    assert client.get("/admin/users").status_code == 303


def test_email_is_matched_case_insensitively(app, make):
    user = make.learner(email="Mixed.Case@Example.com")
    client = app.test_client()
    assert login(client, "mixed.case@example.COM").status_code == 303
    assert get(app, User, user.id).last_login_at is not None


def test_archived_and_pending_users_cannot_sign_in(app, make, client):
    archived = make.learner(status="archived")
    pending = make.user(status="pending")  # no password yet
    token = csrf_from(client.get("/login").text)
    for user in (archived, pending):
        r = client.post(
            "/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token}
        )
        assert r.status_code == 422


def test_next_is_followed_only_within_the_site(app, admin):
    client = app.test_client()
    token = csrf_from(client.get("/login").text)
    data = {"email": admin.email, "password": PASSWORD, "csrf_token": token}
    r = client.post("/login?next=https://evil.example/x", data=data)
    assert r.headers["Location"] == "/admin/users"
    client = app.test_client()
    token = csrf_from(client.get("/login").text)
    r = client.post("/login?next=/admin/users?status=archived", data={**data, "csrf_token": token})
    assert r.headers["Location"] == "/admin/users?status=archived"


def test_sign_out_ends_the_session_and_copies_of_its_cookie(app, admin):
    client = app.test_client()
    login(client, admin.email)
    stolen = client.get_cookie("lmsweb_session").value
    r = client.post("/logout")
    assert r.status_code == 303
    assert client.get("/admin/users").status_code == 303
    replay = app.test_client()
    replay.set_cookie("lmsweb_session", stolen)
    assert replay.get("/admin/users").status_code == 303


def test_logout_needs_post_and_csrf(admin_client):
    assert admin_client.get("/logout").status_code == 405
    admin_client.csrf_token, saved = None, admin_client.csrf_token
    assert admin_client.post("/logout").status_code == 400
    admin_client.csrf_token = saved
    assert admin_client.get("/admin/users").status_code == 200


def test_unauthenticated_htmx_request_gets_hx_redirect_not_302(client):
    r = client.get("/admin/users", headers=HX)
    assert r.status_code == 401
    assert r.headers["HX-Redirect"] == "/login"


def test_security_headers(admin_client, client):
    for response in (client.get("/login"), admin_client.get("/admin/users")):
        csp = response.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "object-src 'none'" in csp and "frame-ancestors 'self'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"]
        assert response.headers["Cache-Control"] == "no-store"
    page = admin_client.get("/admin/users").text
    assert "<script>" not in page and " style=" not in page and "onclick" not in page


def test_one_url_two_renderings(admin_client):
    full = admin_client.get("/admin/users")
    partial = admin_client.get("/admin/users", headers=HX)
    boosted = admin_client.get("/admin/users", headers={**HX, "HX-Boosted": "true"})
    restore = admin_client.get("/admin/users", headers={**HX, "HX-History-Restore-Request": "true"})
    assert "<html" in full.text and "<html" not in partial.text
    assert "<html" in boosted.text and "<html" in restore.text
    for r in (full, partial, boosted, restore):
        assert "HX-Request" in r.headers["Vary"]
    assert 'id="users-table"' in partial.text


def test_healthz_is_public(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json == {"status": "ok"}


def test_unknown_page_is_a_friendly_404(admin_client):
    r = admin_client.get("/admin/nothing-here")
    assert r.status_code == 404 and "does not exist" in r.text
