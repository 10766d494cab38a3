"""Approve and Notify row actions on the Users page."""

from __future__ import annotations

import json

from lmsweb.models import AuditEvent, OutboundEmail, User
from tests.conftest import HX, count, get


def test_approve_swaps_the_row_and_toasts(app, admin_client, make):
    user = make.user(status="pending", first_name="Pat", last_name="Pending")
    response = admin_client.post(f"/admin/users/{user.id}/approve", headers=HX)
    assert response.status_code == 200
    assert response.text.lstrip().startswith(f'<tr id="user-{user.id}">')
    assert ">Pending<" not in response.text
    assert f'id="notify-{user.id}"' in response.text and ">Notify<" in response.text  # next step
    assert json.loads(response.headers["HX-Trigger"])["showToast"]["message"].endswith("approved.")
    saved = get(app, User, user.id)
    assert saved.status == "active" and saved.approved_at is not None
    assert count(app, AuditEvent, AuditEvent.action == "user.approve") == 1
    assert count(app, OutboundEmail) == 0  # approving alone sends nothing


def test_approve_without_javascript_redirects_to_the_same_filtered_list(app, admin_client, make):
    user = make.user(status="pending")
    back = "/admin/users?status=pending&page=2"
    response = admin_client.post(f"/admin/users/{user.id}/approve", data={"next": back})
    assert response.status_code == 303
    assert response.headers["Location"] == back
    assert get(app, User, user.id).status == "active"


def test_next_must_be_a_same_site_path(admin_client, make):
    user = make.user(status="pending")
    response = admin_client.post(
        f"/admin/users/{user.id}/approve", data={"next": "https://evil.example/admin/users"}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/users"


def test_approve_and_notify_queues_the_invitation_in_the_same_transaction(app, admin_client, make):
    user = make.user(status="pending", email="new.hire@example.com")
    response = admin_client.post(
        f"/admin/users/{user.id}/approve", data={"notify": "y"}, headers=HX
    )
    assert response.status_code == 200
    assert "Invitation queued" in response.text
    assert ">Resend<" in response.text
    saved = get(app, User, user.id)
    assert saved.status == "active" and saved.notified_at is not None
    assert saved.invite_status == "queued"
    with app.app_context():
        from lmsweb.extensions import db

        message = db.session.scalar(db.select(OutboundEmail))
        assert (message.recipient, message.kind, message.status) == (
            "new.hire@example.com",
            "invitation",
            "queued",
        )
        assert "http://lms.test/activate/" in message.body_text  # PUBLIC_BASE_URL, not Host
        actions = set(db.session.scalars(db.select(AuditEvent.action)))
    assert {"user.approve", "user.notify"} <= actions


def test_links_come_from_public_base_url_never_the_host_header(app, make):
    from lmsweb.extensions import db
    from lmsweb.notifications import queue_invitation

    user = make.user(status="active")
    with app.test_request_context(base_url="http://attacker.example/"):
        message = queue_invitation(db.session.get(User, user.id))
        body = message.body_text + message.body_html
        db.session.rollback()
    assert "attacker.example" not in body
    assert "http://lms.test/activate/" in body


def test_notify_then_resend_queues_again(app, admin_client, make):
    user = make.user(status="active")
    first = admin_client.post(f"/admin/users/{user.id}/notify", headers=HX)
    assert first.status_code == 200 and ">Resend<" in first.text
    second = admin_client.post(f"/admin/users/{user.id}/notify", headers=HX)
    assert second.status_code == 200
    assert "sent again" in json.loads(second.headers["HX-Trigger"])["showToast"]["message"]
    assert count(app, OutboundEmail, OutboundEmail.user_id == user.id) == 2
    assert count(app, AuditEvent, AuditEvent.action == "user.resend_invitation") == 1


def test_archived_users_cannot_be_approved_or_notified(app, admin_client, make):
    user = make.user(status="archived")
    for action in ("approve", "notify"):
        response = admin_client.post(f"/admin/users/{user.id}/{action}", headers=HX)
        assert response.status_code == 409
        assert response.mimetype == "text/plain"
        assert "archived" in response.text
    plain = admin_client.post(f"/admin/users/{user.id}/notify", data={"next": "/admin/users"})
    assert plain.status_code == 303
    assert count(app, OutboundEmail) == 0
    assert count(app, AuditEvent, AuditEvent.target_user_id == user.id) == 0
    assert get(app, User, user.id).status == "archived"


def test_an_address_with_a_line_break_is_refused_when_queueing(app, admin_client, make):
    user = make.user(status="active", email="victim@example.com\r\nBcc: all@example.com")
    response = admin_client.post(f"/admin/users/{user.id}/notify", headers=HX)
    assert response.status_code == 409
    assert "line breaks" in response.text
    assert count(app, OutboundEmail) == 0
    assert get(app, User, user.id).notified_at is None


def test_row_buttons_follow_the_users_state(admin_client, make):
    pending = make.user(status="pending")
    active = make.user(status="active")
    archived = make.user(status="archived")
    page = admin_client.get("/admin/users?status=pending&status=active&status=archived").text
    menu = admin_client.get(f"/admin/users/{pending.id}/menu", headers=HX).text
    # The primary action in the row, the others in its "More" menu.
    assert f'id="approve-{pending.id}"' in page and f'id="approve-notify-{pending.id}"' in menu
    assert f'id="notify-{active.id}"' in page
    assert f'id="restore-{archived.id}"' in page
    archived_menu = admin_client.get(f"/admin/users/{archived.id}/menu", headers=HX).text
    for text in (page, archived_menu):
        assert (
            f'id="approve-{archived.id}"' not in text and f'id="notify-{archived.id}"' not in text
        )


def test_a_failed_invitation_explains_why_and_offers_resend(app, admin_client, make):
    user = make.user(status="active", invite_status="failed", invite_error="550 No such user")
    with app.app_context():
        from lmsweb.extensions import db
        from lmsweb.models import utcnow

        db.session.get(User, user.id).notified_at = utcnow()
        db.session.commit()
    page = admin_client.get("/admin/users").text
    assert "Invitation failed" in page
    assert 'title="550 No such user"' in page  # hover
    assert 'tabindex="0"' in page and f'aria-describedby="invite-error-{user.id}"' in page  # focus
    assert f'id="notify-{user.id}"' in page and ">Resend<" in page


def test_the_users_list_does_not_query_per_row_for_invitation_state(app, admin_client, make):
    from sqlalchemy import event

    from lmsweb.extensions import db

    def statements(n):
        for i in range(n):
            make.user(status="active", invite_status=["queued", "sent", "failed"][i % 3])
        seen = []
        with app.app_context():
            engine = db.engine

        def listener(*args):
            seen.append(args[2])

        event.listen(engine, "before_cursor_execute", listener)
        try:
            assert admin_client.get("/admin/users?per_page=100").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        return len(seen)

    few = statements(3)
    many = statements(30)
    assert many == few


def test_learners_cannot_approve_or_notify(app, learner_client, make):
    user = make.user(status="pending")
    assert learner_client.post(f"/admin/users/{user.id}/approve").status_code == 403
    assert learner_client.post(f"/admin/users/{user.id}/notify").status_code == 403
    assert get(app, User, user.id).status == "pending"


def test_unknown_user_is_404(admin_client):
    assert admin_client.post("/admin/users/999999/notify", headers=HX).status_code == 404


def _failed_invitation(app, make, email):
    user = make.user(
        status="active", email=email, invite_status="failed", invite_error="550 No such user"
    )
    with app.app_context():
        from lmsweb.extensions import db
        from lmsweb.models import utcnow

        db.session.get(User, user.id).notified_at = utcnow()
        db.session.commit()
    return user


def _invitation_columns(app, user_id):
    saved = get(app, User, user_id)
    return saved.invite_status, saved.invite_error, saved.notified_at is not None


def test_bulk_notify_and_row_notify_leave_a_failed_invitation_in_the_same_state(
    app, admin_client, make
):
    by_row = _failed_invitation(app, make, "row@example.com")
    by_bulk = _failed_invitation(app, make, "bulk@example.com")
    before = get(app, User, by_bulk.id).notified_at
    assert admin_client.post(f"/admin/users/{by_row.id}/notify", headers=HX).status_code == 200
    response = admin_client.post(
        "/admin/users/bulk", data={"action": "notify", "user_ids": [by_bulk.id]}, headers=HX
    )
    assert response.status_code == 200
    assert _invitation_columns(app, by_row.id) == ("queued", None, True)
    assert _invitation_columns(app, by_bulk.id) == _invitation_columns(app, by_row.id)
    assert get(app, User, by_bulk.id).notified_at > before
    page = admin_client.get("/admin/users").text
    assert "Invitation failed" not in page
    assert count(app, OutboundEmail, OutboundEmail.kind == "invitation") == 2


def test_next_with_a_line_break_falls_back_to_the_list(app, admin_client, make):
    user = make.user(status="pending")
    for back in ("/admin/users\r\nSet-Cookie: x=1", "/admin/users?status=pending\n", "/\r/x"):
        response = admin_client.post(f"/admin/users/{user.id}/notify", data={"next": back})
        assert response.status_code == 303
        assert response.headers["Location"] == "/admin/users"
    page = admin_client.get(f"/admin/users/{user.id}?next=%2Fadmin%2Fusers%0D%0ALocation:x")
    assert page.status_code == 200
    assert 'href="/admin/users">' in page.text
