"""Portal sign-in by a trusted proxy's header: only when enabled, only from the proxy."""

from __future__ import annotations

import pytest

from lmsweb.models import AuditEvent, User
from tests.conftest import count

PROXY = "10.0.0.5"


TRUSTED = {"TRUSTED_HEADER_AUTH": True, "TRUSTED_PROXIES": [PROXY, "10.1.0.0/16"]}


@pytest.fixture
def app_config():
    return TRUSTED


def _get(client, email, peer=PROXY, path="/my/training", headers=None):
    return client.get(
        path,
        headers={"X-Remote-User": email, **(headers or {})},
        environ_base={"REMOTE_ADDR": peer},
    )


def test_the_trusted_proxy_signs_the_user_in(app, learner):
    client = app.test_client()
    r = _get(client, learner.email)
    assert r.status_code == 200
    assert "Lee Learner" in r.text
    # The session then stands on its own, like a password sign-in.
    assert client.get("/my/training", environ_base={"REMOTE_ADDR": PROXY}).status_code == 200


def test_a_proxy_inside_a_trusted_network_is_trusted(app, learner):
    assert _get(app.test_client(), learner.email.upper(), peer="10.1.2.3").status_code == 200


def test_a_forged_header_from_elsewhere_is_ignored(app, admin):
    r = _get(app.test_client(), admin.email, peer="192.0.2.66", path="/admin/users")
    assert r.status_code == 303 and "/login" in r.headers["Location"]


@pytest.mark.parametrize("app_config", [{**TRUSTED, "PROXY_COUNT": 1}])
def test_forwarded_for_cannot_impersonate_the_proxy(app, admin):
    """With PROXY_COUNT the client address comes from X-Forwarded-For; trust is decided on
    the connection's own peer, which a client cannot forge."""
    r = _get(
        app.test_client(),
        admin.email,
        peer="192.0.2.66",
        path="/admin/users",
        headers={"X-Forwarded-For": PROXY},
    )
    assert r.status_code == 303
    # Through the real proxy, the forwarded client address does not matter.
    r = _get(app.test_client(), admin.email, headers={"X-Forwarded-For": "192.0.2.66"})
    assert r.status_code == 200


def test_off_by_default_even_from_the_proxy(app, learner):
    app.config["TRUSTED_HEADER_AUTH"] = False
    r = _get(app.test_client(), learner.email)
    assert r.status_code == 303


def test_unknown_users_are_refused_and_not_created(app):
    r = _get(app.test_client(), "stranger@example.com")
    assert r.status_code == 403
    assert "no training account" in r.text
    assert count(app, User, User.email == "stranger@example.com") == 0


def test_unknown_users_become_pending_learners_when_configured(app):
    app.config["TRUSTED_HEADER_CREATE_USERS"] = True
    r = _get(app.test_client(), "new.person@example.com")
    assert r.status_code == 403
    assert "approve" in r.text
    assert count(app, User, User.email == "new.person@example.com", User.status == "pending") == 1
    assert count(app, AuditEvent, AuditEvent.action == "user.sso_request") == 1
    # A second visit does not create a second account.
    assert _get(app.test_client(), "new.person@example.com").status_code == 403
    assert count(app, User, User.email == "new.person@example.com") == 1


def test_pending_and_archived_users_are_refused(app, make):
    pending = make.user(status="pending", email="waiting@example.com")
    archived = make.learner(status="archived", email="gone@example.com")
    assert _get(app.test_client(), pending.email).status_code == 403
    assert _get(app.test_client(), archived.email).status_code == 403


def test_the_header_switches_to_the_user_the_portal_names(app, admin, learner):
    client = app.test_client()
    assert _get(client, admin.email, path="/admin/users").status_code == 200
    assert _get(client, learner.email, path="/admin/users").status_code == 403


def test_remote_user_from_the_server(app, learner):
    app.config["TRUSTED_HEADER_NAME"] = "REMOTE_USER"
    client = app.test_client()
    # A header called Remote-User is not REMOTE_USER: only the server sets that.
    assert (
        client.get(
            "/my/training",
            headers={"Remote-User": learner.email},
            environ_base={"REMOTE_ADDR": PROXY},
        ).status_code
        == 303
    )
    r = client.get(
        "/my/training", environ_base={"REMOTE_ADDR": PROXY, "REMOTE_USER": learner.email}
    )
    assert r.status_code == 200
