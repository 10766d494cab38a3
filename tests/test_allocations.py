"""Per-location license allocations (#17): "Lisbon may use 2 of these 10 seats". A cap on the
seats (reserved + used) held by the course's records whose user is at the location, enforced
by licensing.take_seats on every path that seats someone; set on the course page by an
organisation-wide administrator; reported by `flask lms check`. Both engines."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from lmsweb import licensing
from lmsweb.extensions import db
from lmsweb.models import (
    AuditEvent,
    Course,
    CourseAssignment,
    Location,
    LocationAllocation,
    User,
    WaitingEnrolment,
)
from tests.conftest import HX, count, get
from tests.import_support import csv_bytes, job_id, upload

FULL = "No licenses left for Lisbon on FIRE-101: Lisbon may use 2, 2 in use."
NOT_ENOUGH = (
    "Not enough licenses left for Lisbon on FIRE-101: Lisbon may use 2, 1 in use, 2 more needed."
)


@pytest.fixture(autouse=True)
def _own_dev_mailbox(app, tmp_path):
    app.instance_path = str(tmp_path)


@pytest.fixture
def org(app, make):
    """FIRE-101 with 10 seats; Lisbon may use 2 and holds 1; Porto has no allocation."""
    lisbon, porto = make.location("Lisbon"), make.location("Porto")
    course = make.course("FIRE-101", seats=10)
    first = make.user(location_id=lisbon.id)
    make.assignment(first, course)
    allocate(app, course, lisbon, 2)
    return {"course": course, "lisbon": lisbon, "porto": porto, "first": first}


def allocate(app, course, location, seats) -> None:
    with app.app_context():
        db.session.add(
            LocationAllocation(course_id=course.id, location_id=location.id, seats=seats)
        )
        db.session.commit()


def held(app, course, location) -> int:
    with app.app_context():
        return licensing.held_at(course.id, location.id)


def assign(client, user, course):
    return client.post(
        f"/admin/users/{user.id}/courses",
        data={"action": "assign", "course": str(course.id), "due_date": ""},
        headers=HX,
    )


def assert_check_clean(runner) -> None:
    result = runner.invoke(args=["lms", "check"])
    assert result.exit_code == 0, result.output
    assert "no drift" in result.output


def test_single_assign_stops_at_the_cap_and_porto_draws_freely(
    app, admin_client, make, org, runner
):
    course, lisbon, porto = org["course"], org["lisbon"], org["porto"]
    second, third = make.user(location_id=lisbon.id), make.user(location_id=lisbon.id)
    assert assign(admin_client, second, course).status_code == 200
    refused = assign(admin_client, third, course)
    assert refused.status_code == 409 and refused.text == FULL
    assert get(app, Course, course.id).seats_reserved == 2
    assert held(app, course, lisbon) == 2
    for _ in range(3):  # no allocation: Porto and people without a location use the pool
        assert assign(admin_client, make.user(location_id=porto.id), course).status_code == 200
    assert assign(admin_client, make.user(), course).status_code == 200
    assert get(app, Course, course.id).seats_reserved == 6
    assert_check_clean(runner)


def test_used_seats_stay_held_after_completion_and_archive(app, admin_client, make, org, runner):
    course, lisbon = org["course"], org["lisbon"]
    done = make.user(location_id=lisbon.id)
    record = make.assignment(done, course, state="completed")
    with app.app_context():
        licensing.archive_activity(db.session.get(CourseAssignment, record.id))
        db.session.commit()
    assert held(app, course, lisbon) == 2  # the completed, archived record used its seat
    refused = assign(admin_client, make.user(location_id=lisbon.id), course)
    assert refused.status_code == 409 and refused.text == FULL
    # An unassigned (never started) record gives its seat back to Lisbon too.
    unassigned = admin_client.post(
        f"/admin/users/{org['first'].id}/courses",
        data={"action": "unassign", "assignment": str(_open_id(app, org["first"], course))},
        headers={**HX, "HX-Target": "courses-dialog-body"},
    )
    assert unassigned.status_code == 200
    assert held(app, course, lisbon) == 1
    assert assign(admin_client, make.user(location_id=lisbon.id), course).status_code == 200
    assert_check_clean(runner)


def _open_id(app, user, course) -> int:
    with app.app_context():
        return db.session.scalar(
            sa.select(CourseAssignment.id).where(
                CourseAssignment.user_id == user.id,
                CourseAssignment.course_id == course.id,
                CourseAssignment.archived_at.is_(None),
            )
        )


def _bulk(client, course, users, **extra):
    return client.post(
        "/admin/users/bulk",
        data={
            "action": "assign_course",
            "course": str(course.id),
            "user_ids": [str(u.id) for u in users],
            "confirm": "1",
            **extra,
        },
        headers=HX,
    )


def test_bulk_assign_refuses_all_or_fits_within_the_cap(app, admin_client, make, org, runner):
    course, lisbon, porto = org["course"], org["lisbon"], org["porto"]
    lisboners = [make.user(location_id=lisbon.id) for _ in range(2)]
    portuenses = [make.user(location_id=porto.id) for _ in range(2)]
    ask = admin_client.post(
        "/admin/users/bulk",
        data={"action": "assign_course", "course": str(course.id),
              "user_ids": [str(u.id) for u in lisboners + portuenses]},
        headers=HX,
    )  # fmt: skip
    assert "needs 4 seats, 3 available" in ask.text and "Assign only 3" in ask.text
    assert NOT_ENOUGH in ask.text  # the dialog says why, before anything is taken
    refused = _bulk(admin_client, course, lisboners + portuenses)
    assert refused.status_code == 409 and NOT_ENOUGH in refused.text
    assert get(app, Course, course.id).seats_reserved == 1
    fitted = _bulk(admin_client, course, lisboners + portuenses, fit="1")
    assert fitted.status_code == 200, fitted.text
    assert held(app, course, lisbon) == 2 and held(app, course, porto) == 2
    assert _open_id(app, lisboners[0], course) and not _open_id(app, lisboners[1], course)
    assert get(app, Course, course.id).seats_reserved == 4
    assert_check_clean(runner)


def test_bulk_assign_counts_per_location_not_per_user(app, admin_client, make, org):
    """However many users, the cap check costs the same statements."""
    course, lisbon = org["course"], org["lisbon"]
    allocate(app, course, org["porto"], 10)

    def statements(users) -> int:
        seen = []

        def count_it(*args):
            seen.append(args[2])

        with app.app_context():
            engine = db.engine
            sa.event.listen(engine, "before_cursor_execute", count_it)
            try:
                licensing.take_seats(db.session.get(Course, course.id), [u.id for u in users])
                db.session.rollback()
            finally:
                sa.event.remove(engine, "before_cursor_execute", count_it)
        return len(seen)

    one = statements([make.user(location_id=org["porto"].id)])
    five = statements([make.user(location_id=org["porto"].id) for _ in range(5)])
    assert one == five
    assert held(app, course, lisbon) == 1


def test_import_beyond_the_cap_is_refused_and_changes_nothing(app, admin_client, make, org):
    rows = [[f"new{n}@example.com", "A", "B", "Lisbon", "FIRE-101"] for n in range(2)]
    headers = ["Email", "First name", "Last name", "Location", "Courses"]
    preview = upload(admin_client, "r.csv", csv_bytes(rows, headers=headers))
    assert preview.status_code == 200
    refused = admin_client.post(f"/admin/users/import/{job_id(preview)}/confirm", headers=HX)
    assert refused.status_code == 409 and NOT_ENOUGH in refused.text
    assert count(app, User, User.email.like("new%")) == 0
    assert get(app, Course, org["course"].id).seats_reserved == 1


def test_a_location_rule_seats_up_to_the_cap_and_the_rest_wait(
    app, admin_client, admin, make, org, runner
):
    from lmsweb import enrolment

    course, lisbon = org["course"], org["lisbon"]
    others = [make.user(location_id=lisbon.id) for _ in range(3)]
    with app.app_context():
        enrolment.create_rule(
            None,
            db.session.get(Location, lisbon.id),
            db.session.get(Course, course.id),
            10,
            db.session.get(User, admin.id),
        )
        db.session.commit()
    assert held(app, course, lisbon) == 2
    with app.app_context():
        waiting = db.session.scalars(
            sa.select(WaitingEnrolment.user_id).where(WaitingEnrolment.resolved_at.is_(None))
        ).all()
    assert len(waiting) == 2 and set(waiting) <= {u.id for u in others}
    # Raising the cap lets the waiting people have their licenses.
    raised = admin_client.post(
        f"/admin/courses/{course.id}/allocations/{lisbon.id}", data={"seats": "4"}, headers=HX
    )
    assert raised.status_code == 200, raised.text
    toast = json.loads(raised.headers["HX-Trigger"])["showToast"]["message"]
    assert toast == "Lisbon may use 4 FIRE-101 licenses (was 2). 2 waiting assignments were made."
    assert held(app, course, lisbon) == 4
    assert_check_clean(runner)


def test_undo_of_an_unassign_is_refused_when_the_location_is_full(app, admin_client, make, org):
    course, lisbon = org["course"], org["lisbon"]
    first = org["first"]
    response = admin_client.post(
        f"/admin/users/{first.id}/courses",
        data={"action": "unassign", "assignment": str(_open_id(app, first, course))},
        headers={**HX, "HX-Target": "courses-dialog-body"},
    )
    offer = json.loads(response.headers["HX-Trigger"])["showToast"]["undo"]
    make.assignment(make.user(location_id=lisbon.id), course)
    make.assignment(make.user(location_id=lisbon.id), course)
    refused = admin_client.post(offer["url"], data={"token": offer["token"]}, headers=HX)
    assert refused.status_code == 409 and FULL in refused.text
    assert held(app, course, lisbon) == 2
    assert get(app, Course, course.id).seats_reserved == 2


def test_renewal_waits_when_the_location_is_full(app, make, org, runner):
    """The worker renews a Lisbon completion only within Lisbon's allocation."""
    from datetime import datetime

    import time_machine

    course, lisbon = org["course"], org["lisbon"]
    with app.app_context():
        c = db.session.get(Course, course.id)
        c.valid_for_days, c.renew_before_days = 365, 30
        db.session.commit()
    done = make.user(location_id=lisbon.id)
    with time_machine.travel(datetime(2025, 12, 1, 9, 0), tick=False):
        record = make.assignment(done, course, state="completed")
    assert held(app, course, lisbon) == 2  # Lisbon is full: no renewal seat
    day = date(2025, 12, 1) + timedelta(days=340)
    with time_machine.travel(datetime(day.year, day.month, day.day, 9, 0), tick=False):
        result = runner.invoke(args=["lms", "worker", "--once", "--now", f"{day}T09:00"])
    assert result.exit_code == 0, result.output
    assert _open_id(app, done, course) == record.id  # not renewed: waits
    assert count(app, WaitingEnrolment, WaitingEnrolment.user_id == done.id) == 1
    assert held(app, course, lisbon) == 2
    assert_check_clean(runner)


# --- the course page ----------------------------------------------------------------------


def test_an_admin_adds_changes_and_removes_an_allocation(app, admin_client, make, runner):
    lisbon = make.location("Lisbon")
    course = make.course("FIRE-101", seats=200)
    page = admin_client.get(f"/admin/courses/{course.id}")
    assert "Location allocations" in page.text and "No location has an allocation" in page.text
    added = admin_client.post(
        f"/admin/courses/{course.id}/allocations",
        data={"location": str(lisbon.id), "seats": "40"},
        headers=HX,
    )
    assert added.status_code == 200, added.text
    assert 'id="allocation-' in added.text and 'data-allocation="seats">40<' in added.text
    toast = json.loads(added.headers["HX-Trigger"])["showToast"]["message"]
    assert toast == "Lisbon may use 40 of the 200 FIRE-101 licenses."
    again = admin_client.post(
        f"/admin/courses/{course.id}/allocations",
        data={"location": str(lisbon.id), "seats": "5"},
        headers=HX,
    )
    assert again.status_code == 409 and "already has an allocation" in again.text
    changed = admin_client.post(
        f"/admin/courses/{course.id}/allocations/{lisbon.id}", data={"seats": "30"}
    )
    assert changed.status_code == 303
    removed = admin_client.post(f"/admin/courses/{course.id}/allocations/{lisbon.id}/remove")
    assert removed.status_code == 303
    assert count(app, LocationAllocation) == 0
    with app.app_context():
        events = db.session.execute(
            sa.select(AuditEvent.action, AuditEvent.details)
            .where(AuditEvent.action.like("allocation.%"))
            .order_by(AuditEvent.id)
        ).all()
    assert [(a, d["seats"]) for a, d in events] == [
        ("allocation.create", {"from": None, "to": 40}),
        ("allocation.update", {"from": 40, "to": 30}),
        ("allocation.remove", {"from": 30, "to": None}),
    ]
    assert_check_clean(runner)


def test_a_cap_below_what_is_held_or_above_the_pool_is_refused(app, admin_client, make, org):
    course, lisbon, porto = org["course"], org["lisbon"], org["porto"]
    make.assignment(make.user(location_id=lisbon.id), course, state="in_progress")
    url = f"/admin/courses/{course.id}/allocations/{lisbon.id}"
    below = admin_client.post(url, data={"seats": "1"}, headers=HX)
    assert below.status_code == 409
    assert (
        below.text
        == "Lisbon already holds 2 FIRE-101 licenses; its allocation cannot be below that."
    )
    above = admin_client.post(
        f"/admin/courses/{course.id}/allocations",
        data={"location": str(porto.id), "seats": "11"},
        headers=HX,
    )
    assert above.status_code == 409
    assert above.text == "FIRE-101 has 10 licenses in total; Porto cannot be allowed 11."
    for bad in ({"seats": "-1"}, {"seats": "x"}, {}):
        response = admin_client.post(url, data=bad, headers=HX)
        assert response.status_code == 422, (bad, response.text)
    no_location = admin_client.post(
        f"/admin/courses/{course.id}/allocations", data={"location": "999999", "seats": "1"}
    )
    assert no_location.status_code == 303  # flashed, back to the course
    gone = admin_client.post(
        f"/admin/courses/{course.id}/allocations/{porto.id}/remove", headers=HX
    )
    assert gone.status_code == 409 and gone.text == "Porto has no allocation of FIRE-101."
    with app.app_context():
        assert db.session.get(LocationAllocation, (course.id, lisbon.id)).seats == 2
    assert count(app, LocationAllocation) == 1
    assert count(app, AuditEvent, AuditEvent.action.like("allocation.%")) == 0


def test_check_reports_an_allocation_exceeded(app, make, org, runner):
    """A user moved into a full location keeps their seat (moving never moves seats); the
    safety net reports the location over its cap, and the next take there is refused."""
    course, lisbon = org["course"], org["lisbon"]
    mover = make.user(location_id=org["porto"].id)
    make.assignment(mover, course)
    make.assignment(make.user(location_id=lisbon.id), course)
    with app.app_context():
        db.session.get(User, mover.id).location_id = lisbon.id
        db.session.commit()
    result = runner.invoke(args=["lms", "check"])
    assert result.exit_code == 1
    assert "OVER FIRE-101: Lisbon may use 2, holds 3" in result.output


def test_a_scoped_administrator_cannot_set_allocations(app, make, org):
    """Allocations divide the organisation's pool: only an organisation-wide administrator."""
    from lmsweb.models import Scope
    from tests.conftest import login

    with app.app_context():
        scope = Scope(locations=[db.session.get(Location, org["lisbon"].id)])
        db.session.add(scope)
        db.session.commit()
        scope_id = scope.id
    scoped = make.admin(email="lisbon.admin@example.com", scope_id=scope_id)
    client = app.test_client()
    login(client, scoped.email)
    course, lisbon = org["course"], org["lisbon"]
    for url, data in (
        (
            f"/admin/courses/{course.id}/allocations",
            {"location": str(org["porto"].id), "seats": "5"},
        ),
        (f"/admin/courses/{course.id}/allocations/{lisbon.id}", {"seats": "9"}),
        (f"/admin/courses/{course.id}/allocations/{lisbon.id}/remove", {}),
    ):
        assert client.post(url, data=data, headers=HX).status_code == 403, url
    with app.app_context():
        assert db.session.get(LocationAllocation, (course.id, lisbon.id)).seats == 2
    assert count(app, LocationAllocation) == 1


def test_a_location_with_an_allocation_cannot_be_removed(app, admin_client, make):
    empty = make.location("Empty")
    course = make.course("X-1")
    allocate(app, course, empty, 1)
    refused = admin_client.post(f"/admin/locations/{empty.id}/remove", headers=HX)
    assert refused.status_code == 409
    assert refused.text == (
        "“Empty” cannot be removed: it has an allocation of X-1. "
        "Remove the allocation on the course's page first."
    )
    assert count(app, Location, Location.id == empty.id) == 1
    admin_client.post(f"/admin/courses/{course.id}/allocations/{empty.id}/remove")
    assert admin_client.post(f"/admin/locations/{empty.id}/remove", headers=HX).status_code == 200
    assert count(app, Location, Location.id == empty.id) == 0
