"""Adding a user, from the dialog or its page."""

from __future__ import annotations

from sqlalchemy import select

from lmsweb.extensions import db
from lmsweb.models import AuditEvent, Course, CourseAssignment, OutboundEmail, User
from tests.conftest import HX, count, get


def form(**overrides):
    data = {
        "first_name": "Jane",
        "last_name": "Doe",
        "email": "Jane.Doe@Example.com",
        "user_id": "",
        "location": "",
        "role": "learner",
    }
    data.update(overrides)
    return data


def find(app, email):
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == email))
        if user is not None:
            db.session.expunge(user)
        return user


def test_the_users_page_has_add_and_import_buttons(admin_client):
    page = admin_client.get("/admin/users")
    assert 'id="add-user-button"' in page.text and 'id="import-users-button"' in page.text


def test_new_user_is_a_page_and_a_dialog(admin_client, make):
    make.location("Lisbon")
    page = admin_client.get("/admin/users/new")
    assert page.status_code == 200 and "<h1>Add a user</h1>" in page.text
    assert "Lisbon" in page.text
    dialog = admin_client.get("/admin/users/new", headers=HX)
    assert dialog.text.lstrip().startswith("<dialog") and "<html" not in dialog.text
    assert 'aria-labelledby="new-user-title"' in dialog.text


def test_adding_a_user_stores_them_pending_lowercased_and_audited(app, admin_client, make):
    location = make.location("Lisbon")
    group = make.group("Nurses")
    response = admin_client.post(
        "/admin/users/new",
        data=form(user_id="00123", location=location.id, group=[group.id]),
    )
    assert response.status_code == 303
    user_id = count(app, User)
    assert response.headers["Location"] == f"/admin/users?q=jane.doe@example.com#user-{user_id}"
    user = find(app, "jane.doe@example.com")
    assert (user.status, user.employee_id, user.location_id) == ("pending", "00123", location.id)
    assert user.password_hash is None
    with app.app_context():
        assert [g.name for g in db.session.get(User, user.id).groups] == ["Nurses"]
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.create"))
        assert event.target_user_id == user.id


def test_saving_returns_to_the_list_with_its_filters_at_the_new_user(admin_client):
    # The filters stay; the search finds the new user, whose row the address targets.
    response = admin_client.post(
        "/admin/users/new", data=form(next="/admin/users?status=pending&q=doe")
    )
    assert response.headers["Location"] == (
        "/admin/users?q=jane.doe@example.com&status=pending#user-2"
    )


def test_filters_that_would_hide_the_new_user_are_left_behind(admin_client):
    response = admin_client.post(
        "/admin/users/new", data=form(next="/admin/users?status=archived&q=doe")
    )
    assert response.headers["Location"] == "/admin/users?q=jane.doe@example.com#user-2"


def test_the_message_says_what_happened(app, admin_client, make):
    course = make.course("FIRE-1", seats=5)
    other = make.course("GDPR-1", seats=5)
    response = admin_client.post(
        "/admin/users/new",
        data=form(approve_notify="y", course=[course.id, other.id]),
        follow_redirects=True,
    )
    assert "Added Jane Doe, approved, invitation queued, 2 courses assigned." in response.text


def test_next_never_leaves_the_site(admin_client):
    for bad in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        response = admin_client.post(
            "/admin/users/new", data=form(email=f"u{len(bad)}@example.com", next=bad)
        )
        location = response.headers["Location"]
        assert location.startswith("/admin/users?q=u") and "evil" not in location, bad


def test_htmx_success_redirects_the_page(admin_client):
    response = admin_client.post("/admin/users/new", data=form(), headers=HX)
    assert response.headers["HX-Redirect"] == "/admin/users?q=jane.doe@example.com#user-2"


def test_invalid_email_is_422_with_the_reason(app, admin_client):
    response = admin_client.post("/admin/users/new", data=form(email="jane@"), headers=HX)
    assert response.status_code == 422
    assert "<dialog" in response.text and "field--invalid" in response.text
    assert count(app, User) == 1


def test_missing_names_are_422(app, admin_client):
    response = admin_client.post("/admin/users/new", data=form(first_name="", last_name=" "))
    assert response.status_code == 422
    assert "Enter a first name." in response.text and "Enter a last name." in response.text


def test_duplicate_email_and_user_id_name_the_existing_user(app, admin_client, make):
    other = make.user(email="jane.doe@example.com", first_name="Janet", last_name="Dee")
    third = make.user(employee_id="77", first_name="Seven", last_name="Seven")
    response = admin_client.post("/admin/users/new", data=form(email="JANE.DOE@example.com"))
    assert response.status_code == 422
    assert (
        f'This email already belongs to <a href="/admin/users/{other.id}">Janet Dee</a>.'
        in response.text
    )
    response = admin_client.post(
        "/admin/users/new", data=form(email="new@example.com", user_id="77")
    )
    assert (
        f'This user ID already belongs to <a href="/admin/users/{third.id}">Seven Seven</a>.'
        in response.text
    )
    assert count(app, User) == 3


def test_approve_and_notify_now(app, admin_client):
    admin_client.post("/admin/users/new", data=form(approve_notify="y"))
    user = find(app, "jane.doe@example.com")
    assert user.status == "active" and user.approved_at and user.notified_at
    assert count(app, OutboundEmail, OutboundEmail.user_id == user.id) == 1


def test_courses_are_assigned_with_the_due_date(app, admin_client, make):
    course = make.course("SAFE-1", seats=2)
    admin_client.post("/admin/users/new", data=form(course=[course.id], due_date="2031-01-31"))
    user = find(app, "jane.doe@example.com")
    with app.app_context():
        assignment = db.session.scalar(
            select(CourseAssignment).where(CourseAssignment.user_id == user.id)
        )
        assert assignment.due_date.isoformat() == "2031-01-31"
    assert get(app, Course, course.id).seats_reserved == 1


def test_a_course_without_seats_adds_nothing(app, admin_client, make):
    full = make.course("FULL", seats=0)
    response = admin_client.post("/admin/users/new", data=form(course=[full.id]), headers=HX)
    assert response.status_code == 409
    assert "No licenses available for FULL" in response.text
    assert "The user was not added." in response.text
    assert count(app, User) == 1 and count(app, CourseAssignment) == 0
    page = admin_client.post("/admin/users/new", data=form(course=[full.id]))
    assert page.status_code == 409 and "No licenses available for FULL" in page.text


def test_the_dialog_returns_to_the_list_the_admin_came_from(admin_client):
    dialog = admin_client.get(
        "/admin/users/new",
        headers={**HX, "HX-Current-URL": "http://localhost/admin/users?status=pending"},
    )
    assert 'value="/admin/users?status=pending"' in dialog.text


def test_the_form_marks_required_fields_and_offers_checkboxes(admin_client, make):
    make.group("Nurses")
    make.course("FIRE-1")
    page = admin_client.get("/admin/users/new").text
    for name in ("first_name", "last_name", "email"):
        tag = next(t for t in page.split("<input")[1:] if f'name="{name}"' in t)
        assert " required" in tag.split(">")[0], name
    assert '<select multiple id="group"' not in page and '<select id="course"' not in page
    assert '<input id="user-group-0" name="group" type="checkbox" value="' in page
    assert '<input id="new-course-0" name="course" type="checkbox" value="' in page
    assert '<legend class="field__label">Groups</legend>' in page
    assert '<legend class="field__label">Courses to assign</legend>' in page
