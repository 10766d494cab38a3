"""Seat movements racing each other from separate processes (issue #14, "pools drift").

Two worker processes, each with its own app and database connections, post the two
requests of a scenario at the same moment (a barrier releases them), ROUNDS times on
fresh records. After every round the pool must equal what the training records imply
(licensing.pool_drift() is empty) and never hold more open records than seats; after
every scenario `flask lms check` is clean. Runs on the suite's engine: SQLite (WAL, busy
timeout) by default, PostgreSQL with TEST_DATABASE_URL."""

from __future__ import annotations

import json
from collections import Counter

from sqlalchemy import func, select

from lmsweb import licensing
from lmsweb.extensions import db
from lmsweb.models import Course, CourseAssignment, User
from tests.race_support import Request
from tests.race_support import assign_request as _assign

ROUNDS = 20


def _assert_pools_agree(app) -> None:
    with app.app_context():
        assert licensing.pool_drift() == []
        open_records = dict(
            db.session.execute(
                select(CourseAssignment.course_id, func.count())
                .where(CourseAssignment.archived_at.is_(None))
                .group_by(CourseAssignment.course_id)
            ).all()
        )
        for course in db.session.scalars(select(Course)):
            assert open_records.get(course.id, 0) <= course.seats_total, course.code
            assert course.seats_reserved + course.seats_used <= course.seats_total, course.code


def _assert_check_clean(app) -> None:
    check = app.test_cli_runner().invoke(args=["lms", "check"])
    assert check.exit_code == 0, check.output
    assert "no drift" in check.output


def _record(app, assignment_id: int) -> CourseAssignment:
    with app.app_context():
        record = db.session.get(CourseAssignment, assignment_id)
        db.session.expunge(record)
        return record


def _unassign(app, admin_client, record) -> Request:
    return Request.by(
        app,
        admin_client,
        f"/admin/users/{record.user_id}/courses",
        action="unassign",
        assignment=str(record.id),
    )


def test_double_unassign_returns_one_seat(app, database_url, racers, admin_client, make):
    """Two administrators unassign the same record: one succeeds, one is told it is gone."""
    outcomes = Counter()
    for n in range(ROUNDS):
        course = make.course(f"DU-{n}", seats=3)
        record = make.assignment(make.user(), course)
        make.assignment(make.user(), course)
        request = _unassign(app, admin_client, record)
        answers = racers.race(database_url, [request, request])
        statuses = sorted(status for status, _ in answers)
        assert statuses == [200, 409], answers
        refusal = next(text for status, text in answers if status == 409)
        assert refusal == "That assignment is already archived."
        with app.app_context():
            pool = db.session.get(Course, course.id)
            assert (pool.seats_reserved, pool.seats_used, pool.seats_available) == (1, 0, 2)
        _assert_pools_agree(app)
        outcomes[tuple(statuses)] += 1
    assert outcomes == {(200, 409): ROUNDS}
    _assert_check_clean(app)


def test_unassign_racing_start_leaves_one_consistent_outcome(
    app, database_url, racers, admin_client, learner, learner_client, make
):
    """An administrator unassigns while the learner starts: exactly one of them wins."""
    winners = Counter()
    for n in range(ROUNDS):
        course = make.course(f"US-{n}", seats=3)
        record = make.assignment(learner, course)
        start = Request.by(app, learner_client, f"/my/training/{record.id}/start")
        answers = racers.race(database_url, [_unassign(app, admin_client, record), start])
        (unassign_status, _), (start_status, _) = answers
        # A started course with a launch link answers 204 + HX-Redirect (the course opens).
        assert sorted([unassign_status, start_status]) in ([200, 409], [204, 409]), answers
        after = _record(app, record.id)
        if unassign_status == 200:
            winners["unassign"] += 1
            assert (after.archived_at is not None, after.state) == (True, "assigned")
            assert answers[1][1] == "This training record is archived."
        else:
            winners["start"] += 1
            assert (after.archived_at, after.state) == (None, "in_progress")
            assert "cannot be unassigned" in answers[0][1]
        _assert_pools_agree(app)
    assert sum(winners.values()) == ROUNDS
    _assert_check_clean(app)


def test_archive_user_racing_assign_never_leaves_an_archived_user_assigned(
    app, database_url, racers, admin_client, make
):
    """Archive a user while another administrator assigns them a course."""
    outcomes = Counter()
    for n in range(ROUNDS):
        held, wanted = make.course(f"AH-{n}", seats=2), make.course(f"AW-{n}", seats=1)
        user = make.user()
        make.assignment(user, held)
        archive = Request.by(app, admin_client, f"/admin/users/{user.id}/archive", mode="user")
        answers = racers.race(database_url, [archive, _assign(app, admin_client, user, wanted)])
        (archive_status, _), (assign_status, assign_text) = answers
        assert archive_status == 200, answers
        assert assign_status in (200, 409), answers
        if assign_status == 409:
            assert "is archived" in assign_text
        with app.app_context():
            assert db.session.get(User, user.id).status == "archived"
            still_open = db.session.scalar(
                select(func.count())
                .select_from(CourseAssignment)
                .where(CourseAssignment.user_id == user.id, CourseAssignment.archived_at.is_(None))
            )
            assert still_open == 0
            assert db.session.get(Course, wanted.id).seats_available == 1
        _assert_pools_agree(app)
        outcomes[assign_status] += 1
    assert sum(outcomes.values()) == ROUNDS
    _assert_check_clean(app)


def test_restore_racing_assign_assigns_only_an_active_user(
    app, database_url, racers, admin_client, make
):
    """Restore an archived user while another administrator assigns them a course."""
    outcomes = Counter()
    for n in range(ROUNDS):
        course = make.course(f"RA-{n}", seats=1)
        user = make.user(status="archived")
        restore = Request.by(app, admin_client, f"/admin/users/{user.id}/restore")
        answers = racers.race(database_url, [restore, _assign(app, admin_client, user, course)])
        (restore_status, _), (assign_status, assign_text) = answers
        assert restore_status == 200, answers
        assert assign_status in (200, 409), answers
        with app.app_context():
            assert db.session.get(User, user.id).status == "active"
            pool = db.session.get(Course, course.id)
            assert pool.seats_reserved == (1 if assign_status == 200 else 0)
        if assign_status == 409:
            assert "is archived" in assign_text
        _assert_pools_agree(app)
        outcomes[assign_status] += 1
    assert sum(outcomes.values()) == ROUNDS
    _assert_check_clean(app)


def test_two_seat_reductions_never_cut_below_what_is_assigned(
    app, database_url, racers, admin_client, make
):
    """Two administrators each remove 2 of the 2 free licenses: only one can."""
    for n in range(ROUNDS):
        course = make.course(f"SC-{n}", seats=5)
        for _ in range(3):
            make.assignment(make.user(), course)
        remove = Request.by(app, admin_client, f"/admin/courses/{course.id}/seats", add="-2")
        answers = racers.race(database_url, [remove, remove])
        assert sorted(status for status, _ in answers) == [200, 409], answers
        with app.app_context():
            pool = db.session.get(Course, course.id)
            assert (pool.seats_total, pool.seats_reserved, pool.seats_available) == (3, 3, 0)
        _assert_pools_agree(app)
    _assert_check_clean(app)


def test_bulk_assign_racing_single_assign_takes_each_seat_once(
    app, database_url, racers, admin_client, make
):
    """A bulk assign to three users races a single assign to one of them."""
    outcomes = Counter()
    for n in range(ROUNDS):
        course = make.course(f"BA-{n}", seats=3)
        users = [make.user() for _ in range(3)]
        bulk = Request.by(
            app,
            admin_client,
            "/admin/users/bulk",
            action="assign_course",
            course=str(course.id),
            user_ids=[str(u.id) for u in users],
            confirm="1",
        )
        answers = racers.race(database_url, [bulk, _assign(app, admin_client, users[0], course)])
        (bulk_status, _), (single_status, _) = answers
        assert bulk_status in (200, 409) and single_status in (200, 409), answers
        with app.app_context():
            per_user = Counter(
                db.session.scalars(
                    select(CourseAssignment.user_id).where(CourseAssignment.course_id == course.id)
                )
            )
            assert all(count == 1 for count in per_user.values()), per_user
            assert db.session.get(Course, course.id).seats_reserved == len(per_user)
        _assert_pools_agree(app)
        outcomes[(bulk_status, single_status)] += 1
    assert sum(outcomes.values()) == ROUNDS
    _assert_check_clean(app)


def _undo_of_unassign(app, admin_client, record) -> Request:
    """Unassign `record` (the seat goes back) and return the POST of its toast's Undo."""
    response = admin_client.post(
        f"/admin/users/{record.user_id}/courses",
        data={"action": "unassign", "assignment": record.id},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200, response.text
    offer = json.loads(response.headers["HX-Trigger"])["showToast"]["undo"]
    return Request.by(app, admin_client, offer["url"], token=offer["token"])


def _open_on(app, course) -> int:
    with app.app_context():
        return db.session.scalar(
            select(func.count()).where(
                CourseAssignment.course_id == course.id, CourseAssignment.archived_at.is_(None)
            )
        )


def test_undo_racing_an_assign_takes_the_freed_seat_once(
    app, database_url, racers, admin_client, make
):
    """An Undo of an unassign and another person's assign race for the one seat the
    unassign freed: one of them gets it, the other is refused."""
    for n in range(ROUNDS):
        course = make.course(f"UN-{n}", seats=1)
        undo = _undo_of_unassign(app, admin_client, make.assignment(make.user(), course))
        assign = _assign(app, admin_client, make.user(), course)
        answers = racers.race(database_url, [undo, assign])
        statuses = [status for status, _ in answers]
        assert statuses in ([204, 409], [409, 200]), answers
        assert _open_on(app, course) == 1
        _assert_pools_agree(app)
    _assert_check_clean(app)


def test_the_same_undo_twice_at_once_reopens_the_record_once(
    app, database_url, racers, admin_client, make
):
    """Two presses of the same Undo at the same moment: the record reopens once, with one
    seat."""
    for n in range(ROUNDS):
        course = make.course(f"UU-{n}", seats=2)
        undo = _undo_of_unassign(app, admin_client, make.assignment(make.user(), course))
        answers = racers.race(database_url, [undo, undo])
        assert sorted(status for status, _ in answers) == [204, 409], answers
        assert _open_on(app, course) == 1
        with app.app_context():
            assert db.session.get(Course, course.id).seats_reserved == 1
        _assert_pools_agree(app)
    _assert_check_clean(app)


def _undo_of_bulk_archive(app, admin_client, users) -> Request:
    """Archive `users` in bulk (their unstarted records' seats go back) and return the POST
    of its toast's Undo."""
    response = admin_client.post(
        "/admin/users/bulk",
        data={"action": "archive_user", "user_ids": [str(u.id) for u in users], "confirm": "1"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200, response.text
    offer = json.loads(response.headers["HX-Trigger"])["showToast"]["undo"]
    return Request.by(app, admin_client, offer["url"], token=offer["token"])


def _statuses(app, users) -> set[str]:
    with app.app_context():
        return set(
            db.session.scalars(select(User.status).where(User.id.in_([u.id for u in users])))
        )


def test_bulk_undo_racing_an_assign_is_all_or_nothing(
    app, database_url, racers, admin_client, make
):
    """The Undo of a bulk archive needs back both seats the archive freed, while another
    person assigns one of them: either the Undo brings back both users with both records and
    the assign is refused, or the assign wins and the Undo changes nothing."""
    winners = Counter()
    for n in range(ROUNDS):
        course = make.course(f"BU-{n}", seats=2)
        archived = [make.user(), make.user()]
        for user in archived:
            make.assignment(user, course)
        undo = _undo_of_bulk_archive(app, admin_client, archived)
        assign = _assign(app, admin_client, make.user(), course)
        answers = racers.race(database_url, [undo, assign])
        statuses = [status for status, _ in answers]
        assert statuses in ([204, 409], [409, 200]), answers
        if statuses[0] == 204:
            winners["undo"] += 1
            assert _statuses(app, archived) == {"active"}
        else:
            winners["assign"] += 1
            assert _statuses(app, archived) == {"archived"}
            assert answers[0][1] == (
                f"No licenses available for BU-{n}: the undo needs 2, 1 available; "
                "nothing was undone."
            ), answers
        assert _open_on(app, course) == (2 if statuses[0] == 204 else 1)
        _assert_pools_agree(app)
    assert sum(winners.values()) == ROUNDS
    _assert_check_clean(app)


def test_the_same_bulk_undo_twice_at_once_restores_once(
    app, database_url, racers, admin_client, make
):
    """Two presses of a bulk archive's Undo at the same moment: the users and their records
    come back once, each record with one seat."""
    for n in range(ROUNDS):
        course = make.course(f"BB-{n}", seats=3)
        archived = [make.user(), make.user()]
        for user in archived:
            make.assignment(user, course)
        undo = _undo_of_bulk_archive(app, admin_client, archived)
        answers = racers.race(database_url, [undo, undo])
        assert sorted(status for status, _ in answers) == [204, 409], answers
        assert _statuses(app, archived) == {"active"}
        assert _open_on(app, course) == 2
        with app.app_context():
            assert db.session.get(Course, course.id).seats_reserved == 2
        _assert_pools_agree(app)
    _assert_check_clean(app)
