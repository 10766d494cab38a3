"""A hypothesis state machine over the licensing domain functions.

Invariants after every step: the pool counters equal what the training records imply, no
pool is ever over-allocated, and no training record ever disappears. The per-test database
is reused across examples, so each example makes its own users and courses and tracks
which records it created."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select

from lmsweb import licensing, sqlite_write_transaction
from lmsweb.extensions import db
from lmsweb.models import Course, CourseAssignment, User

_run = itertools.count()
USERS = 3
COURSES = 2


class LicensePools(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        n = next(_run)
        with sqlite_write_transaction():
            self.users = [
                User(
                    email=f"sm{n}-{i}@example.com",
                    first_name="S",
                    last_name=f"M{i}",
                    status="active",
                )
                for i in range(USERS)
            ]
            self.courses = [
                Course(code=f"SM{n}-{i}", title=f"Course {i}", seats_total=2)
                for i in range(COURSES)
            ]
            db.session.add_all(self.users + self.courses)
            db.session.commit()
        self.user_ids = [u.id for u in self.users]
        self.course_ids = [c.id for c in self.courses]
        self.assignment_ids: set[int] = set()

    # --- helpers -----------------------------------------------------------------------

    def _course(self, i: int) -> Course:
        return db.session.get(Course, self.course_ids[i])

    def _records(self) -> list[CourseAssignment]:
        if not self.assignment_ids:
            return []
        return list(
            db.session.scalars(
                select(CourseAssignment)
                .where(CourseAssignment.id.in_(self.assignment_ids))
                .order_by(CourseAssignment.id)
            )
        )

    def _open(self, pick: int, states: tuple[str, ...]) -> CourseAssignment | None:
        candidates = [a for a in self._records() if a.archived_at is None and a.state in states]
        return candidates[pick % len(candidates)] if candidates else None

    def _attempt(self, change) -> bool:
        """Run one domain change in its own write transaction; commit or roll back."""
        with sqlite_write_transaction():
            try:
                change()
            except licensing.DomainError:
                db.session.rollback()
                return False
            db.session.commit()
            return True

    # --- rules -------------------------------------------------------------------------

    @rule(u=st.integers(0, USERS - 1), c=st.integers(0, COURSES - 1))
    def assign(self, u, c):
        with sqlite_write_transaction():
            user, course = db.session.get(User, self.user_ids[u]), self._course(c)
            could = course.seats_available > 0 and licensing.open_assignment(user, course) is None
            try:
                a = licensing.assign(user, course, date.today() + timedelta(days=7))
            except licensing.DomainError:
                db.session.rollback()
                assert not could
                return
            db.session.commit()
            assert could
            self.assignment_ids.add(a.id)

    @rule(pick=st.integers(0, 20))
    def unassign(self, pick):
        a = self._open(pick, ("assigned",))
        if a is not None:
            assert self._attempt(lambda: licensing.unassign(a))

    @rule(pick=st.integers(0, 20))
    def unassign_started_is_refused(self, pick):
        a = self._open(pick, ("in_progress", "completed"))
        if a is not None:
            assert not self._attempt(lambda: licensing.unassign(a))

    @rule(pick=st.integers(0, 20))
    def start(self, pick):
        a = self._open(pick, ("assigned", "in_progress"))
        if a is not None:
            assert self._attempt(lambda: licensing.start(a))

    @rule(pick=st.integers(0, 20))
    def complete(self, pick):
        a = self._open(pick, ("assigned", "in_progress"))
        if a is not None:
            assert self._attempt(lambda: licensing.complete(a, score=80))

    @rule(pick=st.integers(0, 20))
    def archive_activity(self, pick):
        a = self._open(pick, ("assigned", "in_progress", "completed"))
        if a is not None:
            assert self._attempt(lambda: licensing.archive_activity(a))

    @rule(c=st.integers(0, COURSES - 1), n=st.integers(1, 3))
    def add_seats(self, c, n):
        course = self._course(c)
        before = course.seats_total
        assert self._attempt(lambda: licensing.add_seats(course, n))
        assert self._course(c).seats_total == before + n

    @rule(c=st.integers(0, COURSES - 1), n=st.integers(1, 3))
    def lower_seats(self, c, n):
        course = self._course(c)
        before, taken = course.seats_total, course.seats_reserved + course.seats_used
        ok = self._attempt(lambda: licensing.add_seats(course, -n))
        assert ok == (before - n >= taken)
        assert self._course(c).seats_total == (before - n if ok else before)

    # --- invariants --------------------------------------------------------------------

    @invariant()
    def counters_match_the_records(self):
        records = self._records()
        for course_id in self.course_ids:
            course = db.session.get(Course, course_id)
            mine = [a for a in records if a.course_id == course_id]
            reserved = sum(1 for a in mine if a.state == "assigned" and a.archived_at is None)
            used = sum(1 for a in mine if a.state != "assigned")
            assert (course.seats_reserved, course.seats_used) == (reserved, used)
        assert not [d for d in licensing.pool_drift() if d.course_id in self.course_ids]

    @invariant()
    def available_never_negative(self):
        for course_id in self.course_ids:
            course = db.session.get(Course, course_id)
            assert course.seats_total - course.seats_reserved - course.seats_used >= 0

    @invariant()
    def no_record_disappears(self):
        if self.assignment_ids:
            found = db.session.scalar(
                select(func.count())
                .select_from(CourseAssignment)
                .where(CourseAssignment.id.in_(self.assignment_ids))
            )
            assert found == len(self.assignment_ids)

    @invariant()
    def at_most_one_open_record_per_user_and_course(self):
        open_pairs = [(a.user_id, a.course_id) for a in self._records() if a.archived_at is None]
        assert len(open_pairs) == len(set(open_pairs))

    def teardown(self):
        db.session.rollback()


def test_license_pools_state_machine(app):
    with app.app_context():
        run_state_machine_as_test(
            LicensePools,
            settings=settings(
                max_examples=15,
                stateful_step_count=20,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
