"""A person signs in with the organisation's account, through a real OpenID Connect
provider (oauth2-mock-server from npm) on loopback; forged answers are refused."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.oidc_support import oidc_config, provider

pytestmark = pytest.mark.browser

EMAIL = "olivia@example.com"


@pytest.fixture
def provider_mode():
    return "ok"


@pytest.fixture
def issuer(provider_mode):
    with provider(provider_mode, EMAIL) as url:
        yield url


@pytest.fixture
def app_config(issuer):
    return oidc_config(issuer, ORG_NAME="Acme Health")


@pytest.fixture(autouse=True)
def _public_base_url(app, live_server):
    """The redirect URI is built from PUBLIC_BASE_URL: here, the live server."""
    app.config["PUBLIC_BASE_URL"] = live_server


def test_signs_in_with_the_organisation_account(page, live_server, make):
    make.learner(email=EMAIL, first_name="Olivia", last_name="Connect")
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(f"{live_server}/login")
    page.get_by_role("link", name="Sign in with Acme Health").click()
    expect(page).to_have_url(f"{live_server}/my/training")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert errors == [], errors


@pytest.mark.parametrize("provider_mode", ["tampered", "wrong-nonce", "wrong-audience"])
def test_a_forged_or_mismatched_id_token_is_refused(page, live_server, make, provider_mode):
    make.learner(email=EMAIL)
    make.admin(email="ceo@example.com")  # whom the tampered token claims to be
    page.goto(f"{live_server}/login")
    page.get_by_role("link", name="Sign in with Acme Health").click()
    expect(page.get_by_role("alert")).to_contain_text("could not be verified")
    page.goto(f"{live_server}/my/training")
    expect(page).to_have_url(f"{live_server}/login?next=/my/training")


@pytest.mark.parametrize("provider_mode", ["no-email-verified"])
def test_without_email_verified_the_person_is_told_why(page, live_server, make, provider_mode):
    """Entra ID's tokens carry no email_verified; without OIDC_TRUST_EMAIL, refused, saying so."""
    make.learner(email=EMAIL)
    page.goto(f"{live_server}/login")
    page.get_by_role("link", name="Sign in with Acme Health").click()
    expect(page.get_by_role("alert")).to_contain_text("did not say whether your email")
    page.goto(f"{live_server}/my/training")
    expect(page).to_have_url(f"{live_server}/login?next=/my/training")


def test_inside_a_portal_frame_the_sign_in_opens_its_own_window(page, live_server, make):
    make.learner(email=EMAIL)
    page.goto(f"{live_server}/login?embed=1")
    link = page.get_by_role("link", name="Sign in with Acme Health")
    expect(link).to_have_attribute("target", "_blank")
    with page.expect_popup() as opened:
        link.click()
    popup = opened.value
    expect(popup).to_have_url(f"{live_server}/login/done")
    expect(popup.get_by_role("heading", level=1)).to_have_text("You are signed in")
    page.goto(f"{live_server}/my/training")
    expect(page).to_have_url(f"{live_server}/my/training")
