"""Remind: the row action and the bulk action queue one reminder now per person."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from lmsweb.extensions import db
from lmsweb.models import AuditEvent, OutboundEmail
from tests.conftest import HX, count


@pytest.fixture(autouse=True)
def _own_dev_mailbox(app, tmp_path):
    """Mail drained without MAIL_SERVER lands in this test's own instance folder, not in the
    session's (where the outbox tests count the messages)."""
    app.instance_path = str(tmp_path)


def emails(app):
    with app.app_context():
        return db.session.execute(
            sa.select(OutboundEmail.recipient, OutboundEmail.kind, OutboundEmail.subject).order_by(
                OutboundEmail.id
            )
        ).all()


def test_the_row_action_reminds_now_and_says_when_the_last_one_went(app, admin_client, make):
    safe, fire = make.course("SAFE"), make.course("FIRE")
    lee = make.user(email="lee@example.com")
    make.assignment(lee, safe, due=date.today() - timedelta(days=3))
    make.assignment(lee, fire, due=date.today() + timedelta(days=20))
    make.assignment(lee, make.course("DONE"), state="completed")

    first = admin_client.post(f"/admin/users/{lee.id}/remind", headers=HX)
    assert first.status_code == 200 and first.text.lstrip().startswith(f'<tr id="user-{lee.id}"')
    toast = json.loads(first.headers["HX-Trigger"])["showToast"]["message"]
    assert toast == f"A reminder is on its way to {lee.name}. None was sent before."
    [(recipient, kind, subject)] = emails(app)
    assert (recipient, kind) == ("lee@example.com", "manual_reminder")
    assert subject == "Test Org: overdue training (1 course)"
    with app.app_context():
        body = db.session.scalar(sa.select(OutboundEmail.body_text))
    assert "SAFE" in body and "FIRE" in body and "DONE" not in body
    assert "Still to complete:" in body

    second = admin_client.post(f"/admin/users/{lee.id}/remind", headers=HX)
    toast = json.loads(second.headers["HX-Trigger"])["showToast"]["message"]
    assert "The last one went " in toast
    assert count(app, AuditEvent, AuditEvent.action == "user.remind") == 2
    page = admin_client.get(f"/admin/users/{lee.id}")
    assert 'id="user-last-reminder">Never<' not in page.text


def test_remind_refuses_who_cannot_be_reminded(app, admin_client, make):
    idle = make.user()
    archived = make.user(status="archived")
    for user, message in [(idle, "no unfinished training"), (archived, "archived")]:
        response = admin_client.post(f"/admin/users/{user.id}/remind", headers=HX)
        assert response.status_code == 409 and message in response.text
    assert emails(app) == []
    assert admin_client.post("/admin/users/99999/remind", headers=HX).status_code == 404


def test_the_bulk_action_sends_one_reminder_per_person(app, admin_client, make):
    course, other = make.course("SAFE"), make.course("FIRE")
    busy = [make.user() for _ in range(3)]
    for user in busy:
        make.assignment(user, course)
        make.assignment(user, other)
    idle = make.user()
    response = admin_client.post(
        "/admin/users/bulk",
        data={"action": "remind", "user_ids": [str(u.id) for u in [*busy, idle]]},
        headers=HX,
    )
    assert response.status_code == 200
    sent = emails(app)
    assert sorted(r for r, _, _ in sent) == sorted(u.email for u in busy)
    assert {s for _, _, s in sent} == {"Test Org: a reminder about your training (2 courses)"}
    assert count(app, AuditEvent, AuditEvent.action == "bulk.remind") == 1
