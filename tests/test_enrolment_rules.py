"""Enrolment rules: preview, apply, waiting for a license, and every join path."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from lmsweb import enrolment
from lmsweb.extensions import db
from lmsweb.models import (
    AuditEvent,
    Course,
    CourseAssignment,
    EnrolmentRule,
    User,
    WaitingEnrolment,
    utcnow,
)
from tests.conftest import HX, count, get
from tests.import_support import csv_bytes, job_id, upload
from tests.scim_support import ENTERPRISE, PATCH, USER_SCHEMA, headers, make_token


@pytest.fixture(autouse=True)
def _own_dev_mailbox(app, tmp_path):
    """Mail drained without MAIL_SERVER lands in this test's own instance folder, not in the
    session's (where the outbox tests count the messages)."""
    app.instance_path = str(tmp_path)


def records(app, course, rule=None):
    """user id → due date of the course's open records (made by `rule`, when given)."""
    with app.app_context():
        query = sa.select(CourseAssignment.user_id, CourseAssignment.due_date).where(
            CourseAssignment.course_id == course.id, CourseAssignment.archived_at.is_(None)
        )
        if rule is not None:
            query = query.where(CourseAssignment.rule_id == rule)
        return dict(db.session.execute(query).all())


def waiting(app, course):
    with app.app_context():
        return set(
            db.session.scalars(
                sa.select(WaitingEnrolment.user_id).where(
                    WaitingEnrolment.course_id == course.id, WaitingEnrolment.resolved_at.is_(None)
                )
            )
        )


def only_rule(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(EnrolmentRule.id))


def test_a_rule_previews_then_assigns_its_members_and_the_rest_wait(app, admin_client, make):
    nurses = make.group("Nurses")
    course = make.course("HYG", seats=3)
    members = [make.user(groups=[nurses]) for _ in range(5)]
    make.assignment(members[0], course)  # already has it: one seat gone, 2 left
    make.user()  # not a member
    archived = make.user(groups=[nurses], status="archived")

    form = {"group": str(nurses.id), "course": str(course.id), "due_days": "14"}
    preview = admin_client.post("/admin/rules/preview", data=form, headers=HX)
    assert preview.status_code == 200 and "<html" not in preview.text
    assert 'data-preview="members">5<' in preview.text
    assert 'data-preview="to-assign">4<' in preview.text
    assert 'data-preview="licenses">2<' in preview.text
    assert "2 will wait for a license" in preview.text
    assert count(app, EnrolmentRule) == 0  # a preview changes nothing

    created = admin_client.post("/admin/rules/new", data=form)
    assert created.status_code == 303 and created.headers["Location"] == "/admin/rules"
    rule_id = only_rule(app)
    made = records(app, course, rule=rule_id)
    assert sorted(made) == [members[1].id, members[2].id]
    assert set(made.values()) == {utcnow().date() + timedelta(days=14)}
    assert waiting(app, course) == {members[3].id, members[4].id}
    assert archived.id not in made and archived.id not in waiting(app, course)
    assert get(app, Course, course.id).seats_available == 0
    with app.app_context():
        events = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "assignment.rule")
        ).all()
        assert sorted(e.target_user_id for e in events) == sorted(made)
        assert all(f"by rule #{rule_id}" in e.summary for e in events)
    listing = admin_client.get("/admin/rules")
    assert f'id="rule-{rule_id}"' in listing.text and "Members of Nurses" in listing.text
    assert "Waiting for a license" in admin_client.get(f"/admin/users/{members[3].id}").text
    assert 'id="dash-waiting">2<' in admin_client.get("/admin/dashboard").text
    course_page = admin_client.get(f"/admin/courses/{course.id}")
    assert 'id="course-waiting">2<' in course_page.text

    # Seats added: the waiting ones are assigned, oldest first, naming their rule.
    added = admin_client.post(f"/admin/courses/{course.id}/seats", data={"add": "1"}, headers=HX)
    assert (
        added.status_code == 200 and "1 waiting assignment was made" in added.headers["HX-Trigger"]
    )
    assert members[3].id in records(app, course, rule=rule_id)
    assert waiting(app, course) == {members[4].id}


def test_a_bad_rule_is_refused_and_changes_nothing(app, admin_client, make):
    group, location, course = make.group(), make.location(), make.course()
    for data, message in [
        ({"course": str(course.id), "due_days": "10"}, "Choose a group or a location"),
        (
            {"group": str(group.id), "location": str(location.id), "course": str(course.id),
             "due_days": "10"},
            "Choose a group or a location",
        ),
        ({"group": str(group.id), "due_days": "10"}, "Choose a course."),
        ({"group": str(group.id), "course": str(course.id), "due_days": "0"}, "from 1 to 3650"),
        ({"group": "999", "course": str(course.id), "due_days": "5"}, "Not a valid choice"),
    ]:  # fmt: skip
        response = admin_client.post("/admin/rules/new", data=data)
        assert response.status_code == 422 and message in response.text, data
    assert count(app, EnrolmentRule) == 0


@pytest.fixture
def rule(app, make, admin):
    """Members of Nurses get HYG (due in 10 days); people at Oslo get FIRE."""
    nurses, oslo = make.group("Nurses"), make.location("Oslo")
    hyg, fire = make.course("HYG", seats=20), make.course("FIRE", seats=20)
    with app.app_context():
        actor = db.session.get(User, admin.id)
        for g, loc, c in ((nurses, None, hyg), (None, oslo, fire)):
            enrolment.create_rule(
                db.session.get(type(nurses), g.id) if g else None,
                db.session.get(type(oslo), loc.id) if loc else None,
                db.session.get(Course, c.id),
                10,
                actor,
            )
        db.session.commit()
    return {"nurses": nurses, "oslo": oslo, "hyg": hyg, "fire": fire}


def user_id_of(app, email):
    with app.app_context():
        return db.session.scalar(sa.select(User.id).where(User.email == email))


def test_join_path_add_user(app, admin_client, rule):
    data = {"first_name": "A", "last_name": "B", "email": "a@example.com", "role": "learner",
            "group": str(rule["nurses"].id), "location": str(rule["oslo"].id)}  # fmt: skip
    assert admin_client.post("/admin/users/new", data=data).status_code == 303
    uid = user_id_of(app, "a@example.com")
    assert uid in records(app, rule["hyg"]) and uid in records(app, rule["fire"])


def test_join_path_details_edit_and_groups_dialog(app, admin_client, make, rule):
    one, two = make.user(email="one@example.com"), make.user(email="two@example.com")
    data = {"first_name": "O", "last_name": "N", "email": "one@example.com", "role": "learner",
            "location": str(rule["oslo"].id)}  # fmt: skip
    assert admin_client.post(f"/admin/users/{one.id}", data=data).status_code == 303
    assert one.id in records(app, rule["fire"]) and one.id not in records(app, rule["hyg"])
    response = admin_client.post(
        f"/admin/users/{two.id}/groups", data={"group": str(rule["nurses"].id)}
    )
    assert response.status_code == 303
    assert two.id in records(app, rule["hyg"])


def test_join_path_import(app, admin_client, make, rule):
    boss = make.user(email="boss@example.com")
    rows = [["new@example.com", "New", "Person", "", "Oslo", "Nurses", "boss@example.com"]]
    headers = ["Email", "First name", "Last name", "User ID", "Location", "Groups",
               "Manager email"]  # fmt: skip
    preview = upload(admin_client, "people.csv", csv_bytes(rows, headers=headers))
    assert preview.status_code == 200
    done = admin_client.post(f"/admin/users/import/{job_id(preview)}/confirm")
    assert done.status_code == 303
    uid = user_id_of(app, "new@example.com")
    assert uid in records(app, rule["hyg"]) and uid in records(app, rule["fire"])
    assert get(app, User, uid).manager_id == boss.id


def test_an_unknown_manager_in_an_import_is_a_row_error(app, admin_client, rule):
    rows = [["x@example.com", "X", "Y", "", "", "", "ghost@example.com"]]
    headers = ["Email", "First name", "Last name", "User ID", "Location", "Groups",
               "Manager email"]  # fmt: skip
    preview = upload(admin_client, "people.csv", csv_bytes(rows, headers=headers))
    assert "Unknown manager “ghost@example.com”" in preview.text


def test_join_path_bulk_add_to_group(app, admin_client, make, rule):
    users = [make.user() for _ in range(3)]
    response = admin_client.post(
        "/admin/users/bulk",
        data={"action": "add_group", "group": str(rule["nurses"].id),
              "user_ids": [str(u.id) for u in users]},
        headers=HX,
    )  # fmt: skip
    assert response.status_code == 200
    assert {u.id for u in users} <= set(records(app, rule["hyg"]))


def test_join_path_portal_sign_in_and_provisioning_hook(app, make, rule):
    app.config.update(
        TRUSTED_HEADER_AUTH=True, TRUSTED_PROXIES=["10.0.0.5"], TRUSTED_HEADER_CREATE_USERS=True
    )
    response = app.test_client().get(
        "/my/training",
        headers={"X-Remote-User": "portal@example.com"},
        environ_base={"REMOTE_ADDR": "10.0.0.5"},
    )
    assert response.status_code == 403
    # A portal request carries no group or location: the hook ran and nothing matched.
    uid = user_id_of(app, "portal@example.com")
    assert uid not in records(app, rule["hyg"]) and uid not in records(app, rule["fire"])
    # What provisioning (SCIM) calls once it has set the user's location:
    with app.app_context():
        user = db.session.get(User, uid)
        user.location_id = rule["oslo"].id
        assert enrolment.user_joined(user) == (1, 0)
        assert enrolment.user_joined(user) == (0, 0)  # idempotent
        db.session.commit()
    assert uid in records(app, rule["fire"])


def test_join_path_scim_provisioning(app, client, rule):
    """A SCIM client creates a user in Oslo, then adds them to Nurses: each step is a join."""
    auth = headers(make_token(app))
    body = {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": "prov@example.com",
        "name": {"givenName": "Pro", "familyName": "Visioned"},
        "emails": [{"value": "prov@example.com", "type": "work", "primary": True}],
        "active": True,
        ENTERPRISE: {"department": "Oslo"},
    }
    created = client.post("/scim/v2/Users", json=body, headers=auth)
    assert created.status_code == 201, created.text
    uid = int(created.get_json()["id"])
    assert uid in records(app, rule["fire"]) and uid not in records(app, rule["hyg"])
    member = [{"value": str(uid)}]
    add = {"schemas": [PATCH], "Operations": [{"op": "Add", "path": "members", "value": member}]}
    patched = client.patch(f"/scim/v2/Groups/{rule['nurses'].id}", json=add, headers=auth)
    assert patched.status_code == 200, patched.text
    assert records(app, rule["hyg"])[uid] == (utcnow() + timedelta(days=10)).date()


def test_waiting_places_are_filled_by_the_worker_pass_too(app, make, runner):
    nurses = make.group("Nurses")
    course = make.course("HYG", seats=0)
    members = [make.user(groups=[nurses]) for _ in range(2)]
    with app.app_context():
        enrolment.create_rule(db.session.get(type(nurses), nurses.id), None,
                              db.session.get(Course, course.id), 7, None)  # fmt: skip
        db.session.commit()
    assert waiting(app, course) == {m.id for m in members}
    with app.app_context():
        db.session.execute(
            sa.update(Course).where(Course.id == course.id).values(seats_total=1)
        )  # seats added by a script, say, not through the page
        db.session.commit()
    result = runner.invoke(args=["lms", "worker", "--once"])
    assert result.exit_code == 0 and "1 waiting assignments made" in result.output
    assert set(records(app, course)) == {members[0].id}
    assert waiting(app, course) == {members[1].id}
