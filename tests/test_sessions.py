"""Sessions end on sign-out, password, role and archive changes, and after idle and
absolute time limits, for every copy of the cookie."""

from __future__ import annotations

import time

from lmsweb import lifecycle
from lmsweb.extensions import db
from lmsweb.models import User
from lmsweb.tokens import make_token
from tests.conftest import PASSWORD, csrf_from, get, login


def _copy_of(app, client):
    """A second client carrying a copy of `client`'s session cookie (a stolen cookie)."""
    copy = app.test_client()
    copy.set_cookie("lmsweb_session", client.get_cookie("lmsweb_session").value)
    return copy


def _signed_in(client) -> bool:
    return client.get("/my/training").status_code == 200


def test_a_cookie_copied_before_sign_out_no_longer_works(app, learner):
    client = app.test_client()
    login(client, learner.email)
    copy = _copy_of(app, client)
    assert _signed_in(copy)
    client.post("/logout")
    assert not _signed_in(client)
    assert not _signed_in(copy)


def test_password_change_ends_other_sessions_but_keeps_the_new_one(app, learner):
    other = app.test_client()
    login(other, learner.email)
    with app.app_context():
        token = make_token(db.session.get(User, learner.id), "reset")
    resetter = app.test_client()
    page = resetter.get(f"/reset/{token}")
    r = resetter.post(
        f"/reset/{token}",
        data={
            "password": "a brand new passphrase",
            "password_confirm": "a brand new passphrase",
            "csrf_token": csrf_from(page.text),
        },
    )
    assert r.status_code == 303
    assert _signed_in(resetter)
    assert not _signed_in(other)


def test_any_change_of_password_hash_ends_sessions(app, learner):
    """Whatever code path changes the password, older sessions end (a flush hook)."""
    client = app.test_client()
    login(client, learner.email)
    with app.app_context():
        db.session.get(User, learner.id).password_hash = "changed-elsewhere"
        db.session.commit()
    assert not _signed_in(client)


def test_role_change_ends_sessions(app, make):
    admin = make.admin(email="demoted@example.com")
    client = app.test_client()
    login(client, admin.email)
    assert client.get("/admin/users").status_code == 200
    with app.app_context():
        db.session.get(User, admin.id).role = "learner"
        db.session.commit()
    assert client.get("/admin/users").status_code == 303
    login(client, admin.email)
    assert client.get("/admin/users").status_code == 403


def test_archive_ends_sessions(app, learner):
    client = app.test_client()
    login(client, learner.email)
    with app.app_context():
        lifecycle.archive(db.session.get(User, learner.id), "user")
        db.session.commit()
    assert not _signed_in(client)


def test_unrelated_changes_keep_the_session(app, learner):
    client = app.test_client()
    login(client, learner.email)
    version = get(app, User, learner.id).session_version
    with app.app_context():
        db.session.get(User, learner.id).first_name = "Renamed"
        db.session.commit()
    assert _signed_in(client)
    assert get(app, User, learner.id).session_version == version


def test_idle_timeout(app, learner):
    client = app.test_client()
    login(client, learner.email)
    idle = app.config["SESSION_IDLE_MINUTES"] * 60
    with client.session_transaction() as session:
        session["seen_at"] = int(time.time()) - idle + 120
    assert _signed_in(client)  # activity within the limit keeps it, and moves it on
    with client.session_transaction() as session:
        assert session["seen_at"] >= int(time.time()) - 60
        session["seen_at"] = int(time.time()) - idle - 1
    r = client.get("/my/training")
    assert r.status_code == 303 and "/login" in r.headers["Location"]
    assert "inactivity" in client.get("/login").text


def test_the_cookie_is_written_when_the_idle_clock_moves_not_on_every_request(app, learner):
    client = app.test_client()
    login(client, learner.email)
    client.get("/my/training")  # the first page after sign-in may still set the cookie
    r = client.get("/my/training")
    assert r.status_code == 200 and "Set-Cookie" not in r.headers
    with client.session_transaction() as session:
        session["seen_at"] = int(time.time()) - 61
    r = client.get("/my/training")
    assert r.status_code == 200 and "lmsweb_session=" in r.headers["Set-Cookie"]
    with client.session_transaction() as session:
        assert session["seen_at"] >= int(time.time()) - 5


def test_absolute_timeout_even_when_active(app, learner):
    client = app.test_client()
    login(client, learner.email)
    lifetime = int(app.config["PERMANENT_SESSION_LIFETIME"].total_seconds())
    with client.session_transaction() as session:
        session["signed_in_at"] = int(time.time()) - lifetime - 1
    assert not _signed_in(client)
    assert "time limit" in client.get("/login").text
    login(client, learner.email, PASSWORD)
    assert _signed_in(client)


def test_a_session_without_its_sign_in_time_is_not_accepted(app, learner):
    client = app.test_client()
    login(client, learner.email)
    with client.session_transaction() as session:
        del session["signed_in_at"]
    assert not _signed_in(client)


def test_session_cookie_flags(app, learner):
    client = app.test_client()
    response = client.get("/login")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
