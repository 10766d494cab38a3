"""The Users list state (filters, search, sort, page) and the query it selects.

One function turns the validated state into a `Select`; the list, bulk actions
("everyone matching") and the export all use it, so they always agree.

Search is prefix matching, word by word: every word typed must be the start of the
first name, last name, email or user ID (case-insensitive). Each of those has an
expression index on `lower(column)` (migration 0002_user_search), so a search is a
few index range scans whatever the table size; no column has to be kept up to date
by the code that writes users.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import ColumnElement, Select, String, and_, case, func, select, union_all
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from werkzeug.datastructures import MultiDict

from .extensions import db
from .models import CourseAssignment, Location, User, user_groups, utcnow

PER_PAGE_CHOICES = (25, 50, 100)
DEFAULT_PER_PAGE = 50
STATUS_CHOICES = ("pending", "active", "archived")
ROLE_CHOICES = ("learner", "admin")
DEFAULT_STATUSES = ("pending", "active")
SORT_KEYS = ("name", "email", "location", "status", "created")
DEFAULT_SORT = "name"
MAX_SEARCH_WORDS = 4
MAX_ID = 2**31 - 1


@dataclass
class UserFilters:
    q: str = ""
    location: list[int] = field(default_factory=list)
    group: list[int] = field(default_factory=list)
    status: list[str] = field(default_factory=lambda: list(DEFAULT_STATUSES))
    role: list[str] = field(default_factory=list)
    sort: str = DEFAULT_SORT
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    # Training at a glance (issue #15): "overdue" keeps users with an overdue assignment.
    training: str = ""

    @property
    def default_status(self) -> bool:
        return sorted(self.status) == sorted(DEFAULT_STATUSES)

    @property
    def active(self) -> bool:
        """Whether anything narrows the list beyond the default."""
        return bool(
            self.q
            or self.location
            or self.group
            or self.role
            or self.training
            or not self.default_status
        )


def _ids(values: list[str]) -> list[int]:
    ids = []
    for value in values:
        value = value.strip()
        if value.isascii() and value.isdigit() and 0 < int(value) <= MAX_ID:
            ids.append(int(value))
    return list(dict.fromkeys(ids))


def _positive(value: str | None, default: int, maximum: int = MAX_ID) -> int:
    value = (value or "").strip()
    if value.isascii() and value.isdigit() and 0 < int(value) <= maximum:
        return int(value)
    return default


def parse_filters(args: MultiDict) -> UserFilters:
    """Read the list state from query (or form) parameters; bad values are ignored."""
    filters = UserFilters()
    # NUL cannot be stored or compared by PostgreSQL; other control characters never match.
    q = "".join(ch for ch in (args.get("q") or "") if ch.isprintable() or ch == " ")
    filters.q = " ".join(q.split())[:100]
    filters.location = _ids(args.getlist("location"))
    filters.group = _ids(args.getlist("group"))
    statuses = [s for s in STATUS_CHOICES if s in args.getlist("status")]
    if statuses:
        filters.status = statuses
    filters.role = [r for r in ROLE_CHOICES if r in args.getlist("role")]
    sort = args.get("sort", "")
    if sort.removeprefix("-") in SORT_KEYS:
        filters.sort = sort
    filters.page = _positive(args.get("page"), 1)
    per_page = _positive(args.get("per_page"), DEFAULT_PER_PAGE)
    filters.per_page = per_page if per_page in PER_PAGE_CHOICES else DEFAULT_PER_PAGE
    filters.training = "overdue" if args.get("training") == "overdue" else ""
    return filters


class search_key(FunctionElement):  # noqa: N801 - reads like the SQL function it renders
    """`lower(column)`, compared in byte order so a prefix range can use the index."""

    type = String()
    inherit_cache = True


@compiles(search_key)
def _search_key_default(element, compiler, **kw):
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(search_key, "postgresql")
def _search_key_postgresql(element, compiler, **kw):
    return f'lower({compiler.process(element.clauses, **kw)}) COLLATE "C"'


def _after(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix`."""
    while prefix:
        code = ord(prefix[-1]) + 1
        if 0xD800 <= code <= 0xDFFF:
            code = 0xE000
        if code <= 0x10FFFF:
            return prefix[:-1] + chr(code)
        prefix = prefix[:-1]
    return None


def _word_variants(word: str) -> list[str]:
    """The word as lower() stores it. SQLite's lower() folds ASCII only, so a name
    starting with a non-ASCII capital (Ünal, Élodie) is stored with it: try that too."""
    ascii_lowered = "".join(ch.lower() if ch.isascii() else ch for ch in word)
    variants = [word.lower(), ascii_lowered]
    if not word[0].isascii():
        variants.append(word[0].upper() + ascii_lowered[1:])
    return list(dict.fromkeys(variants))


def _starts_with(column, prefix: str) -> ColumnElement[bool]:
    key = search_key(column)
    upper = _after(prefix)
    return and_(key >= prefix, key < upper) if upper else key >= prefix


def search_condition(q: str) -> ColumnElement[bool] | None:
    """Every word is the start of a first name, last name, email or user ID.

    Each word is a union of index range scans that yields ids; the ids are then checked
    against the other filters in a narrow covering index, never in the wide rows."""
    words = q.split()[:MAX_SEARCH_WORDS]
    columns = (User.first_name, User.last_name, User.email, User.employee_id)
    conditions = [
        User.id.in_(
            union_all(
                *(
                    select(User.id).where(_starts_with(column, variant))
                    for variant in _word_variants(word)
                    for column in columns
                )
            )
        )
        for word in words
    ]
    return and_(*conditions) if conditions else None


def filtered_users(filters: UserFilters) -> Select[tuple[User]]:
    """Users matching the filters, unordered (callers add ordering or aggregate)."""
    query = select(User)
    statuses = set(filters.status)
    # Every status is everyone; two of three read as "not the third", which lets the
    # planners walk a name-ordered index instead of sorting both status ranges.
    if len(statuses) == len(STATUS_CHOICES) - 1:
        (excluded,) = set(STATUS_CHOICES) - statuses
        query = query.where(User.status != excluded)
    elif statuses and len(statuses) < len(STATUS_CHOICES):
        query = query.where(User.status.in_(sorted(statuses)))
    if filters.role:
        query = query.where(User.role.in_(filters.role))
    if filters.location:
        query = query.where(User.location_id.in_(filters.location))
    if filters.group:
        # IN (subquery) rather than EXISTS: the planners turn it into an index lookup.
        members = select(user_groups.c.user_id).where(user_groups.c.group_id.in_(filters.group))
        query = query.where(User.id.in_(members))
    condition = search_condition(filters.q)
    if condition is not None:
        query = query.where(condition)
    if filters.training == "overdue":
        query = query.where(User.id.in_(overdue_user_ids(utcnow().date())))
    return query


def ordered(query: Select, sort: str) -> Select:
    """`query` in the list's `sort` order ("name", "-name", ...), the id last so pages are
    stable."""
    descending = sort.startswith("-")
    key = sort.removeprefix("-")
    if key == "email":
        columns = [search_key(User.email)]
    elif key == "location":
        query = query.outerjoin(Location, Location.id == User.location_id)
        # Users without a location come last either way.
        columns = [Location.name.is_(None), Location.name, User.last_name, User.first_name]
    elif key == "status":
        columns = [User.status, User.last_name, User.first_name]
    elif key == "created":
        columns = [User.created_at]
    else:
        columns = [User.last_name, User.first_name]
    columns.append(User.id)
    if descending:
        columns = [c if i == 0 and key == "location" else c.desc() for i, c in enumerate(columns)]
    return query.order_by(*columns)


# --- Training at a glance (issue #15) ---------------------------------------------------


@dataclass(frozen=True)
class TrainingCounts:
    open: int = 0
    overdue: int = 0
    completed: int = 0


def overdue_user_ids(today: date) -> Select:
    """Users with an open (unarchived, unfinished) assignment past its due date."""
    a = CourseAssignment
    return select(a.user_id).where(
        a.archived_at.is_(None), a.state != "completed", a.due_date < today
    )


def training_counts(user_ids: list[int], today: date) -> dict[int, TrainingCounts]:
    """Per user: unarchived assignments open (not completed), overdue, completed. One query
    for a whole page of users."""
    if not user_ids:
        return {}
    a = CourseAssignment
    unfinished = a.state != "completed"
    rows = db.session.execute(
        select(
            a.user_id,
            func.sum(case((unfinished, 1), else_=0)),
            func.sum(case((unfinished & (a.due_date < today), 1), else_=0)),
            func.sum(case((a.state == "completed", 1), else_=0)),
        )
        .where(a.user_id.in_(user_ids), a.archived_at.is_(None))
        .group_by(a.user_id)
    )
    return {uid: TrainingCounts(int(o or 0), int(d or 0), int(c or 0)) for uid, o, d, c in rows}
