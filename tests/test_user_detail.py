"""A user's details page: edit, role rules, password reset, history and audit trail."""

from __future__ import annotations

from sqlalchemy import select

from lmsweb.extensions import db
from lmsweb.models import AuditEvent, OutboundEmail, User
from tests.conftest import HX, count, get


def details(user, **overrides):
    data = {
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "user_id": user.employee_id or "",
        "location": user.location_id or "",
        "role": user.role,
    }
    data.update(overrides)
    return data


def test_the_details_page_and_its_fragment(admin_client, make):
    course = make.course("SAFE-1", title="Safety")
    user = make.user(first_name="Jane", last_name="Doe", employee_id="00123")
    make.assignment(user, course)
    page = admin_client.get(f"/admin/users/{user.id}")
    assert page.status_code == 200
    assert "<h1>Jane Doe</h1>" in page.text and 'value="00123"' in page.text
    # The training editor; a user who never activated is offered the invitation, not a reset.
    assert '<span class="mono">SAFE-1</span> Safety' in page.text
    assert "Send invitation" in page.text and "Send a password reset link" not in page.text
    activated = make.learner()
    assert "Send a password reset link" in admin_client.get(f"/admin/users/{activated.id}").text
    fragment = admin_client.get(f"/admin/users/{user.id}", headers=HX)
    assert fragment.text.lstrip().startswith("<form") and "<html" not in fragment.text


def test_unknown_user_is_404(admin_client):
    assert admin_client.get("/admin/users/999999").status_code == 404


def test_editing_names_saves_audits_and_returns_to_the_filtered_list(app, admin_client, make):
    user = make.user(first_name="Jane", last_name="Doe")
    back = "/admin/users?status=pending&page=2"
    page = admin_client.get(
        f"/admin/users/{user.id}", headers={"Referer": "http://localhost" + back}
    )
    assert f'value="{back.replace("&", "&amp;")}"' in page.text
    response = admin_client.post(
        f"/admin/users/{user.id}", data=details(user, last_name="Smith", next=back)
    )
    assert response.status_code == 303 and response.headers["Location"] == back
    assert get(app, User, user.id).last_name == "Smith"
    with app.app_context():
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.update"))
        assert event.details == {"last_name": {"from": "Doe", "to": "Smith"}}
    page = admin_client.get(f"/admin/users/{user.id}")
    assert "Edited Jane Smith: last name" in page.text  # the user's audit trail


def test_edit_email_duplicate_is_422(app, admin_client, make):
    user = make.user(email="a@example.com")
    make.user(email="b@example.com")
    response = admin_client.post(
        f"/admin/users/{user.id}", data=details(user, email="B@example.com"), headers=HX
    )
    assert response.status_code == 422 and "This email already belongs to" in response.text
    assert get(app, User, user.id).email == "a@example.com"


def test_email_is_stored_lowercased(app, admin_client, make):
    user = make.user(email="a@example.com")
    admin_client.post(
        f"/admin/users/{user.id}", data=details(user, email="New.Address@Example.COM")
    )
    assert get(app, User, user.id).email == "new.address@example.com"


def test_promoting_and_demoting_ends_the_users_sessions(app, admin_client, make):
    user = make.user()
    admin_client.post(f"/admin/users/{user.id}", data=details(user, role="admin"))
    promoted = get(app, User, user.id)
    assert promoted.role == "admin" and promoted.session_version == user.session_version + 1
    admin_client.post(f"/admin/users/{user.id}", data=details(promoted, role="learner"))
    assert get(app, User, user.id).role == "learner"


def test_an_admin_cannot_demote_themselves(app, admin_client, admin):
    response = admin_client.post(f"/admin/users/{admin.id}", data=details(admin, role="learner"))
    assert response.status_code == 422
    assert "You cannot remove your own administrator role." in response.text
    assert get(app, User, admin.id).role == "admin"


def test_the_last_administrator_cannot_be_demoted(app, make):
    """The rule holds whoever asks: with no other administrator left, demotion is refused."""
    from flask_login import login_user

    from lmsweb.user_forms import UserForm

    only = make.admin(email="only@example.com")
    make.admin(email="gone@example.com", status="archived")  # archived: not counted
    asker = make.learner(email="asker@example.com")
    with app.test_request_context(method="POST", data=details(only, role="learner")):
        login_user(db.session.get(User, asker.id))
        target = db.session.get(User, only.id)
        form = UserForm(user=target, meta={"csrf": False})
        assert not form.validate()
        assert form.role.errors == ["This is the last administrator; make someone else one first."]


def test_reset_password_queues_a_link_and_audits(app, admin_client, make):
    user = make.learner()
    response = admin_client.post(f"/admin/users/{user.id}/reset-password", headers=HX)
    assert response.status_code == 200 and "showToast" in response.headers["HX-Trigger"]
    with app.app_context():
        email = db.session.scalar(select(OutboundEmail).where(OutboundEmail.user_id == user.id))
        assert email.kind == "password_reset" and "/reset/" in email.body_text
    assert count(app, AuditEvent, AuditEvent.action == "user.password_reset") == 1
    page = admin_client.post(f"/admin/users/{user.id}/reset-password")
    assert page.status_code == 303 and page.headers["Location"] == f"/admin/users/{user.id}"


def test_no_reset_link_for_an_archived_user(app, admin_client, make):
    user = make.user(status="archived")
    response = admin_client.post(f"/admin/users/{user.id}/reset-password", headers=HX)
    assert response.status_code == 409 and "archived" in response.text
    assert count(app, OutboundEmail) == 0
