"""Archive a user (or only their course activity) and restore them: seats, records, access."""

from __future__ import annotations

import json

import pytest
from flask import url_for

from lmsweb import lifecycle
from lmsweb.extensions import db
from lmsweb.models import AuditEvent, Course, CourseAssignment, OutboundEmail, User
from lmsweb.tokens import make_token
from tests.conftest import HX, PASSWORD, count, csrf_from, get, login


@pytest.fixture
def mixed(make):
    """A learner with one unstarted, one started and one completed course."""
    courses = [make.course(code=code, seats=5) for code in ("GDPR-1", "HS-2", "FIRE-3")]
    user = make.learner(first_name="Mia", last_name="Mixed", email="mia@example.com")
    unstarted = make.assignment(user, courses[0])
    started = make.assignment(user, courses[1], state="in_progress")
    completed = make.assignment(user, courses[2], state="completed")
    return {
        "user": user,
        "courses": courses,
        "unstarted": unstarted,
        "started": started,
        "completed": completed,
    }


def pools(app, courses):
    out = {}
    for c in courses:
        course = get(app, Course, c.id)
        out[course.code] = (course.seats_reserved, course.seats_used, course.seats_available)
    return out


def assert_no_drift(runner):
    result = runner.invoke(args=["lms", "check"])
    assert result.exit_code == 0, result.output
    assert "no drift" in result.output


def test_the_dialog_states_exactly_what_will_happen(admin_client, mixed):
    user = mixed["user"]
    page = admin_client.get(f"/admin/users/{user.id}/archive?next=/admin/users?q=mia")
    assert page.status_code == 200
    assert "<h1>Archive Mia Mixed?</h1>" in page.text
    assert 'name="next" type="hidden" value="/admin/users?q=mia"' in page.text
    fragment = admin_client.get(f"/admin/users/{user.id}/archive", headers=HX)
    assert "HX-Request" in fragment.headers["Vary"]
    html = fragment.text
    assert html.lstrip().startswith("<dialog") and 'aria-labelledby="archive-dialog-title"' in html
    unstarted = html.split('id="archive-unstarted"')[1].split("</ul>")[0]
    assert "GDPR-1" in unstarted and "HS-2" not in unstarted
    assert "1 license returns to\n    the GDPR-1 pool (1)." in html
    started = html.split('id="archive-started"')[1].split("</ul>")[0]
    assert "HS-2" in started and "in progress" in started
    assert "FIRE-3" in started and "completed" in started
    assert "2 records stay, their licenses stay used" in html
    assert 'value="user"' in html and 'value="activity"' in html


def test_archive_user_returns_unstarted_seats_and_keeps_started_ones(
    app, admin_client, mixed, runner
):
    user, courses = mixed["user"], mixed["courses"]
    assert pools(app, courses) == {"GDPR-1": (1, 0, 4), "HS-2": (0, 1, 4), "FIRE-3": (0, 1, 4)}
    response = admin_client.post(
        f"/admin/users/{user.id}/archive",
        data={"mode": "user", "next": "/admin/users"},
        headers=HX,
    )
    assert response.status_code == 200
    # The default list (pending + active) hides archived users: the row goes away.
    assert response.text == ""
    trigger = json.loads(response.headers["HX-Trigger"])
    assert trigger["closeDialog"] is True
    message = trigger["showToast"]["message"]
    assert "Archived Mia Mixed" in message and "1 seat returned (GDPR-1: 1)" in message
    assert "2 started records keep their seats" in message

    assert pools(app, courses) == {"GDPR-1": (0, 0, 5), "HS-2": (0, 1, 4), "FIRE-3": (0, 1, 4)}
    archived = get(app, User, user.id)
    assert archived.status == "archived" and archived.archived_at is not None
    # Every record remains, archived with the reason.
    assert count(app, CourseAssignment, CourseAssignment.user_id == user.id) == 3
    for key in ("unstarted", "started", "completed"):
        record = get(app, CourseAssignment, mixed[key].id)
        assert record.archived_at is not None and record.archive_reason == "user_archived"
    assert get(app, CourseAssignment, mixed["completed"].id).state == "completed"
    # They appear on the dashboard as archived records, with the reason.
    dashboard = admin_client.get("/admin/dashboard?archived=yes&q=mixed", headers=HX).text
    assert "3 training records" in dashboard
    assert dashboard.count("badge--archived") == 3 and "user archived" in dashboard
    event = db_event(app, "user.archive")
    assert event.details["seats_returned"] == {"GDPR-1": 1}
    assert sorted(event.details["archived_started"]) == sorted(
        [mixed["started"].id, mixed["completed"].id]
    )
    assert_no_drift(runner)


def db_event(app, action):
    with app.app_context():
        event = db.session.scalar(
            db.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id.desc())
        )
        db.session.expunge(event)
        return event


def test_archive_activity_only_keeps_the_user_active_and_assignable(
    app, admin_client, mixed, runner, make
):
    user, courses = mixed["user"], mixed["courses"]
    response = admin_client.post(
        f"/admin/users/{user.id}/archive",
        data={"mode": "activity", "next": "/admin/users?status=active"},
        headers=HX,
    )
    assert response.status_code == 200
    # Still shown by the list: the row is swapped, the user still active (Archive in its menu).
    assert response.text.lstrip().startswith(f'<tr id="user-{user.id}">')
    assert f'id="restore-{user.id}"' not in response.text
    menu = admin_client.get(f"/admin/users/{user.id}/menu", headers=HX).text
    assert f'id="archive-{user.id}"' in menu
    message = json.loads(response.headers["HX-Trigger"])["showToast"]["message"]
    assert "Archived Mia Mixed's course activity" in message
    assert pools(app, courses) == {"GDPR-1": (0, 0, 5), "HS-2": (0, 1, 4), "FIRE-3": (0, 1, 4)}
    assert get(app, User, user.id).status == "active"
    reasons = {
        get(app, CourseAssignment, mixed[k].id).archive_reason
        for k in ("unstarted", "started", "completed")
    }
    assert reasons == {"activity_archived"}
    assert db_event(app, "user.archive_activity").target_user_id == user.id
    # The same course can be assigned again: a new seat, a new record.
    again = make.assignment(user, courses[1])
    assert again.id != mixed["started"].id
    assert pools(app, courses)["HS-2"] == (1, 1, 3)
    assert_no_drift(runner)


def test_archived_user_cannot_sign_in_use_links_or_keep_a_session(app, admin_client, make):
    learner = make.learner(email="gone@example.com")
    pending = make.user(email="pending@example.com", status="pending")
    session = app.test_client()
    login(session, learner.email)
    assert session.get("/my/training").status_code == 200
    with app.test_request_context():
        link = url_for("auth.activate", token=make_token(get(app, User, pending.id), "activate"))
    for user in (learner, pending):
        response = admin_client.post(f"/admin/users/{user.id}/archive", data={"mode": "user"})
        assert response.status_code == 303
    # The open session is refused.
    refused = session.get("/my/training")
    assert refused.status_code == 303 and "/login" in refused.headers["Location"]
    # Signing in fails.
    fresh = app.test_client()
    token = csrf_from(fresh.get("/login").text)
    attempt = fresh.post(
        "/login", data={"email": learner.email, "password": PASSWORD, "csrf_token": token}
    )
    assert attempt.status_code == 422
    # The activation link fails.
    assert fresh.get(link).status_code == 410
    # No email is queued for them.
    assert count(app, OutboundEmail) == 0
    with app.app_context():
        from lmsweb.licensing import DomainError
        from lmsweb.notifications import queue_invitation

        with pytest.raises(DomainError):
            queue_invitation(db.session.get(User, learner.id))


def test_restore_brings_the_user_back_and_records_stay_archived(app, admin_client, mixed, runner):
    user = mixed["user"]
    admin_client.post(f"/admin/users/{user.id}/archive", data={"mode": "user"})
    listing = admin_client.get("/admin/users?status=archived")
    assert f'id="restore-{user.id}"' in listing.text
    response = admin_client.post(
        f"/admin/users/{user.id}/restore",
        data={"next": "/admin/users?status=archived"},
        headers=HX,
    )
    # The archived-only list no longer shows them.
    assert response.status_code == 200 and response.text == ""
    assert (
        "Restored Mia Mixed" in json.loads(response.headers["HX-Trigger"])["showToast"]["message"]
    )
    restored = get(app, User, user.id)
    assert restored.status == "active" and restored.archived_at is None
    for key in ("unstarted", "started", "completed"):
        assert get(app, CourseAssignment, mixed[key].id).archived_at is not None
    assert db_event(app, "user.restore").target_user_id == user.id
    # The restored user can sign in again.
    login(app.test_client(), user.email)
    assert_no_drift(runner)


def test_restore_in_a_list_that_shows_everyone_swaps_the_row(app, admin_client, make):
    user = make.user(status="archived")
    response = admin_client.post(
        f"/admin/users/{user.id}/restore",
        data={"next": "/admin/users?status=archived&status=active"},
        headers=HX,
    )
    assert response.text.lstrip().startswith(f'<tr id="user-{user.id}">')
    assert f'id="restore-{user.id}"' not in response.text
    menu = admin_client.get(f"/admin/users/{user.id}/menu", headers=HX).text
    assert f'id="archive-{user.id}"' in menu


def test_plain_requests_redirect_back_to_the_list_with_its_filters(app, admin_client, mixed):
    user = mixed["user"]
    response = admin_client.post(
        f"/admin/users/{user.id}/archive",
        data={"mode": "activity", "next": "/admin/users?q=mia&page=2"},
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/admin/users?q=mia&page=2")
    # Off-site or non-list targets fall back to the list.
    response = admin_client.post(
        f"/admin/users/{user.id}/restore", data={"next": "https://evil.example/admin/users"}
    )
    assert response.status_code == 303 and response.headers["Location"].endswith("/admin/users")


def test_bad_input_and_broken_rules_change_nothing(app, admin_client, mixed, make):
    user = mixed["user"]
    invalid = admin_client.post(f"/admin/users/{user.id}/archive", data={"mode": "x"}, headers=HX)
    assert invalid.status_code == 422 and "Choose what to archive." in invalid.text
    assert invalid.headers["HX-Retarget"] == "#dialog-root"
    assert get(app, User, user.id).status == "active"
    assert count(app, CourseAssignment, CourseAssignment.archived_at.is_not(None)) == 0
    archived = make.user(status="archived")
    again = admin_client.post(
        f"/admin/users/{archived.id}/archive", data={"mode": "user"}, headers=HX
    )
    assert again.status_code == 409 and "already archived" in again.text
    idle = make.user()
    nothing = admin_client.post(
        f"/admin/users/{idle.id}/archive", data={"mode": "activity"}, headers=HX
    )
    assert nothing.status_code == 409 and "no open training records" in nothing.text
    not_archived = admin_client.post(f"/admin/users/{user.id}/restore", headers=HX)
    assert not_archived.status_code == 409
    assert (
        admin_client.post("/admin/users/999999/archive", data={"mode": "user"}).status_code == 404
    )
    assert count(app, AuditEvent, AuditEvent.action.like("user.%")) == 0


def test_users_page_rows_offer_archive_or_restore(admin_client, make):
    active = make.user(status="active")
    archived = make.user(status="archived")
    page = admin_client.get("/admin/users?status=active&status=archived")
    active_menu = admin_client.get(f"/admin/users/{active.id}/menu", headers=HX).text
    archived_menu = admin_client.get(f"/admin/users/{archived.id}/menu", headers=HX).text
    assert f'id="archive-{active.id}"' in active_menu
    assert f'id="restore-{archived.id}"' in page.text
    assert f'id="archive-{archived.id}"' not in page.text + archived_menu


def test_archive_domain_function_on_mixed_records(appctx, mixed):
    user = db.session.get(User, mixed["user"].id)
    plan = lifecycle.archive_plan(user)
    assert [a.id for a in plan.unstarted] == [mixed["unstarted"].id]
    assert plan.seats_returned == {"GDPR-1": 1}
    lifecycle.archive(user, "user")
    assert lifecycle.archive_plan(user).unstarted == []


def test_an_administrator_cannot_archive_their_own_account(app, admin_client, admin):
    dialog = admin_client.get(f"/admin/users/{admin.id}/archive", headers=HX).text
    assert 'value="user"' not in dialog
    response = admin_client.post(
        f"/admin/users/{admin.id}/archive", data={"mode": "user"}, headers=HX
    )
    assert response.status_code == 409 and "your own account" in response.text
    assert get(app, User, admin.id).status == "active"


def test_the_signed_in_administrator_is_not_offered_archive_on_their_own_row(
    admin_client, admin, make
):
    other = make.learner()
    assert f'id="archive-{other.id}"' in admin_client.get(f"/admin/users/{other.id}/menu").text
    assert f'id="archive-{admin.id}"' not in admin_client.get(f"/admin/users/{admin.id}/menu").text
