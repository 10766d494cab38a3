"""Per-location allocations under a race of separate processes (#17): the cap holds as the
pool does. Two worker processes (tests/race_support.py) post at the same moment, ROUNDS
times on fresh courses; after every round the location holds no more than its cap, the
pool equals its records and `flask lms check` (drift and allocations) is clean. SQLite by
default, PostgreSQL with TEST_DATABASE_URL."""

from __future__ import annotations

from collections import Counter

from lmsweb import licensing
from lmsweb.extensions import db
from lmsweb.models import Course, LocationAllocation
from tests.race_support import Request
from tests.race_support import assign_request as _assign

ROUNDS = 20


def _capped(app, make, code: str, lisbon, cap: int, holding: int):
    """A pool of 10; Lisbon may use `cap` and holds `holding`."""
    course = make.course(code, seats=10)
    for _ in range(holding):
        make.assignment(make.user(location_id=lisbon.id), course)
    with app.app_context():
        db.session.add(LocationAllocation(course_id=course.id, location_id=lisbon.id, seats=cap))
        db.session.commit()
    return course


def _state(app, course, lisbon) -> tuple[int, int, int]:
    """(seats Lisbon holds, its cap, the pool's reserved seats); the pool agrees."""
    with app.app_context():
        assert licensing.pool_drift() == []
        assert licensing.allocations_exceeded() == []
        cap = db.session.get(LocationAllocation, (course.id, lisbon.id)).seats
        pool = db.session.get(Course, course.id)
        return licensing.held_at(course.id, lisbon.id), cap, pool.seats_reserved


def _assert_check_clean(app) -> None:
    check = app.test_cli_runner().invoke(args=["lms", "check"])
    assert check.exit_code == 0, check.output
    assert "no drift" in check.output


def test_two_assigns_of_a_locations_last_seat_one_wins(
    app, database_url, racers, admin_client, make
):
    """Lisbon may use 2 and holds 1: two Lisbon people are assigned at once; one gets it."""
    lisbon = make.location("Lisbon")
    outcomes = Counter()
    for n in range(ROUNDS):
        course = _capped(app, make, f"LA-{n}", lisbon, cap=2, holding=1)
        one, two = make.user(location_id=lisbon.id), make.user(location_id=lisbon.id)
        answers = racers.race(
            database_url,
            [_assign(app, admin_client, one, course), _assign(app, admin_client, two, course)],
        )
        statuses = sorted(status for status, _ in answers)
        assert statuses == [200, 409], answers
        refusal = next(text for status, text in answers if status == 409)
        assert refusal == f"No licenses left for Lisbon on LA-{n}: Lisbon may use 2, 2 in use."
        assert _state(app, course, lisbon) == (2, 2, 2)
        outcomes[tuple(statuses)] += 1
    assert outcomes == {(200, 409): ROUNDS}
    _assert_check_clean(app)


def test_bulk_assign_racing_single_assign_across_the_cap(
    app, database_url, racers, admin_client, make
):
    """Lisbon may use 3 and holds 1. A bulk assign of two Lisbon people and one from Porto
    races a single assign of a third Lisbon person: whichever comes second does not fit."""
    lisbon, porto = make.location("Lisbon"), make.location("Porto")
    winners = Counter()
    for n in range(ROUNDS):
        course = _capped(app, make, f"LB-{n}", lisbon, cap=3, holding=1)
        bulk_users = [make.user(location_id=lisbon.id) for _ in range(2)]
        bulk_users.append(make.user(location_id=porto.id))
        single = make.user(location_id=lisbon.id)
        bulk = Request.by(
            app,
            admin_client,
            "/admin/users/bulk",
            action="assign_course",
            course=str(course.id),
            user_ids=[str(u.id) for u in bulk_users],
            confirm="1",
        )
        answers = racers.race(database_url, [bulk, _assign(app, admin_client, single, course)])
        (bulk_status, bulk_text), (single_status, single_text) = answers
        assert sorted([bulk_status, single_status]) == [200, 409], answers
        held, cap, reserved = _state(app, course, lisbon)
        if bulk_status == 200:
            winners["bulk"] += 1
            assert single_text.startswith(f"No licenses left for Lisbon on LB-{n}")
            assert (held, reserved) == (3, 4)
        else:
            winners["single"] += 1
            assert f"Not enough licenses left for Lisbon on LB-{n}" in bulk_text
            assert (held, reserved) == (2, 2)
        assert held <= cap
    assert sum(winners.values()) == ROUNDS
    _assert_check_clean(app)


def test_lowering_the_cap_racing_an_assign_never_leaves_it_overdrawn(
    app, database_url, racers, admin_client, make
):
    """Lisbon may use 3 and holds 2: an administrator lowers the cap to 2 while another
    assigns a Lisbon person. Either the cap drops and the assign is refused, or the assign
    is made and the lower cap is refused (below what Lisbon holds)."""
    lisbon = make.location("Lisbon")
    winners = Counter()
    for n in range(ROUNDS):
        course = _capped(app, make, f"LC-{n}", lisbon, cap=3, holding=2)
        lower = Request.by(
            app, admin_client, f"/admin/courses/{course.id}/allocations/{lisbon.id}", seats="2"
        )
        person = make.user(location_id=lisbon.id)
        answers = racers.race(database_url, [lower, _assign(app, admin_client, person, course)])
        (lower_status, lower_text), (assign_status, _) = answers
        assert sorted([lower_status, assign_status]) == [200, 409], answers
        held, cap, _ = _state(app, course, lisbon)
        if lower_status == 200:
            winners["lower"] += 1
            assert (held, cap) == (2, 2)
        else:
            winners["assign"] += 1
            assert "already holds 3" in lower_text
            assert (held, cap) == (3, 3)
    assert sum(winners.values()) == ROUNDS
    _assert_check_clean(app)
