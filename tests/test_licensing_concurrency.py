"""Rule 1 under real concurrency: 40 assign requests race for 7 seats through the HTTP views.

Each thread has its own test client and therefore its own database connection; a barrier
releases them together. Runs on whichever engine the suite runs on (SQLite file or
PostgreSQL)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import select

from lmsweb.extensions import db
from lmsweb.models import AuditEvent, Course, CourseAssignment
from tests.conftest import HX, count, get

REQUESTS = 40
SEATS = 7


@pytest.fixture
def app_config():
    # One connection per racing thread, so the pool itself never serialises them.
    return {
        "SQLALCHEMY_ENGINE_OPTIONS": {
            "pool_pre_ping": True,
            "pool_size": REQUESTS + 2,
            "max_overflow": 2,
            "pool_timeout": 120,
        }
    }


def _clients(app, signed_in, n):
    """n independent clients sharing the administrator's signed-in session cookie."""
    name = app.config["SESSION_COOKIE_NAME"]
    cookie = signed_in.get_cookie(name)
    clients = []
    for _ in range(n):
        client = app.test_client()
        client.set_cookie(name, cookie.value, domain=cookie.domain)
        client.csrf_token = signed_in.csrf_token
        clients.append(client)
    return clients


def test_forty_concurrent_assigns_take_exactly_the_seven_free_seats(app, admin_client, make):
    course = make.course("RACE-1", seats=SEATS + 3)
    # Three seats already taken (one started), so exactly SEATS remain available.
    make.assignment(make.user(), course)
    make.assignment(make.user(), course)
    make.assignment(make.user(), course, state="in_progress")
    assert get(app, Course, course.id).seats_available == SEATS
    users = [make.user() for _ in range(REQUESTS)]
    clients = _clients(app, admin_client, REQUESTS)
    barrier = threading.Barrier(REQUESTS)
    results: list[tuple[int, str]] = [(0, "")] * REQUESTS

    def race(i: int) -> None:
        barrier.wait()
        response = clients[i].post(
            f"/admin/users/{users[i].id}/courses",
            data={"action": "assign", "course": course.id, "due_date": ""},
            headers=HX,
        )
        results[i] = (response.status_code, response.text)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(REQUESTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    statuses = Counter(status for status, _ in results)
    assert statuses == {200: SEATS, 409: REQUESTS - SEATS}, statuses
    refusals = [text for status, text in results if status == 409]
    assert all(text.startswith("No licenses available for RACE-1") for text in refusals)

    pool = get(app, Course, course.id)
    assert (pool.seats_total, pool.seats_reserved, pool.seats_used) == (SEATS + 3, SEATS + 2, 1)
    assert pool.seats_available == 0
    assert count(app, CourseAssignment, CourseAssignment.course_id == course.id) == SEATS + 3
    # Every success audited, no refusal audited.
    assert count(app, AuditEvent, AuditEvent.action == "assignment.assign") == SEATS
    with app.app_context():
        winners = set(
            db.session.scalars(
                select(CourseAssignment.user_id).where(
                    CourseAssignment.user_id.in_([u.id for u in users])
                )
            )
        )
    assert winners == {users[i].id for i, (status, _) in enumerate(results) if status == 200}

    check = app.test_cli_runner().invoke(args=["lms", "check"])
    assert check.exit_code == 0, check.output
    assert "no drift" in check.output


def test_concurrent_seat_changes_are_not_lost(app, admin_client, make):
    """Relative UPDATEs: 10 administrators adding 3 licenses at once add 30."""
    course = make.course("GROW-1", seats=5)
    clients = _clients(app, admin_client, 10)
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def grow(client) -> None:
        barrier.wait()
        statuses.append(
            client.post(
                f"/admin/courses/{course.id}/seats", data={"add": "3"}, headers=HX
            ).status_code
        )

    threads = [threading.Thread(target=grow, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * len(clients)
    assert get(app, Course, course.id).seats_total == 5 + 3 * len(clients)


def test_double_submitted_assign_takes_one_seat(app, admin_client, make):
    """Five identical requests at once (a double click, a retry): one record, one seat."""
    course = make.course("TWICE-1", seats=5)
    user = make.user()
    clients = _clients(app, admin_client, 5)
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def assign(client) -> None:
        barrier.wait()
        response = client.post(
            f"/admin/users/{user.id}/courses",
            data={"action": "assign", "course": course.id},
            headers=HX,
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=assign, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 409, 409, 409, 409]
    pool = get(app, Course, course.id)
    assert (pool.seats_reserved, pool.seats_available) == (1, 4)
    assert count(app, CourseAssignment, CourseAssignment.user_id == user.id) == 1
