"""The compliance schedule of a course, and the worker's pass over it.

One pass, at a given clock: assignment notices, reminders before the due date, repeated
overdue reminders, escalations to managers and renewals of completions about to expire;
then seats for waiting enrolments. Every occurrence is claimed with a unique key in
`schedule_notices` (INSERT ... ON CONFLICT DO NOTHING) before anything is sent, so two
workers running the same pass never email the same occurrence twice. Statements are per
course and per batch, never per user.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, exists, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased

from .extensions import db
from .models import (
    Course,
    CourseAssignment,
    OutboundEmail,
    ScheduleNotice,
    User,
    WaitingEnrolment,
    utcnow,
)
from .notifications import email_renderer, public_url


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def _every(n: int) -> str:
    return {1: "daily", 7: "weekly", 14: "every two weeks", 30: "monthly"}.get(
        n, f"every {_days(n)}"
    )


def _validity(n: int) -> str:
    return {365: "yearly", 730: "every two years", 1095: "every three years"}.get(
        n, f"every {_days(n)}"
    )


def describe(course: Course) -> str:
    """The schedule in plain words, as the course page shows it."""
    if not course.emails_enabled:
        sentences = ["Sends no emails about this course"]
    else:
        first = (
            f"Reminds {_days(course.remind_before_days)} before the due date"
            if course.remind_before_days
            else "Sends no reminder before the due date"
        )
        if course.remind_overdue_every_days:
            first += f", then {_every(course.remind_overdue_every_days)} while overdue"
        else:
            first += ", and none while overdue"
        sentences = [first]
        if course.escalate_after_days:
            sentences.append(f"tells the manager after {_days(course.escalate_after_days)} overdue")
        else:
            sentences.append("never tells the manager")
    if course.valid_for_days:
        sentences.append(
            f"renews {_validity(course.valid_for_days)} "
            f"({_days(course.renew_before_days)} before a completion expires)"
        )
    else:
        sentences.append("a completion never expires")
    return "; ".join(sentences) + "."


# --- the worker's pass -------------------------------------------------------------------

CHUNK = 500
# Most urgent first: the subject of a learner's email names the most urgent item.
LEARNER_KINDS = ("overdue", "renewal", "reminder", "assignment")


@dataclass
class Item:
    """One course in a learner's email."""

    kind: str  # assignment, reminder, overdue, renewal
    assignment_id: int
    user_id: int
    course_id: int
    due_date: date | None


@dataclass
class PassResult:
    learner_emails: int = 0
    manager_emails: int = 0
    items: Counter = field(default_factory=Counter)
    renewals: int = 0
    waiting_resolved: int = 0
    digests: int = 0

    def summary(self) -> str:
        counts = ", ".join(f"{self.items[k]} {k}" for k in LEARNER_KINDS if self.items[k])
        return (
            f"Schedule: {self.learner_emails} learner emails ({counts or 'nothing due'}), "
            f"{self.manager_emails} escalations to managers, {self.renewals} renewals, "
            f"{self.waiting_resolved} waiting assignments made, {self.digests} digests."
        )


def _insert(model):
    if db.engine.dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def claim_keys(rows: list[dict[str, Any]]) -> set[str]:
    """Insert notice rows; the keys that were not there yet are this worker's to act on."""
    if not rows:
        return set()
    table = ScheduleNotice.__table__
    # One cached statement, executed many (insertmanyvalues batches it, RETURNING included).
    stmt = _insert(table).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.key)
    # In key order, so two workers claiming the same keys wait for each other, never deadlock.
    rows = sorted(rows, key=lambda row: row["key"])
    claimed: set[str] = set()
    for start in range(0, len(rows), CHUNK):
        claimed.update(db.session.scalars(stmt, rows[start : start + CHUNK]))
    return claimed


def _notice(kind: str, assignment_id: int, user_id: int, occurrence: date, now) -> dict:
    return {
        "key": f"{kind}:{assignment_id}:{occurrence.isoformat()}",
        "kind": kind,
        "assignment_id": assignment_id,
        "user_id": user_id,
        "occurrence": occurrence,
        "created_at": now,
    }


def _open(course: Course):
    """This course's open, unfinished records of active users (the ones emails are about)."""
    return select(
        CourseAssignment.id,
        CourseAssignment.user_id,
        CourseAssignment.due_date,
    ).where(
        CourseAssignment.course_id == course.id,
        CourseAssignment.archived_at.is_(None),
        CourseAssignment.state != "completed",
        CourseAssignment.user_id.in_(select(User.id).where(User.status == "active")),
    )


def _assignment_notices(now: datetime, courses: dict[int, Course]) -> list[Item]:
    """Claim every unannounced record (a conditional UPDATE: a record is announced once)."""
    if not courses:
        return []
    table = CourseAssignment.__table__
    stmt = (
        update(table)
        .where(
            table.c.notified_at.is_(None),
            table.c.archived_at.is_(None),
            table.c.state != "completed",
            table.c.course_id.in_(list(courses)),
            table.c.user_id.in_(select(User.id).where(User.status == "active")),
        )
        .values(notified_at=now)
        .returning(
            table.c.id, table.c.user_id, table.c.course_id, table.c.due_date, table.c.renewal_of_id
        )
    )
    return [
        Item("renewal" if renewal_of else "assignment", aid, uid, cid, due)
        for aid, uid, cid, due, renewal_of in db.session.execute(stmt)
    ]


def _claimed(kind: str, course: Course, rows, notices: list[dict]) -> list[Item]:
    """The rows whose notice this pass claimed (another worker may hold the others)."""
    claimed = claim_keys(notices)
    return [
        Item(kind, aid, uid, course.id, due)
        for (aid, uid, due), n in zip(rows, notices, strict=True)
        if n["key"] in claimed
    ]


def _reminders(today: date, now: datetime, course: Course) -> list[Item]:
    days = course.remind_before_days
    if not days:
        return []
    rows = db.session.execute(
        _open(course).where(
            CourseAssignment.due_date > today,
            CourseAssignment.due_date <= today + timedelta(days=days),
            CourseAssignment.notified_at.is_not(None),
        )
    ).all()
    notices = [_notice("reminder", aid, uid, due, now) for aid, uid, due in rows]
    return _claimed("reminder", course, rows, notices)


def overdue_occurrence(due: date, today: date, every: int) -> date:
    """The latest day of the series due+1, due+1+every, … that is not after today."""
    late = (today - due).days
    return due + timedelta(days=1 + (late - 1) // every * every)


def _overdue(today: date, now: datetime, course: Course) -> list[Item]:
    every = course.remind_overdue_every_days
    if not every:
        return []
    already = exists().where(
        ScheduleNotice.assignment_id == CourseAssignment.id,
        ScheduleNotice.kind == "overdue",
        ScheduleNotice.occurrence > today - timedelta(days=every),
    )
    rows = db.session.execute(
        _open(course).where(CourseAssignment.due_date < today, ~already)
    ).all()
    notices = [
        _notice("overdue", aid, uid, overdue_occurrence(due, today, every), now)
        for aid, uid, due in rows
    ]
    return _claimed("overdue", course, rows, notices)


def _escalations(today: date, now: datetime, course: Course) -> list[Item]:
    """Records overdue by the course's escalation days whose learner has an active manager;
    each is escalated once per due date."""
    days = course.escalate_after_days
    if not days:
        return []
    manager = aliased(User)
    with_manager = (
        select(User.id)
        .join(manager, manager.id == User.manager_id)
        .where(manager.status == "active")
    )
    rows = db.session.execute(
        _open(course).where(
            CourseAssignment.due_date <= today - timedelta(days=days),
            CourseAssignment.user_id.in_(with_manager),
        )
    ).all()
    notices = [_notice("escalation", aid, uid, due, now) for aid, uid, due in rows]
    return _claimed("escalation", course, rows, notices)


def run_pass(now: datetime | None = None) -> PassResult:
    """One pass of the schedule at `now`, in one transaction; emails go to the outbox."""
    from . import enrolment, sqlite_write_transaction

    now = now or utcnow()
    today = now.date()
    result = PassResult()
    db.session.rollback()
    with sqlite_write_transaction():
        result.waiting_resolved = enrolment.resolve_all_waiting(now)
        result.renewals = renew_due(now)
        courses = {
            c.id: c
            for c in db.session.scalars(select(Course).where(Course.emails_enabled.is_(True)))
        }
        items = _assignment_notices(now, courses)
        escalations: list[Item] = []
        for course in courses.values():
            items += _reminders(today, now, course)
            items += _overdue(today, now, course)
            escalations += _escalations(today, now, course)
        result.items.update(item.kind for item in items)
        result.learner_emails = _queue_learner_emails(items, courses, today, now)
        result.manager_emails = _queue_escalations(escalations, courses, today, now)
        result.digests = _queue_digests(today, now)
        db.session.commit()
    return result


def renew_due(now: datetime) -> int:
    """Recertification: a completion `valid_for_days − renew_before_days` old gets a new
    assignment (a new seat) due on the day it expires. The old record stays, archived as
    renewed, with its expiry date; without a free seat the renewal waits for a license."""
    today = now.date()
    made = 0
    courses = db.session.scalars(select(Course).where(Course.valid_for_days > 0)).all()
    for course in courses:
        lead = max(course.valid_for_days - course.renew_before_days, 0)
        # completed_at.date() + lead <= today, as a bound on the column (no date arithmetic
        # in SQL, which the two engines spell differently).
        before = datetime.combine(today - timedelta(days=lead - 1), datetime.min.time())
        waits = exists().where(
            WaitingEnrolment.renewal_of_id == CourseAssignment.id,
            WaitingEnrolment.resolved_at.is_(None),
        )
        rows = db.session.execute(
            select(CourseAssignment.id, CourseAssignment.user_id, CourseAssignment.completed_at)
            .where(
                CourseAssignment.course_id == course.id,
                CourseAssignment.state == "completed",
                CourseAssignment.archived_at.is_(None),
                CourseAssignment.completed_at < before,
                CourseAssignment.user_id.in_(select(User.id).where(User.status != "archived")),
                ~waits,
            )
            .order_by(CourseAssignment.completed_at, CourseAssignment.id)
        ).all()
        expiry = {aid: done.date() + timedelta(days=course.valid_for_days) for aid, _, done in rows}
        notices = [_notice("renewal", aid, uid, expiry[aid], now) for aid, uid, _ in rows]
        claimed = claim_keys(notices)
        due = [(aid, uid) for (aid, uid, _), n in zip(rows, notices, strict=True)
               if n["key"] in claimed]  # fmt: skip
        if due:
            made += _renew(course, due, expiry, now)
    return made


def _renew(course: Course, due: list[tuple[int, int]], expiry: dict[int, date], now) -> int:
    from . import licensing

    table = CourseAssignment.__table__
    if licensing.row_locks():
        # Users before the pool, as licensing does: a record or a user archived meanwhile
        # is not renewed.
        licensing.lock_users([uid for _, uid in due], share=True)
        still: set[int] = set()
        for start in range(0, len(due), CHUNK):
            part = [aid for aid, _ in due[start : start + CHUNK]]
            still.update(
                db.session.scalars(
                    select(CourseAssignment.id).where(
                        CourseAssignment.id.in_(part),
                        CourseAssignment.state == "completed",
                        CourseAssignment.archived_at.is_(None),
                        CourseAssignment.user_id.in_(
                            select(User.id).where(User.status != "archived")
                        ),
                    )
                )
            )
        due = [(aid, uid) for aid, uid in due if aid in still]
        if not due:
            return 0
    # Within the pool and each location's allocation; the rest wait for a license.
    # (fit_allocations locks the pool first, so what is available is read under its lock.)
    fit = set(licensing.fit_allocations(course, [uid for _, uid in due]).fit)
    db.session.refresh(course, ["seats_total", "seats_reserved", "seats_used"])
    allowed = [(aid, uid) for aid, uid in due if uid in fit]
    seated = allowed[: course.seats_available]
    taken = set(seated)
    waiting = [pair for pair in due if pair not in taken]
    db.session.execute(
        update(table).where(table.c.id == bindparam("aid")).values(expires_on=bindparam("exp")),
        [{"aid": aid, "exp": expiry[aid]} for aid, _ in due],
    )
    if seated:
        licensing.take_seats(course, [uid for _, uid in seated])
        # Archived first: one open record per user and course.
        db.session.execute(
            update(table)
            .where(table.c.id.in_([aid for aid, _ in seated]))
            .values(archived_at=now, archive_reason="renewed")
        )
        db.session.execute(
            insert(CourseAssignment),
            [
                {"user_id": uid, "course_id": course.id, "renewal_of_id": aid,
                 "assigned_at": now, "due_date": expiry[aid], "state": "assigned"}
                for aid, uid in seated
            ],
        )  # fmt: skip
    if waiting:
        db.session.execute(
            _insert(WaitingEnrolment).on_conflict_do_nothing(),
            [
                {"user_id": uid, "course_id": course.id, "renewal_of_id": aid,
                 "due_days": course.default_due_days, "due_date": expiry[aid],
                 "created_at": now}
                for aid, uid in waiting
            ],
        )  # fmt: skip
    return len(seated)


def _users(ids) -> dict[int, User]:
    users: dict[int, User] = {}
    ids = sorted(set(ids))
    for start in range(0, len(ids), CHUNK):
        users.update(
            (u.id, u)
            for u in db.session.scalars(select(User).where(User.id.in_(ids[start : start + CHUNK])))
        )
    return users


def _email_row(user_id, recipient, kind, rendered, now) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "recipient": recipient,
        "kind": kind,
        "status": "queued",
        "attempts": 0,
        # Due by the real clock, so a pass run at another `now` is sent right away.
        "next_attempt_at": utcnow(),
        "created_at": now,
        **rendered,
    }


def _queue_learner_emails(
    items: list[Item], courses, today: date, now: datetime, kind: str | None = None
) -> int:
    """One email per learner for this pass, whatever number of courses it is about."""
    if not items:
        return 0
    # A record claimed twice in one pass (announced and already due soon) is listed once:
    # overdue first, then as new, then as a renewal, then as a reminder.
    rank = {k: n for n, k in enumerate(("overdue", "assignment", "renewal", "reminder"))}
    per_user: dict[int, dict[int, Item]] = defaultdict(dict)
    for item in items:
        mine = per_user[item.user_id]
        if item.assignment_id not in mine or rank[item.kind] < rank[mine[item.assignment_id].kind]:
            mine[item.assignment_id] = item
    users = _users(per_user)
    link = public_url("learner.training")
    render = email_renderer("training")
    rows = []
    for user_id, mine in per_user.items():
        user = users[user_id]
        sections = {kind: [] for kind in LEARNER_KINDS}
        for item in sorted(mine.values(), key=lambda i: (i.due_date or date.max, i.course_id)):
            sections[item.kind].append(
                {
                    "course": courses[item.course_id],
                    "due_date": item.due_date,
                    "days_late": (today - item.due_date).days if item.due_date else 0,
                }
            )
        urgent = next(k for k in LEARNER_KINDS if sections[k])
        rendered = render(
            user=user, sections=sections, kind=urgent, link=link, today=today,
            manual=kind is not None,
        )  # fmt: skip
        rows.append(_email_row(user.id, user.email, kind or urgent, rendered, now))
    _insert_emails(rows)
    return len(rows)


def _queue_escalations(items: list[Item], courses, today: date, now: datetime) -> int:
    """One email per manager listing each overdue learner and course."""
    if not items:
        return 0
    learners = _users(i.user_id for i in items)
    managers = _users(u.manager_id for u in learners.values())
    per_manager: dict[int, list[dict]] = defaultdict(list)
    for item in items:
        learner = learners[item.user_id]
        per_manager[learner.manager_id].append(
            {
                "learner": learner,
                "course": courses[item.course_id],
                "due_date": item.due_date,
                "days_late": (today - item.due_date).days,
            }
        )
    rows = []
    render = email_renderer("escalation")
    for manager_id, lines in per_manager.items():
        manager = managers[manager_id]
        lines.sort(key=lambda x: (x["learner"].last_name, x["learner"].first_name, x["due_date"]))
        rendered = render(
            manager=manager,
            lines=lines,
            today=today,
        )
        rows.append(_email_row(manager.id, manager.email, "escalation", rendered, now))
    _insert_emails(rows)
    return len(rows)


def _queue_digests(today: date, now: datetime) -> int:
    """The weekly compliance digest, once per ISO week to each administrator who asked."""
    from . import figures
    from .compliance import DIMENSIONS, FIGURES, TRAINING_LABELS

    monday = today - timedelta(days=today.weekday())
    admins = db.session.scalars(
        select(User).where(
            User.role == "admin",
            User.status == "active",
            User.wants_digest.is_(True),
            # The organisation's figures: never to a scoped administrator (#17).
            User.scope_id.is_(None),
        )
    ).all()
    notices = [
        {"key": f"digest:{a.id}:{monday.isoformat()}", "kind": "digest", "assignment_id": None,
         "user_id": a.id, "occurrence": monday, "created_at": now}
        for a in admins
    ]  # fmt: skip
    claimed = claim_keys(notices)
    recipients = [a for a, n in zip(admins, notices, strict=True) if n["key"] in claimed]
    if not recipients:
        return 0
    # In one read of users, groups and records, as the dashboard's snapshots are counted (a
    # query per figure took minutes at a million users).
    counted = figures.compute(None, today)
    context = {
        "figures_by": counted.by,
        "figures_totals": counted.totals,
        "dimensions": DIMENSIONS,
        "figures": FIGURES,
        "labels": TRAINING_LABELS,
        "today": today,
        "link": public_url("dashboard.index"),
    }
    render = email_renderer("digest")
    rows = [_email_row(a.id, a.email, "digest", render(user=a, **context), now) for a in recipients]
    _insert_emails(rows)
    return len(rows)


def _insert_emails(rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        db.session.execute(insert(OutboundEmail.__table__), rows[start : start + CHUNK])


# --- Remind (the row and bulk action) ---------------------------------------------------

REMINDER_KINDS = ("reminder", "overdue", "manual_reminder")


def remind_now(user_ids: list[int], now: datetime | None = None) -> tuple[list[int], list[int]]:
    """Queue one reminder now to each of these users about all their unfinished training
    (courses whose emails are off left out). Returns (reminded, nothing to remind of):
    archived or pending users and users with nothing open are not emailed."""
    now = now or utcnow()
    today = now.date()
    courses = {
        c.id: c for c in db.session.scalars(select(Course).where(Course.emails_enabled.is_(True)))
    }
    items: list[Item] = []
    for start in range(0, len(user_ids), CHUNK):
        part = user_ids[start : start + CHUNK]
        rows = db.session.execute(
            select(
                CourseAssignment.id,
                CourseAssignment.user_id,
                CourseAssignment.course_id,
                CourseAssignment.due_date,
            ).where(
                CourseAssignment.user_id.in_(part),
                CourseAssignment.archived_at.is_(None),
                CourseAssignment.state != "completed",
                CourseAssignment.course_id.in_(list(courses)),
                CourseAssignment.user_id.in_(select(User.id).where(User.status == "active")),
            )
        )
        items += [
            Item("overdue" if due and due < today else "reminder", aid, uid, cid, due)
            for aid, uid, cid, due in rows
        ]
    reminded = sorted({i.user_id for i in items})
    _queue_learner_emails(items, courses, today, now, kind="manual_reminder")
    return reminded, sorted(set(user_ids) - set(reminded))


def last_reminders(user_ids: list[int]) -> dict[int, datetime]:
    """When each user's latest reminder (scheduled or asked for) was queued."""
    if not user_ids:
        return {}
    rows = db.session.execute(
        select(OutboundEmail.user_id, func.max(OutboundEmail.created_at))
        .where(OutboundEmail.user_id.in_(user_ids), OutboundEmail.kind.in_(REMINDER_KINDS))
        .group_by(OutboundEmail.user_id)
    )
    return dict(rows.all())
