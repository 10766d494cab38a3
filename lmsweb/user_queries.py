"""The Users list state (filters, search, sort, page) and the query it selects.

One function turns the validated state into a `Select`; the list, bulk actions
("everyone matching") and the export all use it, so they always agree.

Search is word by word, case-insensitive: every word typed must be found in the first
name, last name, email or user ID. A word of one or two characters must start one of
them: each has an expression index on `lower(column)` (migration 0002_user_search), so
that is a few index range scans whatever the table size. A longer word may be anywhere
inside one ("arsh" finds Marsh, "@acme" everyone at acme): a trigram index answers it
(migration 0009_substring_search: pg_trgm on PostgreSQL, an FTS5 trigram table kept by
triggers on SQLite), so no code that writes users has to know about either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from flask import abort
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    Table,
    and_,
    case,
    column,
    func,
    literal_column,
    or_,
    select,
    table,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased, selectinload
from sqlalchemy.sql import operators
from sqlalchemy.sql.functions import FunctionElement
from werkzeug.datastructures import MultiDict

from . import scope
from .compliance import TRAINING_LABELS
from .compliance import condition as training_condition
from .extensions import db
from .models import ROLES, STATUSES, CourseAssignment, Location, User, scope_members, user_groups

PER_PAGE_CHOICES = (25, 50, 100)
DEFAULT_PER_PAGE = 50
DEFAULT_STATUSES = ("pending", "active")
SORT_KEYS = ("name", "email", "location", "status", "created")
DEFAULT_SORT = "name"
MAX_SEARCH_WORDS = 4
# Trigrams: a shorter word has none, so it stays a prefix search.
SUBSTRING_MIN = 3
MAX_ID = 2**31 - 1


# The list state's query parameters (the filter form's field names are the same).
Q, LOCATION, GROUP, STATUS, ROLE = "q", "location", "group", "status", "role"
# The compliance cycle's: a manager's reports, and a training figure of the dashboard.
MANAGER, TRAINING = "manager", "training"
# The Users page's "Overdue only" quick filter is this training figure.
OVERDUE = "overdue"
# Advanced filter "course C in state S" (either alone: any state of C, or S in any course).
COURSE, COURSE_STATE = "course", "course_state"
COURSE_STATES = {
    "not_started": "Not started",
    "started": "Started",
    "completed": "Completed",
    "overdue": "Overdue",
    "archived": "Archived",
}
SORT, PAGE, PER_PAGE = "sort", "page", "per_page"
FILTER_PARAMS = (Q, LOCATION, GROUP, STATUS, ROLE, MANAGER, TRAINING, COURSE, COURSE_STATE)
LIST_PARAMS = (*FILTER_PARAMS, SORT, PAGE, PER_PAGE)


def _ids(values: list[str]) -> list[int]:
    ids = []
    for value in values:
        value = value.strip()
        if value.isascii() and value.isdigit() and 0 < int(value) <= MAX_ID:
            ids.append(int(value))
    return list(dict.fromkeys(ids))


def _emails(values: list[str]) -> list[str]:
    """The values that are not ids, as the (lower-cased) emails they are looked up by: a
    manager chosen by email. Anything else typed there is looked up too, and found by no
    one, which the filter's chip says."""
    emails = []
    for value in values:
        value = " ".join(value.split()).lower()[:254]
        if value and not (value.isascii() and value.isdigit()):
            emails.append(value)
    return list(dict.fromkeys(emails))


def _positive(value: str | None, default: int, maximum: int = MAX_ID) -> int:
    value = (value or "").strip()
    if value.isascii() and value.isdigit() and 0 < int(value) <= maximum:
        return int(value)
    return default


@dataclass
class UserFilters:
    """The Users list's state. The list, its selection banner, bulk actions ("everyone
    matching") and the export read and write it only through `from_args`/`to_args`."""

    q: str = ""
    location: list[int] = field(default_factory=list)
    group: list[int] = field(default_factory=list)
    status: list[str] = field(default_factory=lambda: list(DEFAULT_STATUSES))
    role: list[str] = field(default_factory=list)
    sort: str = DEFAULT_SORT
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    manager: list[int] = field(default_factory=list)
    # Managers given by email (the filter panel's field; `manager` holds the ids of links).
    manager_email: list[str] = field(default_factory=list)
    training: str = ""
    course: int | None = None
    course_state: str = ""
    # SQLite, a location and a group: which of them the list reads first ("location" or
    # "group": the smaller, as the filter chips' statement counted them), else "".
    first: str = ""

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
            or self.by_manager
            or self.training
            or self.course
            or self.course_state
            or not self.default_status
        )

    @property
    def narrowed(self) -> bool:
        """Whether anything but status and role narrows the list (`scope_members` holds
        those two)."""
        return bool(
            self.q
            or self.location
            or self.group
            or self.by_manager
            or self.training
            or self.course
            or self.course_state
        )

    @property
    def by_manager(self) -> bool:
        return bool(self.manager or self.manager_email)

    @classmethod
    def from_args(cls, args: MultiDict, prefix: str = "") -> UserFilters:
        """Read the state from query (or form) parameters named `prefix` + name; bad
        values are ignored."""
        filters = cls()
        # NUL cannot be stored or compared by PostgreSQL; other control characters never match.
        raw_q = args.get(prefix + Q) or ""
        q = "".join(ch for ch in raw_q if ch.isprintable() or ch == " ")
        filters.q = " ".join(q.split())[:100]
        filters.location = _ids(args.getlist(prefix + LOCATION))
        filters.group = _ids(args.getlist(prefix + GROUP))
        statuses = [s for s in STATUSES if s in args.getlist(prefix + STATUS)]
        if statuses:
            filters.status = statuses
        filters.role = [r for r in ROLES if r in args.getlist(prefix + ROLE)]
        sort = args.get(prefix + SORT, "")
        if sort.removeprefix("-") in SORT_KEYS:
            filters.sort = sort
        filters.manager = _ids(args.getlist(prefix + MANAGER))
        filters.manager_email = _emails(args.getlist(prefix + MANAGER))
        training = args.get(prefix + TRAINING, "")
        filters.training = training if training in TRAINING_LABELS else ""
        course = _ids(args.getlist(prefix + COURSE))
        filters.course = course[0] if course else None
        state = args.get(prefix + COURSE_STATE, "")
        filters.course_state = state if state in COURSE_STATES else ""
        filters.page = _positive(args.get(prefix + PAGE), 1)
        per_page = _positive(args.get(prefix + PER_PAGE), DEFAULT_PER_PAGE)
        filters.per_page = per_page if per_page in PER_PAGE_CHOICES else DEFAULT_PER_PAGE
        return filters

    def to_args(
        self,
        prefix: str = "",
        *,
        params: tuple[str, ...] = LIST_PARAMS,
        defaults: bool = False,
        **changes: Any,
    ) -> MultiDict:
        """The state as parameters named `prefix` + name, with `changes` applied: only
        `params`, and values equal to the defaults left out unless `defaults`."""
        state: dict[str, Any] = {
            Q: self.q,
            LOCATION: self.location,
            GROUP: self.group,
            STATUS: self.status,
            ROLE: self.role,
            MANAGER: [*self.manager, *self.manager_email],
            TRAINING: self.training,
            COURSE: self.course,
            COURSE_STATE: self.course_state,
            SORT: self.sort,
            PAGE: self.page,
            PER_PAGE: self.per_page,
        }
        state.update(changes)
        if not defaults:
            for key, default in (
                (SORT, DEFAULT_SORT),
                (PAGE, 1),
                (PER_PAGE, DEFAULT_PER_PAGE),
            ):
                if state[key] == default:
                    state[key] = ""
            if sorted(state[STATUS]) == sorted(DEFAULT_STATUSES):
                state[STATUS] = []
        args = MultiDict()
        for key in params:
            value = state[key]
            for item in value if isinstance(value, list) else [value]:
                if item not in ("", None):
                    args.add(prefix + key, item)
        return args


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


class search_text(FunctionElement):  # noqa: N801 - reads like the SQL expression it renders
    """PostgreSQL: the searched fields, lower-cased and joined by spaces, as the stored
    column `users.search_text` keeps them (0017_search_column) and the trigram index holds
    them; a word holds no space, so it matches inside one field only."""

    type = String()
    inherit_cache = True


@compiles(search_text)
def _search_text(element, compiler, **kw):
    return "users.search_text"


def _inside(word: str) -> str:
    """A LIKE pattern for `word` anywhere, built whole so the planner sees a constant."""
    escaped = word.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"


def _fts5_phrase(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


class _per_dialect(FunctionElement):  # noqa: N801
    """The first condition on SQLite, the second on PostgreSQL: the list's queries are built
    before (and without knowing) the engine that runs them. Untyped on purpose: a Boolean
    type would make SQLite's WHERE read `(... IN (...)) = 1`, which no index can answer."""

    inherit_cache = True


@compiles(_per_dialect)
def _per_dialect_default(element, compiler, **kw):
    return f"({compiler.process(element.clauses.clauses[0], **kw)})"


@compiles(_per_dialect, "postgresql")
def _per_dialect_postgresql(element, compiler, **kw):
    return f"({compiler.process(element.clauses.clauses[1], **kw)})"


# SQLite: the FTS5 trigram table (0009_substring_search), one row per user (rowid = id).
_users_search = table("users_search", column("rowid", Integer))


def _matching(words: list[str]):
    """SQLite: the FTS5 table's rows holding every word. Its trigram tokenizer folds case
    itself; one MATCH ANDs the phrases."""
    return text("users_search MATCH :pattern").bindparams(
        pattern=" AND ".join(_fts5_phrase(word) for word in words)
    )


def _containing(words: list[str], ident) -> ColumnElement[bool]:
    """`ident` is a user with every word inside one of the searched fields, from the
    trigram index."""
    found = select(_users_search.c.rowid).where(_matching(words))
    sqlite = ident.in_(found)
    # Both spellings lower() may have stored, as for prefixes (one index either way).
    postgresql = and_(
        *(
            or_(*(search_text().like(_inside(v), escape="/") for v in _word_variants(word)))
            for word in words
        )
    )
    return _per_dialect(sqlite, _of(ident, postgresql))


def _of(ident, condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """`condition` on the users' columns, said of the user `ident` names: the row's own
    user as it is, another table's user id through the users it holds for."""
    return condition if ident is User.id else ident.in_(select(User.id).where(condition))


def _starting(word: str, ident, hashed: bool) -> ColumnElement[bool]:
    """`ident` is a user with a field that starts with `word`. SQLite: a union of index
    range scans that yields ids, checked against the other filters in a narrow covering
    index, never the rows. PostgreSQL: the same union hashed whole (`hashed`), or the ranges
    ORed, which it answers with one bitmap of the four indexes where it reads the matches
    (a capped count stops early: "ma" at a million users 53 → 20 ms; "ma son" sorted 303 →
    21 ms), and tests row by row where it walks an order."""
    columns = (User.first_name, User.last_name, User.email, User.employee_id)
    ranges = [(column_, variant) for variant in _word_variants(word) for column_ in columns]
    union = ident.in_(
        union_all(*(select(User.id).where(_starts_with(c, variant)) for c, variant in ranges))
    )
    ored = _of(ident, or_(*(_starts_with(c, variant) for c, variant in ranges)))
    return _per_dialect(union, union if hashed else ored)


# PostgreSQL tests a one-letter prefix against its matches' ids hashed whole: its four
# ranges hold a third of the users, too many for one bitmap (the count of "m" at a million
# users: 45 ms hashed, 107 ms ORed). A walk of the order longer than SEARCH_HASHED_WALK rows
# hashes them too: there a row's four range tests, though read from the walked index alone
# (0014_search_walk), cost more than hashing the ids once (500,000 rows walked for page 200
# of "ma": 183 ms ORed, 75 ms hashed; 40,000 rows for its first page: 7 ms ORed, 22 hashed).
SEARCH_HASHED_WALK = 50_000


def search_condition(
    q: str, ident=User.id, *, walked: int | None = None, joined: bool = False
) -> ColumnElement[bool] | None:
    """Every word is inside (three characters or more) or at the start of (fewer) a first
    name, last name, email or user ID of the user `ident` names: the user of the row by
    default, or a user id of another table's (`CourseAssignment.user_id`), which then is
    tested against the indexes' ids without reading `users` where the engine can.
    `walked`: the condition tests the rows of a walk of the order this long. `joined`:
    without the words three characters or longer (the query joins the FTS5 table)."""
    words = q.split()[:MAX_SEARCH_WORDS]
    long_words = _long_words(q)

    def hashed(word: str) -> bool:
        if walked is not None:
            return walked > SEARCH_HASHED_WALK
        # Beside a longer word, whose trigram matches are read first, a prefix is tested
        # on each of them ("m son" at a million users: 845 → 55 ms).
        return len(word) == 1 and not long_words

    conditions = [_starting(w, ident, hashed(w)) for w in words if len(w) < SUBSTRING_MIN]
    if long_words and not joined:
        conditions.append(_containing(long_words, ident))
    return and_(*conditions) if conditions else None


def _long_words(q: str) -> list[str]:
    """The words searched inside the fields (the trigram index's), not at their start."""
    return [w for w in q.split()[:MAX_SEARCH_WORDS] if len(w) >= SUBSTRING_MIN]


def filtered_users(
    filters: UserFilters,
    walk: bool = False,
    *,
    search: bool = True,
    far: bool = False,
) -> Select[tuple[User]]:
    """Users matching the filters, unordered (callers add ordering or aggregate). Narrowed
    first by the administrator's scope: the list, its count, "everyone matching", the export
    and the Dashboard all come through here.

    `walk`: the same users, with the group filter tested row by row (EXISTS) rather than
    as a list of ids. For a page of many matches in an order an index keeps: walking that
    index costs a few rows per row shown (membership is not clustered by name), where a
    list of 80,000 members must be read and sorted whole first. Not for search: matches of
    a name cluster in name order ("rossi" is 700,000 rows into a million).

    The scope is tested row by row too when walking or when a filter narrows the list
    (`UserFilters.narrowed`): the filter's own index drives, where SQLite would read every
    member of the scope first and look each one up (a location of 317 people in scope:
    12,338 lookups). A list the scope alone narrows starts from the scope's members. `far`:
    a walk far down the order, which on PostgreSQL tests the scope against its members read
    once (`scope.user_condition`'s `hashed`).

    `search=False`: without the search (`searched_page` tests it row by row)."""
    query = select(User)
    if (rule := scope.current_rule()) is not None:
        hashed = walk and far and db.session.get_bind().dialect.name == "postgresql"
        query = query.where(
            scope.user_condition(rule, walk=walk or filters.narrowed, hashed=hashed)
        )
    query = _by_status_and_role(query, filters, User.status, User.role)
    if filters.location:
        query = query.where(User.location_id.in_(filters.location))
    if filters.group:
        # IN (subquery) rather than EXISTS: the planners turn it into an index lookup.
        members = select(user_groups.c.user_id).where(user_groups.c.group_id.in_(filters.group))
        # SQLite, a search at a location read first: only the location's people the search
        # finds are looked up in the group, where listing its members cost more ("mar" at
        # Berlin in Sales, at a million users: the count 24.6 → 16 ms).
        if walk or (filters.q and filters.first == "location"):
            members = members.where(user_groups.c.user_id == User.id)
            query = query.where(members.exists())
        else:
            query = query.where(User.id.in_(members))
    if filters.by_manager:
        given = []
        if filters.manager:
            given.append(User.manager_id.in_(filters.manager))
        if filters.manager_email:
            managers = aliased(User)
            by_email = func.lower(managers.email).in_(filters.manager_email)
            given.append(User.manager_id.in_(select(managers.id).where(by_email)))
        query = query.where(or_(*given))
    if filters.training:
        query = query.where(training_condition(filters.training, date.today()))
    if filters.course or filters.course_state:
        query = query.where(course_condition(filters.course, filters.course_state, date.today()))
    index = None if walk else _sqlite_index(filters)
    # SQLite, a search looked up in the narrow index: its trigram matches drive, each
    # looked up once, where the planner first listed them whole (an IN list) and then
    # looked each up ("son" at a million users: the capped count 13.6 → 5.8 ms, the page
    # 40.5 → 34.7). A group's members would drive too (`_sqlite_index`): left to the planner.
    long_words = _long_words(filters.q)
    joined = (
        search
        and index == "ix_users_id_cover"
        and not filters.group
        and bool(long_words)
        and db.session.get_bind().dialect.name == "sqlite"
    )
    if joined:
        # The unary + keeps the FTS5 table from being probed by id per user: the matches
        # drive, whatever the statistics say (on a small table SQLite scanned the users).
        drives = User.id == literal_column("+users_search.rowid")
        query = query.select_from(_users_search.join(User, drives)).where(_matching(long_words))
    condition = search_condition(filters.q, joined=joined) if search else None
    if condition is not None:
        query = query.where(condition)
    if index:
        query = query.with_hint(User, f"INDEXED BY {index}", "sqlite")
    return query


def _sqlite_index(filters: UserFilters) -> str | None:
    """SQLite: the index the users are read from where its planner, given statistics,
    chose worse. Users found as lists of ids (a search, a group) are each looked up in the
    narrow ix_users_id_cover: the planner read each one's whole row instead ("son" at a
    million users: 80,000 rows, the page 78 → 43 ms). A location and a group: the smaller
    drives (`UserFilters.first`); the location's people from ix_users_location_name, each
    tested against the group's members (Berlin + Sales at a million users: the count 83 →
    23 ms, with "mar" too 45 → 25 ms). Only where the rest of the filters and the order
    are columns of those indexes, and the statuses include the active users (the archived
    alone are a range worth walking)."""
    if "active" not in filters.status or (
        filters.by_manager
        or filters.training
        or filters.course
        or filters.course_state
        or filters.sort.removeprefix("-") not in ("name", "status")
    ):
        return None
    if filters.location:
        if not filters.group or not filters.first:
            return None
        return "ix_users_location_name" if filters.first == "location" else "ix_users_id_cover"
    return "ix_users_id_cover" if filters.q or filters.group else None


@compiles(Table, "sqlite")
def _table_sqlite(element, compiler, **kw):
    """A table in a FROM clause with its SQLite hint (`Select.with_hint(..., "sqlite")`,
    e.g. "INDEXED BY ix"), which SQLAlchemy's SQLite compiler leaves out."""
    text = compiler.visit_table(element, **kw)
    hints = kw.get("fromhints")
    if kw.get("asfrom") and hints and element in hints:
        text += " " + hints[element]
    return text


def _by_status_and_role(query: Select, filters: UserFilters, status, role) -> Select:
    """`query` narrowed to the filters' statuses and roles, held in `status` and `role`."""
    statuses = set(filters.status)
    # Every status is everyone; two of three read as "not the third", which lets the
    # planners walk a name-ordered index instead of sorting both status ranges.
    if len(statuses) == len(STATUSES) - 1:
        (excluded,) = set(STATUSES) - statuses
        query = query.where(status != excluded)
    elif statuses and len(statuses) < len(STATUSES):
        query = query.where(status.in_(sorted(statuses)))
    if filters.role:
        query = query.where(role.in_(filters.role))
    return query


def matching_statuses(filters: UserFilters) -> Select:
    """The status of each user matching the filters, for counting them by status. A scoped
    administrator's list narrowed by no more than status and role is read from
    `scope_members` alone, which holds both: a range of one index, where reading each
    member's row costs a lookup per member (11,730 at 100,000 users)."""
    rule = scope.current_rule()
    if rule is not None and rule.scope_id is not None and not filters.narrowed:
        m = scope_members
        query = select(m.c.status).where(m.c.scope_id == rule.scope_id)
        return _by_status_and_role(query, filters, m.c.status, m.c.role)
    return filtered_users(filters).with_only_columns(User.status).order_by(None)


def course_condition(course_id: int | None, state: str, today: date) -> ColumnElement[bool]:
    """Users with a record of the course (any, without one) in the state (any open record,
    without one): not started, started, completed, overdue (open, unfinished, past due)
    or archived (any archived record of it)."""
    a = CourseAssignment
    records = select(a.user_id)
    if course_id is not None:
        records = records.where(a.course_id == course_id)
    if state == "archived":
        records = records.where(a.archived_at.is_not(None))
    else:
        records = records.where(a.archived_at.is_(None))
        if state == "not_started":
            records = records.where(a.state == "assigned")
        elif state == "started":
            records = records.where(a.state == "in_progress")
        elif state == "completed":
            records = records.where(a.state == "completed")
        elif state == "overdue":
            records = records.where(a.state != "completed", a.due_date < today)
    return User.id.in_(records)


def _order_columns(sort: str) -> list:
    descending = sort.startswith("-")
    key = sort.removeprefix("-")
    if key == "email":
        columns = [search_key(User.email)]
    elif key == "location":
        # Users without a location come last either way.
        columns = [Location.name.is_(None), Location.name, User.last_name, User.first_name]
    elif key == "status":
        columns = [User.status, User.last_name, User.first_name]
    elif key == "created":
        columns = [User.created_at]
    else:
        columns = [User.last_name, User.first_name]
    # lower(email) is unique (uq_users_email_lower): the email order needs no id, and with
    # one SQLite walks the covering ix_users_search_email instead of the unique index and
    # every row it passes (sort by email at page 500 of a million: 135 ms).
    if key != "email":
        columns.append(User.id)
    if descending:
        columns = [c if i == 0 and key == "location" else c.desc() for i, c in enumerate(columns)]
    return columns


def ordered(query: Select, sort: str) -> Select:
    """`query` in the list's `sort` order ("name", "-name", ...), the id last so pages are
    stable (the email is unique already)."""
    if sort.removeprefix("-") == "location":
        query = query.outerjoin(Location, Location.id == User.location_id)
    return query.order_by(*_order_columns(sort))


# Past the count's cap, a searched page is first looked for in this many rows of the sort
# order per row it needs (at least SEARCH_WALK_MIN), then in at least SEARCH_WALK_LONG (see
# `search_walks`).
SEARCH_WALK_RATIO = 50
SEARCH_WALK_MIN = 5_000
SEARCH_WALK_LONG = 20_000


def search_walks(
    offset: int, rows: int, everyone: Callable[[], int] | None = None, at_least: int = 0
) -> list[int]:
    """How far `searched_page` looks for the page of a search counted past its cap, one try
    after another (a search counted within the cap has its page sorted by the count's own
    statement: `counted_with_page`): SEARCH_WALK_RATIO rows per row wanted and at least
    5,000; then, the matches being too many to sort cheaply, eight times that and at least
    20,000 (matches cluster: in the demo data one first and last name pair is a block of 400
    users at a million), about what sorting the matches of one common surname costs. The
    first try is left out where `at_least` matches (the count so far) among `everyone()`
    users would not hold the page twice over in it: at a million users none of "ma",
    "mar", "son" and "rossi" had a match in the first 5,000 rows."""
    first = max(SEARCH_WALK_RATIO * (offset + rows), SEARCH_WALK_MIN)
    longer = max(first * 8, SEARCH_WALK_LONG)
    if everyone is not None and at_least * first < 2 * (offset + rows) * everyone():
        return [longer]
    return [first, longer]


def _keyed(query: Select, sort: str) -> tuple[Select, list[tuple[str, bool]]]:
    """`query`'s ids (`found`) with the `sort` order's keys (k0, k1, ...) beside them, and
    those keys' names, each with whether it is descending: ordered by its own columns, a
    subquery of this is never looked up again to be sorted."""
    order = _order_columns(sort)
    if sort.removeprefix("-") == "location":
        query = query.outerjoin(Location, Location.id == User.location_id)
    keys = [getattr(c, "element", c) if _descending(c) else c for c in order]
    inner = query.with_only_columns(
        User.id.label("found"), *(key.label(f"k{n}") for n, key in enumerate(keys))
    )
    return inner, [(f"k{n}", _descending(c)) for n, c in enumerate(order)]


def _by_keys(subquery, keys: list[tuple[str, bool]]) -> list:
    return [subquery.c[name].desc() if desc else subquery.c[name] for name, desc in keys]


def counted_with_page(
    filters: UserFilters, limit: int, offset: int, rows: int, query: Select | None = None
) -> Select:
    """PostgreSQL, a search: its matches counted by status as far as `limit` + 1 (rows of
    status, count, None), read once from the trigram or prefix index with their sort keys;
    and in the same statement, where they are no more than `limit`, the page of their ids
    (`rows` from `offset`) sorted from them (rows of None, position, id). A one-time filter
    skips that sort past the cap. One statement and one read of the matches where a
    search counted within the cap took two or three statements and two reads: the count,
    the users there are (for the walk's choice), then a walk of the order or the matches
    read again and sorted ("everything" at a million users, 101 matches: 53.4 / 47.7 →
    36.0 / 37.5 ms p50). Carrying the keys costs a capped count ("ma" at a million users,
    psql: 27-31 → 29-33 ms). `query`: `filtered_users(filters)`, where the caller has it."""
    query = filtered_users(filters) if query is None else query
    inner, keys = _keyed(query.order_by(None), filters.sort)
    matches = inner.add_columns(User.status.label("status")).limit(limit + 1).cte("matches")
    counts = select(matches.c.status, func.count(), literal_column("NULL::integer")).group_by(
        matches.c.status
    )
    counted = select(func.count()).select_from(matches).scalar_subquery()
    page = (
        select(matches.c.found, *(matches.c[name] for name, _ in keys))
        .where(counted <= limit)
        .order_by(*_by_keys(matches, keys))
        .limit(rows)
        .offset(offset)
        .subquery("page")
    )
    ranked = select(
        literal_column("NULL::varchar"),
        func.row_number().over(order_by=_by_keys(page, keys)),
        page.c.found,
    )
    return union_all(counts, ranked)


def searched_page(filters: UserFilters, offset: int, rows: int, walked: int) -> Select | None:
    """PostgreSQL: the ids of a searched page (`rows` from `offset`) looked for in the first
    `walked` rows of the sort order, testing each for the words. The planner would either
    walk the whole order so (for a word of one surname, "rossi", 700,000 rows down a
    million: 7 s; for a scoped administrator, past every user outside the scope) or sort
    every trigram match. Where this finds too few (the matches are rare, or cluster far
    down the order), the caller sorts the matches (`matches_sorted`). None where the
    planner's plan is kept: SQLite (its search drives from the FTS5 table), no search, the
    location order (a join); and for a scoped administrator, whose people are a fraction of
    the order walked (Lisbon + Warehouse: 5,000 of them are 43,000 rows down 100,000, 30 ms),
    where their matches, sorted, are the trigram index's intersected with `scope_members`."""
    if not filters.q or filters.sort.removeprefix("-") == "location":
        return None
    if scope.current_rule() is not None:
        return None
    if db.session.get_bind().dialect.name != "postgresql":
        return None
    hit = search_condition(filters.q, walked=walked)
    if hit is None:
        return None
    # The sort keys come out of the walk too, so that the outer ORDER BY is the walk's own
    # order (no sort): the page stops the walk as soon as it is found.
    inner, keys = _keyed(filtered_users(filters, search=False), filters.sort)
    bounded = (
        inner.add_columns(hit.label("hit"))
        .order_by(*_order_columns(filters.sort))
        .limit(walked)
        .subquery()
    )
    return (
        select(bounded.c.found)
        .where(bounded.c.hit.is_(True))
        .order_by(*_by_keys(bounded, keys))
        .limit(rows)
        .offset(offset)
    )


# SQLite: a one-word search counted past its cap, its index holding SQLITE_WALK_MATCHES
# matches or more (sorting them all costs about 0.4 µs each: "son", 80,000 at a million
# users, 35 ms), is looked for in a walk of the name order first, as far as
# `search_walks`' longer try and at most SQLITE_WALK_MAX rows.
SQLITE_WALK_MATCHES = 50_000
SQLITE_WALK_MAX = 100_000
# How many of a word's first matches (FTS5 order) are read to tell whether the walk holds
# its page (`_walk_holds`): as many as the count reads.
SQLITE_WALK_SAMPLE = 10_001


def _sqlite_one_word(filters: UserFilters) -> str | None:
    """SQLite, an organisation-wide administrator's search of one word, filtered by no more
    than status and role (`_sqlite_index` looks its matches up in ix_users_id_cover): the
    word; else None."""
    words = filters.q.split()
    if (
        len(words) != 1
        or filters.group
        or _sqlite_index(filters) != "ix_users_id_cover"
        or scope.current_rule() is not None
        or db.session.get_bind().dialect.name != "sqlite"
    ):
        return None
    return words[0]


def _index_matches(word: str) -> int:
    """SQLite: how many users the word's index finds, whatever their status: its FTS5
    matches, or (a prefix) the users whose first name, last name, email or user ID starts
    with it, counted once per field; index ranges alone, one statement."""
    if len(word) >= SUBSTRING_MIN:
        found = select(func.count()).select_from(_users_search).where(_matching([word]))
        return db.session.scalar(found)
    fields = (User.first_name, User.last_name, User.email, User.employee_id)
    counts = [
        select(func.count()).where(_starts_with(c, v)).scalar_subquery()
        for c in fields
        for v in _word_variants(word)
    ]
    return sum(db.session.execute(select(*counts)).one())


def _one_word_by_status_and_role(filters: UserFilters) -> str | None:
    """An organisation-wide administrator's search of one word, among the users of statuses
    that include the active ones, filtered by no more than status and role: the word; else
    None."""
    words = filters.q.split()
    if (
        len(words) != 1
        or "active" not in filters.status
        or filters.location
        or filters.group
        or filters.by_manager
        or filters.training
        or filters.course
        or filters.course_state
        or scope.current_rule() is not None
    ):
        return None
    return words[0]


def capped_by_email(filters: UserFilters, limit: int) -> dict[str, int] | None:
    """A one-word prefix search (fewer than three characters): the users whose email starts
    with the word, per status, counted no further than `limit` + 1 rows of
    ix_users_search_email (which holds status and role). They are some of the matches: past
    `limit` the list is past its cap without the union of the four fields' matches listed
    and each looked up. At a million users, "ma": SQLite 28.7 → 2.6 ms; PostgreSQL, whose
    count read 10,001 users' rows from a bitmap of 102,000 entries, 25 → 3 ms. Else None:
    count them."""
    word = _one_word_by_status_and_role(filters)
    if word is None or len(word) >= SUBSTRING_MIN:
        return None
    emails = or_(*(_starts_with(User.email, v) for v in _word_variants(word)))
    some = (
        _by_status_and_role(select(User.status).where(emails), filters, User.status, User.role)
        .with_hint(User, "INDEXED BY ix_users_search_email", "sqlite")
        .limit(limit + 1)
        .subquery()
    )
    counted = dict(
        db.session.execute(select(some.c.status, func.count()).group_by(some.c.status)).all()
    )
    return counted if sum(counted.values()) > limit else None


def sqlite_walked_page(filters: UserFilters, offset: int, rows: int) -> list[int] | None:
    """SQLite, a one-word search counted past its cap, in name order (either way): the ids of
    the page (`rows` from `offset`) looked for in the first rows of ix_users_name_filters'
    walk, each tested against the matches listed once. The walk ends at the key of its last
    row (read first, from the index alone), so a page it holds is the ordered matches' own.
    None where not tried (few matches: sorting them is cheap, and a walk missing a word of
    one surname, "rossi" 700,000 rows down a million, would cost more) or where the walk
    held too few: then the matches are sorted. "son" at a million users: 34.4 → 17.0 ms
    (the matches' count that decides, 2.3; the walk's last key, 1.8; the page, 12.9)."""
    word = _sqlite_one_word(filters)
    walked = search_walks(offset, rows)[-1]
    if (
        word is None
        or filters.sort.removeprefix("-") != "name"
        or walked > SQLITE_WALK_MAX
        or _index_matches(word) < SQLITE_WALK_MATCHES
    ):
        return None
    keys = (User.last_name, User.first_name, User.id)
    order = _order_columns(filters.sort)
    hint = "INDEXED BY ix_users_name_filters"
    walk = _by_status_and_role(select(*keys), filters, User.status, User.role)
    bound = db.session.execute(
        walk.with_hint(User, hint, "sqlite").order_by(*order).limit(1).offset(walked - 1)
    ).first()
    page = filtered_users(filters, walk=True).with_only_columns(User.id)
    if bound is not None:
        descending = filters.sort.startswith("-")

        def within(*columns):
            walked_keys, end = tuple_(*columns), tuple_(*bound)
            return walked_keys >= end if descending else walked_keys <= end

        if len(word) >= SUBSTRING_MIN and not _walk_holds(filters, within, offset + rows):
            return None
        page = page.where(within(*keys))
    page = page.with_hint(User, hint, "sqlite").order_by(*order).limit(rows).offset(offset)
    ids = list(db.session.scalars(page))
    return ids if len(ids) >= rows or bound is None else None


def _walk_holds(filters: UserFilters, within, rows: int) -> bool:
    """SQLite: whether the first SQLITE_WALK_SAMPLE matches of the search's word, in the FTS5
    table's order, hold `rows` users `within(last name, first name, id)` the walk's end:
    then the walk holds its page. Where they hold fewer the walk would most likely miss (the
    matches cluster elsewhere in the order: "son" by name descending at a million users,
    20.7 ms walked for nothing)."""
    # The list's own statement (`filtered_users`: the FTS5 matches drive), as the count reads.
    sample = (
        filtered_users(filters)
        .with_only_columns(User.last_name, User.first_name, User.id)
        .limit(SQLITE_WALK_SAMPLE)
        .subquery()
    )
    found = sample.select().where(within(*sample.c)).limit(rows).subquery()
    return db.session.scalar(select(func.count()).select_from(found)) >= rows


def _descending(column) -> bool:
    return getattr(column, "modifier", None) is operators.desc_op


def matches_sorted(query: Select, filters: UserFilters) -> Any | None:
    """PostgreSQL, a search: a function giving a page of `query`'s ids (sort, limit, offset)
    from its matches read whole first, from the trigram index, and sorted: the planner
    would walk the sort order's index testing every user for the words. The matches carry
    their sort keys, so none is looked up again to be sorted (19,188 matches of "rossi" at
    a million users: 100 → 62 ms). None elsewhere."""
    if not filters.q or db.session.get_bind().dialect.name != "postgresql":
        return None

    def page(sort: str, limit: int, offset: int) -> Select:
        inner, keys = _keyed(query.order_by(None), sort)
        # OFFSET 0 keeps the planner from pulling the subquery up into a walk of the order.
        matches = inner.offset(0).subquery("matches")
        return (
            select(matches.c.found).order_by(*_by_keys(matches, keys)).limit(limit).offset(offset)
        )

    return page


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


class likely(FunctionElement):  # noqa: N801 - reads like the SQL function it renders
    """A condition true for most rows, said so to SQLite's planner: without statistics it
    takes `archived_at IS NULL` for a selective index range (0.5 s over 250,000 training
    records) rather than the user ids beside it (0.1 ms). PostgreSQL keeps statistics."""

    inherit_cache = True


@compiles(likely)
def _likely_sqlite(element, compiler, **kw):
    return f"likely({compiler.process(element.clauses, **kw)})"


@compiles(likely, "postgresql")
def _likely_postgresql(element, compiler, **kw):
    return f"({compiler.process(element.clauses, **kw)})"


def training_sums(today: date | ColumnElement[date]) -> list[ColumnElement[int]]:
    """Aggregates over a user's course assignments: open (not completed), overdue, completed
    (NULL over no rows). Callers narrow to the unarchived ones with `UNARCHIVED_TRAINING`."""
    a = CourseAssignment
    unfinished = a.state != "completed"
    return [
        func.sum(case((unfinished, 1), else_=0)),
        func.sum(case((unfinished & (a.due_date < today), 1), else_=0)),
        func.sum(case((a.state == "completed", 1), else_=0)),
    ]


UNARCHIVED_TRAINING = likely(CourseAssignment.archived_at.is_(None))


def training_counts(user_ids: list[int], today: date) -> dict[int, TrainingCounts]:
    """Per user: unarchived assignments open (not completed), overdue, completed. One query
    for a whole page of users."""
    if not user_ids:
        return {}
    a = CourseAssignment
    rows = db.session.execute(
        select(a.user_id, *training_sums(today))
        .where(a.user_id.in_(user_ids), UNARCHIVED_TRAINING)
        .group_by(a.user_id)
    )
    return {uid: TrainingCounts(int(o or 0), int(d or 0), int(c or 0)) for uid, o, d, c in rows}


# The Users list's Manager field: how many managers it suggests as one types.
MANAGER_SUGGESTIONS = 10


def _managing(managers) -> ColumnElement[bool]:
    """SQL: someone in scope reports to the user `managers` (an alias of User), tested row
    by row through ix_users_manager_id."""
    return select(User.id).where(User.manager_id == managers.id, scope.user_condition()).exists()


def managers_condition(managers) -> ColumnElement[bool]:
    """SQL: the user `managers` (an alias of User) may be named as a manager to the
    request's administrator: someone in scope reports to them, or they are in scope
    themselves."""
    if scope.current_rule() is None:
        return _managing(managers)
    return or_(_managing(managers), managers.id.in_(select(User.id).where(scope.user_condition())))


def manager_suggestions(text: str) -> list[Any]:
    """Up to MANAGER_SUGGESTIONS managers (users someone in scope reports to) by name, each
    word of `text` starting their first name, last name or email: (id, first name, last
    name, email) rows.

    Nothing typed: the name order walked, each user tested for a report (ix_users_manager_id;
    one in a dozen is a manager). Typed: the first word's range of each field's prefix index
    walked in its order the same way, the other words tested on the rows, and the few found
    put in name order. Walking the name order instead stopped only at the tenth match, 860,000
    rows down for "xu" at a million users (660 ms)."""
    words = text.lower().split()[:MAX_SEARCH_WORDS]
    shown = aliased(User)
    columns = ("first_name", "last_name", "email")

    def starting(m, word: str) -> ColumnElement[bool]:
        return or_(*(_starts_with(getattr(m, c), v) for v in _word_variants(word) for c in columns))

    condition = _managing(shown)
    if words:
        walks = []
        for name in columns:
            for variant in _word_variants(words[0]):
                m = aliased(User)
                walk = (
                    select(m.id)
                    .where(_starts_with(getattr(m, name), variant), _managing(m))
                    .where(*(starting(m, word) for word in words[1:]))
                    .order_by(search_key(getattr(m, name)))
                    .limit(MANAGER_SUGGESTIONS)
                )
                walks.append(walk.subquery().select())
        condition = shown.id.in_(union_all(*walks))
    query = (
        select(shown.id, shown.first_name, shown.last_name, shown.email)
        .where(condition)
        .order_by(shown.last_name, shown.first_name, shown.id)
        .limit(MANAGER_SUGGESTIONS)
    )
    return db.session.execute(query).all()


def get_user_or_404(user_id: int, *, with_groups: bool = False) -> User:
    """The user every /admin/users/<id> route acts on, or 404: the one place that decides
    which users an administrator may reach (a scoped one: their people, never another
    administrator)."""
    options = [selectinload(User.groups)] if with_groups else []
    user = db.session.get(User, user_id, options=options)
    if user is None:
        abort(404, "That user does not exist.")
    refusal = scope.may_act_on(user)
    if refusal == scope.OUT_OF_SCOPE:
        abort(404, "That user does not exist.")
    if refusal:
        abort(403, refusal)
    return user
