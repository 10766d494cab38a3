"""Sign-in is throttled per account and per address; 429 with a message."""

from __future__ import annotations

import uuid

import pytest

from lmsweb import create_app
from tests.conftest import BASE_CONFIG, HX, PASSWORD, csrf_from


@pytest.fixture
def app_config():
    return {"LOGIN_ATTEMPTS": "3 per 15 minutes", "LOGIN_ATTEMPTS_PER_ADDRESS": "5 per hour"}


WRONG = "wrong password"


def _attempt(client, email, password=WRONG, address="192.0.2.10", headers=None):
    environ = {"REMOTE_ADDR": address}
    token = csrf_from(client.get("/login", environ_base=environ).text)
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token},
        environ_base=environ,
        headers=headers or {},
    )


def test_account_is_throttled_after_the_configured_failures(app, learner):
    client = app.test_client()
    for _ in range(3):
        assert _attempt(client, learner.email).status_code == 422
    blocked = _attempt(client, learner.email, password=PASSWORD)
    assert blocked.status_code == 429
    assert "Too many failed sign-in attempts" in blocked.text
    # The account is blocked from any address, not just this one.
    assert _attempt(app.test_client(), learner.email, PASSWORD, "192.0.2.99").status_code == 429


def test_account_counter_ignores_case_and_spaces(app, learner):
    client = app.test_client()
    for variant in (learner.email.upper(), f" {learner.email} ", learner.email):
        _attempt(client, variant)
    assert _attempt(client, learner.email, PASSWORD).status_code == 429


def test_address_is_throttled_across_accounts(app, make):
    victim = make.learner(email="victim@example.com")
    client = app.test_client()
    for n in range(5):
        assert _attempt(client, f"guess{n}@example.com").status_code == 422
    assert _attempt(client, victim.email, PASSWORD).status_code == 429
    # Another address still gets in.
    assert _attempt(app.test_client(), victim.email, PASSWORD, "198.51.100.7").status_code == 303


def test_success_clears_the_account_counter(app, learner):
    client = app.test_client()
    for _ in range(2):
        _attempt(client, learner.email)
    assert _attempt(client, learner.email, PASSWORD).status_code == 303
    client.post("/logout", headers={"X-CSRFToken": csrf_from(client.get("/my/training").text)})
    for _ in range(2):
        assert _attempt(client, learner.email).status_code == 422
    assert _attempt(client, learner.email, PASSWORD).status_code == 303


def test_htmx_gets_a_plain_text_429(app, learner):
    client = app.test_client()
    for _ in range(3):
        _attempt(client, learner.email)
    r = _attempt(client, learner.email, headers=HX)
    assert r.status_code == 429
    assert r.mimetype == "text/plain"
    assert "Too many" in r.text


def test_each_app_has_its_own_counters(app, learner, database_url):
    client = app.test_client()
    for _ in range(3):
        _attempt(client, learner.email)
    assert _attempt(client, learner.email, PASSWORD).status_code == 429
    other = create_app(
        {**BASE_CONFIG, "SQLALCHEMY_DATABASE_URI": database_url, "LOGIN_ATTEMPTS": "3/minute"}
    )
    assert _attempt(other.test_client(), learner.email, PASSWORD).status_code == 303
    with other.app_context():
        from lmsweb.extensions import db

        db.session.remove()
        db.engine.dispose()


def test_apps_sharing_a_redis_store_count_attempts_together(database_url, make):
    """Two workers (two apps, two limiters) with the README's Redis store: the failures of
    both count against one limit, so the configured limit is the real one."""
    config = {
        **BASE_CONFIG,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379",
        "LOGIN_ATTEMPTS": "3 per 15 minutes",
    }
    first, second = create_app(config), create_app(config)
    # Other test runs share this Redis: an account and address of this test's own.
    tag = uuid.uuid4().hex[:12]
    learner = make.learner(email=f"shared-{tag}@example.com")
    address = f"198.51.{int(tag[:2], 16)}.{int(tag[2:4], 16)}"
    assert _attempt(first.test_client(), learner.email, address=address).status_code == 422
    assert _attempt(first.test_client(), learner.email, address=address).status_code == 422
    assert _attempt(second.test_client(), learner.email, address=address).status_code == 422
    blocked = _attempt(second.test_client(), learner.email, PASSWORD, address)
    assert blocked.status_code == 429
    assert _attempt(first.test_client(), learner.email, PASSWORD, address).status_code == 429
    for app in (first, second):
        with app.app_context():
            from lmsweb.extensions import db

            db.session.remove()
            db.engine.dispose()
