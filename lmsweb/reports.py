"""The dashboard's figures and the training-records query.

One function (`records_query`) turns validated filters into a `Select`; the dashboard's
table and its Excel export both use it, so they always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.orm import aliased, joinedload

from . import compliance, scope, user_counts
from .extensions import db
from .models import STATUSES, Course, CourseAssignment, Location, User, user_groups, utcnow
from .user_queries import UserFilters, filtered_users, search_condition
from .xlsx import excel_day, excel_time, stream_rows

RECORD_STATES = {
    "not_started": "Not started",
    "in_progress": "In progress",
    "completed": "Completed",
    "overdue": "Overdue",
}
DUE_SOON_DAYS = 14
PER_PAGE = 50


def today() -> date:
    return utcnow().date()


def _open():
    """Unarchived and not completed: the records that can be overdue or due. (Spelled as
    IN, not !=, so the covering index on (archived_at, state, due_date) serves it.)"""
    return and_(
        CourseAssignment.archived_at.is_(None),
        CourseAssignment.state.in_(("assigned", "in_progress")),
    )


def _rule(rule) -> scope.ScopeRule | None:
    """The scope given, or the request's for compliance.REQUEST (None: everyone)."""
    return scope.current_rule() if rule is compliance.REQUEST else rule


def _in_scope(a=CourseAssignment, rule=compliance.REQUEST) -> tuple:
    """The records of the scoped administrator's people (#17); no condition otherwise."""
    rule = _rule(rule)
    return () if rule is None else (a.user_id.in_(scope.in_scope_ids(rule)),)


def users_by_status(rule=compliance.REQUEST) -> dict[str, int]:
    """Everyone's from the kept counts (user_counts); a scope's counted."""
    counts = dict.fromkeys(STATUSES, 0)
    kept = user_counts.kept(UserFilters(status=list(STATUSES))) if _rule(rule) is None else None
    if kept is None:
        kept = dict(
            db.session.execute(
                select(User.status, func.count())
                .where(compliance._in_scope(rule))
                .group_by(User.status)
            ).all()
        )
    counts.update(kept)
    return counts


def course_counts(now: date, rule=compliance.REQUEST) -> dict[int, list[int]]:
    """Per course: [current records, completed, overdue, due in DUE_SOON_DAYS], each read
    from a covering index."""
    soon = now + timedelta(days=DUE_SOON_DAYS)
    a = CourseAssignment
    counts: dict[int, list[int]] = {}
    # One scan of the covering index, in its order: records per course and state, and how
    # many of them are past their due date.
    rows = db.session.execute(
        select(a.course_id, a.state, func.count(), func.count().filter(a.due_date < now))
        .where(a.archived_at.is_(None), *_in_scope(a, rule))
        .group_by(a.course_id, a.state)
    )
    for course_id, state, n, late in rows:
        f = counts.setdefault(course_id, [0, 0, 0, 0])
        f[0] += n
        if state == "completed":
            f[1] += n
        else:
            f[2] += late
    due_soon = db.session.execute(
        select(a.course_id, func.count())
        .where(_open(), a.due_date.between(now, soon), *_in_scope(a, rule))
        .group_by(a.course_id)
    )
    for course_id, n in due_soon:
        counts.setdefault(course_id, [0, 0, 0, 0])[3] = n
    return counts


@dataclass
class CourseFigures:
    """One course's pool and progress."""

    course: Course
    assigned: int = 0  # unarchived records
    completed: int = 0  # unarchived and completed
    overdue: int = 0
    due_soon: int = 0

    @property
    def completion_rate(self) -> float:
        return self.completed / self.assigned if self.assigned else 0.0


@dataclass
class Summary:
    users: dict[str, int]
    courses: list[CourseFigures]
    overdue: int = 0
    due_soon: int = 0
    seats: dict[str, int] = field(default_factory=dict)


def summary(
    users: dict[str, int] | None = None, counts: dict[int, list[int]] | None = None
) -> Summary:
    """Everything above the records table: the users by status and the records per course
    given (a snapshot's, lmsweb/figures.py) or counted now for the request's scope; the
    license pools always as they are now (their counters are kept by licensing.py)."""
    if users is None or counts is None:
        users, counts = users_by_status(), course_counts(today())
    courses = list(db.session.scalars(select(Course).order_by(Course.code)))
    result = Summary(
        users=users,
        courses=[CourseFigures(c, *counts.get(c.id, (0, 0, 0, 0))) for c in courses],
    )
    result.overdue = sum(f.overdue for f in result.courses)
    result.due_soon = sum(f.due_soon for f in result.courses)
    result.seats = {
        "total": sum(c.seats_total for c in courses),
        "reserved": sum(c.seats_reserved for c in courses),
        "used": sum(c.seats_used for c in courses),
        "available": sum(c.seats_available for c in courses),
    }
    return result


@dataclass
class RecordFilters:
    """Validated training-record filters (the dashboard form produces these)."""

    q: str = ""
    course: int | None = None
    location: int | None = None
    group: int | None = None
    state: str = ""
    archived: str = ""  # "", "yes" or "no"
    page: int = 1


def _records_in_scope() -> tuple:
    """The records of the scoped administrator's people (#17), tested record by record: one
    probe of the scope's members by key (EXISTS). A page of the newest records then walks the
    records' key backwards and stops after the page, and the capped count stops after
    COUNT_CAP. The set form (`_in_scope`: every person of the scope first) hashed or
    materialised ~120,000 people and sorted their ~160,000 records for each page at a
    million users: 150 ms on SQLite, 300–400 ms on PostgreSQL, against 1 ms."""
    rule = scope.current_rule()
    if rule is None:
        return ()
    ids = scope.in_scope_ids(rule)
    return (ids.where(ids.selected_columns[0] == CourseAssignment.user_id).exists(),)


def _people(filters: RecordFilters, walk: bool = False) -> list:
    """Conditions on a record's person for a location and a group (no search): the people
    as a list, looked up by the records' user index (IN); with `walk`, each record's person
    tested by key (EXISTS), for a walk of the records in their own order. A location and a
    group: the location's people each looked up in the group (a join), where SQLite listed
    every member of the group first and looked each up at the location (Sales at a million
    users: 84,000 members for Berlin's 3,468; the count 90 → 23 ms, the page 75 → 22). The
    administrator's scope is the records' own condition (`_records_in_scope`)."""
    a = CourseAssignment
    if walk:
        tests = []
        if filters.location:
            at = select(User.id).where(User.id == a.user_id, User.location_id == filters.location)
            tests.append(at.exists())
        if filters.group:
            member = select(user_groups.c.user_id).where(
                user_groups.c.user_id == a.user_id, user_groups.c.group_id == filters.group
            )
            tests.append(member.exists())
        return tests
    if filters.location and filters.group:
        people = (
            select(User.id)
            .join(user_groups, user_groups.c.user_id == User.id)
            .where(User.location_id == filters.location, user_groups.c.group_id == filters.group)
        )
    elif filters.location:
        people = select(User.id).where(User.location_id == filters.location)
    else:
        people = select(user_groups.c.user_id).where(user_groups.c.group_id == filters.group)
    return [a.user_id.in_(people)]


def records_query(filters: RecordFilters) -> Select[tuple[CourseAssignment]]:
    """Training records matching the filters, newest first (a stable order for paging)."""
    query = select(CourseAssignment).where(*_records_in_scope())
    if filters.course:
        query = query.where(CourseAssignment.course_id == filters.course)
    if filters.archived == "yes":
        query = query.where(CourseAssignment.archived_at.is_not(None))
    elif filters.archived == "no":
        query = query.where(CourseAssignment.archived_at.is_(None))
    if filters.state == "not_started":
        query = query.where(CourseAssignment.state == "assigned")
    elif filters.state in ("in_progress", "completed"):
        query = query.where(CourseAssignment.state == filters.state)
    elif filters.state == "overdue":
        query = query.where(_open(), CourseAssignment.due_date < today())
    if filters.q and not (filters.location or filters.group):
        # The search's own ids (the FTS5 table's on SQLite): testing them against `users`
        # first cost a lookup per match ("son": 80,000 at a million users, 45 → 10 ms).
        searched = search_condition(filters.q, CourseAssignment.user_id)
        if searched is not None:
            query = query.where(searched)
    elif filters.q:
        # Who the records belong to: the Users list's own filter function decides.
        people = filtered_users(
            UserFilters(
                q=filters.q,
                location=[filters.location] if filters.location else [],
                group=[filters.group] if filters.group else [],
                status=[],
            )
        ).with_only_columns(User.id)
        query = query.where(CourseAssignment.user_id.in_(people))
    elif filters.location or filters.group:
        query = query.where(*_people(filters))
    return query.order_by(CourseAssignment.id.desc())


@dataclass
class Page:
    """One page of training records and where it is in the whole."""

    items: list[CourseAssignment]
    page: int
    per_page: int
    total: int  # past COUNT_CAP: COUNT_CAP + 1, and `more` is set
    more: bool = False
    has_next: bool = False

    @property
    def pages(self) -> int:
        """How many pages (a lower bound when `more`)."""
        return max(1, -(-self.total // self.per_page), self.page + self.has_next)

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def prev_num(self) -> int | None:
        return self.page - 1 if self.has_prev else None

    @property
    def next_num(self) -> int | None:
        return self.page + 1 if self.has_next else None


# The records are counted up to this many, as the Users list counts its users: at a million
# users an exact count cost more than the page itself (a scoped administrator's, or the
# overdue ones: a second), and "More than 10,000" tells the reader as much.
COUNT_CAP = 10_000


# Past the count's cap, the page of a location's or a group's records is first looked for in
# this many records per row wanted (at least RECORD_WALK_MIN), newest first.
RECORD_WALK_RATIO = 100
RECORD_WALK_MIN = 10_000


def _walked_page(filters: RecordFilters, offset: int, rows: int) -> list[int] | None:
    """The ids of a page of a location's or a group's records (`rows` from `offset`) found by
    walking the records newest first, each tested for its person (`_people`'s walk), no
    further than RECORD_WALK_RATIO records per row wanted (the records' own filters alone
    give that bound's id); None where there is no such filter (or a search) or the walk
    found too few (their records lie further down). SQLite read every record of the people
    and sorted them: a group of 84,000 members at a million users, 115,000 records, 110–237
    ms, for a page found in 600 (about 1 ms with the bound). The bound is a condition of the
    walk, not a subquery of it, which SQLite sorted again whole."""
    if filters.q or not (filters.location or filters.group):
        return None
    walked = max(RECORD_WALK_RATIO * (offset + rows), RECORD_WALK_MIN)
    others = records_query(replace(filters, location=None, group=None))
    bound = others.with_only_columns(CourseAssignment.id).offset(walked - 1).limit(1)
    page = (
        others.with_only_columns(CourseAssignment.id)
        .where(
            *_people(filters, walk=True),
            CourseAssignment.id >= func.coalesce(bound.scalar_subquery(), 0),
        )
        .limit(rows)
        .offset(offset)
    )
    ids = list(db.session.scalars(page))
    return ids if len(ids) >= rows else None


def records_page(filters: RecordFilters, per_page: int | None = None) -> Page:
    """One page of records (users, locations and courses loaded with them) and the total,
    counted up to COUNT_CAP."""
    per_page = per_page or PER_PAGE
    query = records_query(filters).with_only_columns(CourseAssignment.id)
    total = db.session.scalar(
        select(func.count()).select_from(query.order_by(None).limit(COUNT_CAP + 1).subquery())
    )
    # The page's ids first (from an index, no joins), then only those rows with what they show:
    # joining before the LIMIT would join every matching record. One id more than shown says
    # whether a next page exists.
    offset = (filters.page - 1) * per_page
    ids = _walked_page(filters, offset, per_page + 1) if total > COUNT_CAP else None
    if ids is None:
        ids = list(db.session.scalars(query.limit(per_page + 1).offset(offset)))
    has_next, ids = len(ids) > per_page, ids[:per_page]
    items = (
        list(
            db.session.scalars(
                select(CourseAssignment)
                .options(
                    joinedload(CourseAssignment.user).joinedload(User.location),
                    joinedload(CourseAssignment.course),
                )
                .where(CourseAssignment.id.in_(ids))
                .order_by(CourseAssignment.id.desc())
            )
        )
        if ids
        else []
    )
    return Page(
        items=items,
        page=filters.page,
        per_page=per_page,
        total=total,
        more=total > COUNT_CAP,
        has_next=has_next,
    )


EXPORT_HEADERS = (
    "Last name",
    "First name",
    "Email",
    "User ID",
    "Location",
    "User status",
    "Course code",
    "Course title",
    "State",
    "Assigned",
    "Due",
    "Started",
    "Completed",
    "Score",
    "Overdue",
    "Archived",
    "Archive reason",
)
ARCHIVE_REASONS = {
    "unassigned": "Unassigned",
    "user_archived": "User archived",
    "activity_archived": "Course activity archived",
}
STATE_LABELS = {"assigned": "Not started", "in_progress": "In progress", "completed": "Completed"}


# Column kinds for the streamed writer (lmsweb/xlsx.py): texts, then the dates as Excel
# serial numbers computed by the database (assigned, started, completed and archived with
# their time; due as a day), the score a number.
EXPORT_KINDS = "tttttttttsdssntst"


def export_rows(filters: RecordFilters, batch: int = 2000):
    """The filtered records as spreadsheet rows, streamed from one Core query: the labels,
    the overdue flag and the dates as Excel serial numbers are spelled by the database, so
    a row goes to the writer as it comes (no ORM rows, no date objects, no Python per row:
    a cProfile had those as a third of the time). The records query's own conditions and
    order, with the people, locations and courses joined to it: not `id IN (the records)`,
    which had SQLite build a temporary index of every record id first. The people and
    locations joined under aliases, so a filter's subquery over users (search, location,
    group, scope) is never correlated to them."""
    a, person, place = CourseAssignment, aliased(User), aliased(Location)
    overdue = case(
        (and_(a.archived_at.is_(None), a.state != "completed", a.due_date < today()), "yes"),
        else_="no",
    )
    query = (
        records_query(filters)
        .with_only_columns(
            person.last_name,
            person.first_name,
            person.email,
            person.employee_id,
            place.name,
            person.status,
            Course.code,
            Course.title,
            _label(a.state, STATE_LABELS),
            excel_time(a.assigned_at),
            excel_day(a.due_date),
            excel_time(a.started_at),
            excel_time(a.completed_at),
            a.score,
            overdue,
            excel_time(a.archived_at),
            _label(a.archive_reason, ARCHIVE_REASONS),
            maintain_column_froms=True,
        )
        .join(person, person.id == a.user_id)
        # "+ 0": no index on the records' course_id for this join, so SQLite walks the
        # records in the query's order (newest first) rather than course by course and then
        # sorting them all.
        .join(Course, Course.id == a.course_id + 0)
        .outerjoin(place, place.id == person.location_id)
    )
    yield from stream_rows(query, batch)


def _label(column, labels: dict[str, str]):
    """A code column spelled as its label by the database (unknown codes as they are)."""
    return case(*((column == code, label) for code, label in labels.items()), else_=column)
