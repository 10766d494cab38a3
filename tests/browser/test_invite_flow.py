"""An administrator approves and notifies a pending user; the user activates from the email."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from lmsweb import mailer
from lmsweb.extensions import db
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD
from tests.smtp_support import SMTPServer, link_in

pytestmark = pytest.mark.browser


@pytest.fixture
def app_config():
    server = SMTPServer().start()
    yield {**server.config(), "_smtp": server}
    server.stop()


def test_approve_notify_then_activate_from_the_email(
    page, live_server, app, app_config, admin, make
):
    smtp = app_config["_smtp"]
    user = make.user(
        status="pending", first_name="Ines", last_name="Invited", email="ines@example.com"
    )
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page, live_server, admin.email, PASSWORD)
    expect(page).to_have_url(f"{live_server}/admin/users")

    row = page.locator(f"#user-{user.id}")
    expect(row).to_contain_text("Pending")
    row.locator("details.menu > summary").click()
    row.get_by_role("button", name="Approve & notify Ines Invited").click()
    expect(row).to_contain_text("Invitation queued")
    expect(row.get_by_role("button", name="Resend Ines Invited")).to_be_visible()
    expect(page.locator("#toasts")).to_contain_text("approved")

    with app.app_context():  # the worker, as `flask lms send-mail --once` runs it
        assert mailer.drain().sent == 1
        db.session.remove()
    [message] = smtp.messages
    assert message["To"] == "ines@example.com"
    link = link_in(message).replace("http://lms.test", live_server)

    page.reload()
    expect(page.locator(f"#user-{user.id}")).to_contain_text("Notified")

    learner = page.context.browser.new_context().new_page()
    learner.goto(link)
    expect(learner.get_by_role("heading", level=1)).to_have_text("Activate your account")
    learner.get_by_label("New password").fill("a fine passphrase")
    learner.get_by_label("Repeat the password").fill("a fine passphrase")
    learner.get_by_role("button", name="Save password and sign in").click()
    expect(learner).to_have_url(f"{live_server}/my/training")
    expect(learner.get_by_role("heading", level=1)).to_have_text("My training")
    learner.context.close()
    assert errors == [], errors


def test_a_failed_invitation_explains_why_on_focus_and_hover(page, live_server, admin, make):
    user = make.user(
        first_name="Fay",
        last_name="Failed",
        invite_status="failed",
        invite_error="550 5.1.1 Mailbox unavailable",
    )
    sign_in(page, live_server, admin.email, PASSWORD)
    row = page.locator(f"#user-{user.id}")
    reason = row.locator(".invite-failed__reason")
    expect(reason).to_be_hidden()
    row.locator(".invite-failed").focus()
    expect(reason).to_be_visible()
    expect(reason).to_have_text("550 5.1.1 Mailbox unavailable")
    row.locator(".invite-failed").blur()
    expect(reason).to_be_hidden()
    row.locator(".invite-failed").hover()
    expect(reason).to_be_visible()
    expect(row.get_by_role("button", name="Resend Fay Failed")).to_be_visible()
