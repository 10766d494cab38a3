"""OpenID Connect sign-in against a real provider (oauth2-mock-server on loopback): the
browser's hops are followed by hand, the app's own token request goes over HTTP."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from lmsweb.models import AuditEvent, User
from tests.conftest import PASSWORD, count, csrf_from
from tests.oidc_support import CLIENT_ID, oidc_config, provider

EMAIL = "olivia@example.com"


@pytest.fixture
def provider_mode():
    return "ok"


@pytest.fixture
def extra_config():
    return {}


@pytest.fixture
def issuer(provider_mode):
    with provider(provider_mode, EMAIL) as url:
        yield url


@pytest.fixture
def app_config(issuer, extra_config):
    return oidc_config(issuer, **extra_config)


def through_provider(client, start: str = "/login/oidc", prefix: str = ""):
    """Start the sign-in, let the provider answer, and come back with its redirect."""
    to_provider = client.get(start)
    assert to_provider.status_code == 302, to_provider.text
    authorize = to_provider.headers["Location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["client_id"] == [CLIENT_ID]
    assert query["nonce"][0] and query["state"][0]
    assert query["redirect_uri"][0].endswith(f"{prefix}/login/oidc/callback")
    answer = requests.get(authorize, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    return client.get(f"{back.path}?{back.query}"), f"{back.path}?{back.query}"


def signed_in(client) -> bool:
    return client.get("/my/training").status_code == 200


def test_a_known_user_signs_in_and_lands_where_they_were_going(app, make, client):
    make.learner(email=EMAIL)
    response, _ = through_provider(client, "/login/oidc?next=/my/training")
    assert response.status_code == 303 and response.headers["Location"] == "/my/training"
    assert signed_in(client)


def test_the_answer_cannot_be_replayed(app, make, client):
    make.learner(email=EMAIL)
    _, callback = through_provider(client)
    other = app.test_client()
    assert other.get(callback).status_code == 400  # no state in that browser's session
    assert not signed_in(other)


@pytest.mark.parametrize(
    ("provider_mode", "status", "reason"),
    [
        ("tampered", 400, "bad_signature"),
        ("wrong-nonce", 400, "nonce"),
        ("wrong-audience", 400, "aud"),
        ("unverified-email", 403, "verified email"),
    ],
)
def test_a_forged_or_mismatched_id_token_is_refused(
    app, make, client, caplog, provider_mode, status, reason
):
    make.learner(email=EMAIL)
    make.admin(email="ceo@example.com")
    response, _ = through_provider(client)
    assert response.status_code == status
    assert 'id="oidc-refused"' in response.text
    assert reason in response.text or reason in caplog.text
    assert not signed_in(client)
    assert client.get("/admin/users").status_code == 303


@pytest.mark.parametrize("provider_mode", ["no-email-verified"])
def test_an_id_token_without_email_verified_is_refused_by_default(app, make, client):
    """Entra ID's ID tokens carry no email_verified: not trusted unless the setting says so."""
    make.learner(email=EMAIL)
    response, _ = through_provider(client)
    assert response.status_code == 403 and 'id="oidc-refused"' in response.text
    assert "OIDC_TRUST_EMAIL" in response.text and "did not say" in response.text
    assert not signed_in(client)


@pytest.mark.parametrize(
    ("provider_mode", "extra_config"), [("no-email-verified", {"OIDC_TRUST_EMAIL": True})]
)
def test_with_oidc_trust_email_an_id_token_without_email_verified_signs_in(app, make, client):
    make.learner(email=EMAIL)
    response, _ = through_provider(client, "/login/oidc?next=/my/training")
    assert response.status_code == 303 and response.headers["Location"] == "/my/training"
    assert signed_in(client)


@pytest.mark.parametrize(
    ("provider_mode", "extra_config"), [("unverified-email", {"OIDC_TRUST_EMAIL": True})]
)
def test_oidc_trust_email_never_overrules_email_verified_false(app, make, client):
    make.learner(email=EMAIL)
    response, _ = through_provider(client)
    assert response.status_code == 403 and "verified email" in response.text
    assert not signed_in(client)


def test_a_forged_state_is_refused(app, client):
    client.get("/login/oidc")
    response = client.get("/login/oidc/callback?code=x&state=forged")
    assert response.status_code == 400 and not signed_in(client)


def test_unknown_people_are_refused_by_default(app, client):
    response, _ = through_provider(client)
    assert response.status_code == 403 and "no training account" in response.text
    assert count(app, User) == 0


@pytest.mark.parametrize("extra_config", [{"OIDC_CREATE_USERS": True}])
def test_unknown_people_become_pending_learners_with_the_setting(app, client):
    response, _ = through_provider(client)
    assert response.status_code == 403 and "requested" in response.text
    assert count(app, User, User.email == EMAIL, User.status == "pending") == 1
    assert count(app, AuditEvent, AuditEvent.action == "user.oidc_request") == 1
    again, _ = through_provider(app.test_client())
    assert "awaits approval" in again.text and count(app, User) == 1


def test_archived_users_are_refused(app, make, client):
    make.learner(email=EMAIL, status="archived")
    response, _ = through_provider(client)
    assert response.status_code == 403 and not signed_in(client)


@pytest.mark.parametrize("extra_config", [{"PASSWORD_LOGIN": False}])
def test_password_sign_in_can_be_switched_off(app, make, client):
    make.learner(email="pw@example.com")
    page = client.get("/login")
    assert 'id="oidc-sign-in"' in page.text and 'type="password"' not in page.text
    token = csrf_from(page.text)
    refused = client.post(
        "/login", data={"email": "pw@example.com", "password": PASSWORD, "csrf_token": token}
    )
    assert refused.status_code == 403 and not signed_in(client)


@pytest.mark.parametrize(
    "extra_config", [{"URL_PREFIX": "training", "PUBLIC_BASE_URL": "http://lms.test/training"}]
)
def test_under_a_url_prefix(app, make, client):
    make.learner(email=EMAIL)
    assert 'href="/training/login/oidc' in client.get("/training/login").text
    response, _ = through_provider(client, "/training/login/oidc", prefix="/training")
    assert response.status_code == 303 and response.headers["Location"] == "/training/my/training"
    assert client.get("/training/my/training").status_code == 200


def test_without_configuration_there_is_no_button(make, database_url):
    from lmsweb import create_app
    from tests.conftest import BASE_CONFIG

    plain = create_app({**BASE_CONFIG, "SQLALCHEMY_DATABASE_URI": database_url})
    client = plain.test_client()
    assert 'id="oidc-sign-in"' not in client.get("/login").text
    assert client.get("/login/oidc").status_code == 404
