"""The Users list: filters, search, sort and pages, all in the query string."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from math import ceil
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

from flask import render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import (
    JSON,
    Date,
    Integer,
    Select,
    String,
    any_,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.orm import aliased
from werkzeug.datastructures import MultiDict
from wtforms import SearchField, SelectField, StringField
from wtforms.fields.choices import SelectChoice

from ... import scope, user_counts
from ...compliance import TRAINING_LABELS
from ...database import PREPARED
from ...extensions import db
from ...models import (
    ROLE_LABELS,
    STATUS_LABELS,
    Course,
    CourseAssignment,
    Group,
    Location,
    User,
    user_groups,
    utcnow,
)
from ...navigation import app_path
from ...rendering import render, wants_partial
from ...security import scoped
from ...user_forms import CheckboxList
from ...user_queries import (
    COURSE_STATES,
    MANAGER_SUGGESTIONS,
    OVERDUE,
    PER_PAGE_CHOICES,
    UNARCHIVED_TRAINING,
    TrainingCounts,
    UserFilters,
    capped_by_email,
    counted_with_page,
    filtered_users,
    manager_suggestions,
    managers_condition,
    matches_sorted,
    matching_statuses,
    ordered,
    search_walks,
    searched_page,
    sqlite_walked_page,
    training_counts,
    training_sums,
)
from . import bp

SORT_LABELS = {
    "name": "Name",
    "email": "Email",
    "location": "Location",
    "status": "Status",
    "created": "Date added",
}
# The form's own controls; a request they trigger does not re-render them (focus stays).
FORM_TRIGGERS = {"users-filters", "users-q"}
COUNT_CAP = 10_000
# Orders an index of users keeps (0002_user_search, 0003_dashboard): by location is a join.
WALKED_SORTS = {"name", "email", "status", "created"}
# A walk for a page this many rows down the order or more tests the scope against its
# members read once, not probed row by row (`user_queries.filtered_users`' `far`).
FAR_WALK = 5_000
# A group at a location is walked along the location (SQLite) from this many matches up.
LOCAL_WALK_MIN = 500


class UserFilterForm(FlaskForm):
    """The list's GET filter form; `UserFilters.from_args` is what reads the values back."""

    class Meta:
        csrf = False

    q = SearchField("Search users")
    location = CheckboxList("Locations", choices=[])
    group = CheckboxList("Groups", choices=[])
    status = CheckboxList("User status", choices=[])
    role = SelectField("User role", choices=[])
    training = SelectField("Training", choices=[])
    # Not labelled "Course": the bulk bar's Course field is on the same page.
    course = SelectField("Enrolled in", choices=[])
    course_state = SelectField("Enrolment state", choices=[])
    # Typed (an email), with suggestions as one types (`manager_options`): a select of every
    # manager grew with the organisation, 8,000 options and 420 KB at 100,000 users.
    manager = StringField("Manager")


def _choices(pairs) -> list[SelectChoice]:
    return [SelectChoice(str(value), label) for value, label in pairs]


def filter_form(filters: UserFilters, locations, groups, courses=(), manager="") -> UserFilterForm:
    """The form showing the (corrected) state, not the raw parameters; `manager`: the email
    of the one manager filtered on."""
    form = UserFilterForm(
        formdata=None,
        q=filters.q,
        location=[str(x) for x in filters.location],
        group=[str(g) for g in filters.group],
        status=filters.status,
        role=filters.role[0] if len(filters.role) == 1 else "",
        training=filters.training,
        course=str(filters.course or ""),
        course_state=filters.course_state,
        manager=manager,
    )
    form.location.choices = _choices((x.id, x.name) for x in locations)
    form.group.choices = _choices((g.id, g.name) for g in groups)
    form.status.choices = _choices(STATUS_LABELS.items())
    form.role.choices = _choices([("", "Any role"), *ROLE_LABELS.items()])
    form.training.choices = _choices([("", "Any training state"), *TRAINING_LABELS.items()])
    form.course.choices = _choices([("", "Any course"), *((c.id, c.name) for c in courses)])
    form.course_state.choices = _choices([("", "Any state"), *COURSE_STATES.items()])
    return form


def list_url(filters: UserFilters, **changes: Any) -> str:
    return url_for("users.index", **filters.to_args(**changes).to_dict(flat=False))


def filter_chips(
    filters: UserFilters, names: dict[str, dict[int, str]], typed: dict[str, int] | None = None
) -> list[dict]:
    """One removable chip per active filter value, each with the URL that removes it;
    `typed`: the names typed as a manager that matched none or several (`_typed_managers`)."""
    chips = []
    reset = {"page": 1}
    if filters.q:
        chips.append(
            {"label": f"“{filters.q}”", "kind": "Search", "url": list_url(filters, q="", **reset)}
        )
    for ident in filters.location:
        if ident in names["location"]:
            rest = [x for x in filters.location if x != ident]
            url = list_url(filters, location=rest, **reset)
            chips.append({"label": names["location"][ident], "kind": "Location", "url": url})
    for ident in filters.group:
        if ident in names["group"]:
            rest = [x for x in filters.group if x != ident]
            url = list_url(filters, group=rest, **reset)
            chips.append({"label": names["group"][ident], "kind": "Group", "url": url})
    if not filters.default_status:
        label = ", ".join(STATUS_LABELS[s] for s in filters.status)
        chips.append(
            {"label": label, "kind": "Status", "url": list_url(filters, status=[], **reset)}
        )
    for role in filters.role:
        rest = [r for r in filters.role if r != role]
        url = list_url(filters, role=rest, **reset)
        chips.append({"label": ROLE_LABELS[role], "kind": "Role", "url": url})
    managers = names.get("manager", {})
    for ident in filters.manager:
        if ident in managers:
            rest = [*(x for x in filters.manager if x != ident), *filters.manager_email]
            url = list_url(filters, manager=rest, **reset)
            chips.append({"label": managers[ident][0], "kind": "Manager", "url": url})
    found = {email: name for name, email in managers.values()}
    for email in filters.manager_email:
        rest = [*filters.manager, *(x for x in filters.manager_email if x != email)]
        url = list_url(filters, manager=rest, **reset)
        label = found.get(email) or _unmatched(email, typed or {})
        chips.append({"label": label, "kind": "Manager", "url": url})
    if filters.training:
        url = list_url(filters, training="", **reset)
        chips.append({"label": TRAINING_LABELS[filters.training], "kind": "Training", "url": url})
    if filters.course or filters.course_state:
        course = names.get("course", {}).get(filters.course or 0, "any course")
        state = COURSE_STATES.get(filters.course_state, "any state")
        url = list_url(filters, course=None, course_state="", **reset)
        chips.append({"label": f"{course} · {state}", "kind": "Course", "url": url})
    return chips


def _unmatched(text: str, typed: dict[str, int]) -> str:
    """A Manager chip's words for what found no manager."""
    if text not in typed:
        return f"no user has the email “{text}”"
    if not typed[text]:
        return f"no manager matches “{text}”"
    many = "10 or more" if typed[text] >= MANAGER_SUGGESTIONS else str(typed[text])
    return f"“{text}” matches {many} managers: pick one"


def _typed_managers(filters: UserFilters) -> dict[str, int]:
    """Names typed in the Manager field (not emails): one that matches a single manager
    becomes that manager's email (the address bar shows it); what matches none or several
    is returned, {text: how many it matched}."""
    typed = {}
    for i, text in enumerate(filters.manager_email):
        if "@" in text:
            continue
        found = manager_suggestions(text)
        if len(found) == 1:
            filters.manager_email[i] = found[0].email.lower()
        else:
            typed[text] = len(found)
    return typed


def sort_links(filters: UserFilters) -> dict[str, dict[str, str]]:
    """Per sortable column: the link (a second click reverses) and its aria-sort."""
    links = {}
    for key in SORT_LABELS:
        if filters.sort == key:
            aria, target = "ascending", f"-{key}"
        elif filters.sort == f"-{key}":
            aria, target = "descending", key
        else:
            aria, target = "none", key
        links[key] = {"url": list_url(filters, sort=target, page=1), "aria": aria}
    return links


def list_context(filters: UserFilters) -> dict[str, Any]:
    """Everything the table partial shows; a fixed number of queries whatever per_page."""
    typed = _typed_managers(filters)
    names, sizes = _chip_names(filters)
    if sizes:
        # SQLite: the count and the page read the smaller of a location and a group first.
        filters.first = "location" if sizes["location"] <= sizes["group"] else "group"
    query = filtered_users(filters)
    # Counting stops past COUNT_CAP: an exact count of a million rows costs more than the
    # page itself. Past it the list says "more than 10,000", and whether a next page
    # exists comes from the page query (one row more than shown). A page beyond the cap is
    # counted as far as itself: when the list ends before it, that count is exact (and the
    # page is corrected to the last one) without first reading a page of nothing.
    # Counted per status in the same query: the export links say how many they hold.
    # Filtered by no more than status, role and one location or group, the list is counted
    # already, exactly (`user_counts`).
    cap = max(COUNT_CAP, filters.per_page)
    limit = max(cap, filters.page * filters.per_page)
    kept = user_counts.kept(filters)
    asked = (filters.page - 1) * filters.per_page
    counted_page = None  # PostgreSQL, a search: its page, read with the count
    if kept is not None:
        by_status = kept
    elif by_email := capped_by_email(filters, limit):
        by_status = by_email
    elif filters.q and db.session.get_bind().dialect.name == "postgresql":
        by_status, counted_page = _count_with_page(filters, query, limit, asked)
    else:
        by_status = _count_by_status(filters, limit)
    # The page's ids first (from an index alone where one covers the filters), then
    # those rows with what they show: a deep page never reads the rows it skips.
    capped = kept is None and sum(by_status.values()) > limit
    total = sum(by_status.values())  # a lower bound when capped: only compared, never shown
    if not capped:
        pages = max(ceil(total / filters.per_page), 1)
        filters.page = min(filters.page, pages)
    key = filters.sort.removeprefix("-")
    rule = scope.current_rule()
    members = bool(filters.group) or rule is not None
    # Many members of a group or a scope, in an order an index keeps: walk that index,
    # testing each row.
    many = total > cap
    # SQLite, a group at a location: the location's people in name order (its own index),
    # each tested for the group, where SQLite looked up every member of the group instead
    # (84,000 at a million users: 75 ms a page, against 0.5). With at least LOCAL_WALK_MIN
    # matches a first page is found within a tenth of the location; fewer are looked up.
    local = (
        not many
        and bool(filters.location and filters.group)
        and total >= LOCAL_WALK_MIN
        and db.session.get_bind().dialect.name == "sqlite"
    )
    walk = (many and members or local) and key in WALKED_SORTS
    # How far down the order the page is read (a late page of a counted list from its end).
    offset = (filters.page - 1) * filters.per_page
    far = offset if capped else min(offset, max(total - offset - filters.per_page, 0))
    walked = (
        filtered_users(filters, walk=True, far=far >= FAR_WALK)
        if many and members or local
        else query
    )
    if many and key == "location":

        def page_of_ids() -> list[int]:
            return _page_ids_by_location(walked, filters)

    else:
        ids_query = (walked if walk else query).with_only_columns(User.id)
        sorted_matches = matches_sorted(query, filters)

        def page_of_ids() -> list[int]:
            offset = (filters.page - 1) * filters.per_page
            if counted_page and counted_page[0] == offset:
                return counted_page[1]
            known = None if capped else total
            wanted = filters.per_page + 1
            if known is None and (ids := sqlite_walked_page(filters, offset, wanted)):
                return ids
            # PostgreSQL, a search past the cap: walks of the order, then its matches sorted.
            everyone = user_counts.everyone if sorted_matches is not None else None
            for walked in search_walks(offset, wanted, everyone, total) if capped else ():
                searched = searched_page(filters, offset, wanted, walked)
                if searched is None:
                    break
                ids = list(db.session.scalars(searched))
                if len(ids) >= wanted:  # the page and the next one's first
                    return ids
            return _page_ids(ids_query, filters, known, sorted_matches)

    page_ids = page_of_ids()
    if capped and len(page_ids) <= filters.per_page:
        # Fewer rows than counted (users left meanwhile): this is the last page after all.
        by_status = _count_by_status(filters, filters.page * filters.per_page)
        total = sum(by_status.values())
        capped = False
        pages = max(ceil(total / filters.per_page), 1)
        if filters.page > pages:
            filters.page = pages
            page_ids = page_of_ids()
    if capped:
        pages = filters.page + 1
    page_ids = page_ids[: filters.per_page]
    users = listed_users(page_ids)
    first = (filters.page - 1) * filters.per_page + 1 if users else 0
    return {
        "filters": filters,
        "users": users,
        "total": total,
        "total_capped": capped,
        "total_label": f"more than {COUNT_CAP:,}" if capped else f"{total:,}",
        "current_page": filters.page,
        "pages": pages,
        "first": first,
        "last": first + len(users) - 1 if users else 0,
        "chips": filter_chips(filters, names, typed),
        "chip_names": names,
        "sorts": sort_links(filters),
        "per_page_choices": PER_PAGE_CHOICES,
        "page_url": lambda page, **changes: list_url(filters, page=page, **changes),
        "clear_url": url_for("users.index"),
        "state": filters.to_args(),
        "list_url": list_url(filters),
        "anyone": filters.active or bool(total) or _anyone(),
        "training": {user.id: user.training for user in users if user.training},
        "exports": _export_links(filters, total, by_status.get("active", 0), capped),
        "overdue_url": list_url(filters, training=OVERDUE, page=1),
    }


class Named(NamedTuple):
    """A location or group as a row shows it: by name."""

    name: str


@dataclass(slots=True)
class ListedUser:
    """One row of the Users list: what `users/_row.html` reads of a `User`, read for a whole
    page in one statement (`listed_users`) instead of as ORM objects with their relations."""

    id: int
    email: str
    employee_id: str | None
    first_name: str
    last_name: str
    role: str
    status: str
    created_at: datetime
    notified_at: datetime | None
    activated_at: datetime | None
    archived_at: datetime | None
    invite_status: str | None
    invite_error: str | None
    location: Named | None
    groups: list[Named]
    training: TrainingCounts | None

    name = User.name
    is_admin = User.is_admin


_ROW_COLUMNS = (
    User.id,
    User.email,
    User.employee_id,
    User.first_name,
    User.last_name,
    User.role,
    User.status,
    User.created_at,
    User.notified_at,
    User.activated_at,
    User.archived_at,
    User.invite_status,
    User.invite_error,
)


def _page_statement(dialect: str) -> Select:
    """The rows of the ids in the `ids` parameter, each with its location's name, its group
    names (a JSON array) and its training counts (a JSON array: open, overdue, completed),
    as of the `today` parameter. Built once per dialect: only the parameters change, so the
    statement is compiled once and, on PostgreSQL (one array parameter for the ids),
    prepared by the server."""
    if dialect == "postgresql":
        in_page = User.id == any_(bindparam("ids", type_=ARRAY(Integer)))
        group_names = func.json_agg(aggregate_order_by(Group.name, Group.name), type_=JSON)
        as_array = func.json_build_array
    else:
        in_page = User.id.in_(bindparam("ids", expanding=True))
        # SQLite orders no aggregate before 3.44: listed_users sorts the names, by code
        # point as SQLite's BINARY collation does.
        group_names = func.json_group_array(Group.name, type_=JSON)
        as_array = func.json_array
    a = CourseAssignment
    training = as_array(*training_sums(bindparam("today", type_=Date)), type_=JSON)
    return (
        select(
            *_ROW_COLUMNS,
            Location.name,
            select(group_names)
            .select_from(user_groups.join(Group, Group.id == user_groups.c.group_id))
            .where(user_groups.c.user_id == User.id)
            .scalar_subquery(),
            select(training).where(a.user_id == User.id, UNARCHIVED_TRAINING).scalar_subquery(),
        )
        .outerjoin(Location, Location.id == User.location_id)
        .where(in_page)
        .execution_options(**PREPARED)
    )


_PAGE_STATEMENTS: dict[str, Select] = {}


def listed_users(page_ids: list[int]) -> list[ListedUser]:
    """The page's rows in `page_ids` order, with what each row shows: one statement,
    whatever the page size."""
    if not page_ids:
        return []
    dialect = db.session.get_bind().dialect.name
    statement = _PAGE_STATEMENTS.get(dialect)
    if statement is None:
        statement = _PAGE_STATEMENTS[dialect] = _page_statement(dialect)
    rows = db.session.execute(statement, {"ids": page_ids, "today": utcnow().date()})
    sort_names = dialect != "postgresql"
    by_id = {}
    for row in rows:
        *columns, location, groups, training = row
        if sort_names and groups:
            groups.sort()
        open_, overdue, completed = training
        by_id[row[0]] = ListedUser(
            *columns,
            location=Named(location) if location is not None else None,
            groups=[Named(name) for name in groups or ()],
            training=None if open_ is None else TrainingCounts(open_, overdue, completed),
        )
    return [by_id[ident] for ident in page_ids if ident in by_id]


def _chip_names(filters: UserFilters) -> tuple[dict[str, dict[int, str]], dict[str, int]]:
    """The names the filter chips show (the locations, groups and managers filtered on, as
    far as the administrator may see them, and the course), in one statement. On SQLite,
    with a location and a group, the same statement reads how many people they hold from
    the kept counts (counting them, each up to 100,000 from an index, cost 8 ms of the list
    at a million users), returned as the second item ({} elsewhere)."""
    names: dict[str, dict[int, str]] = {"location": {}, "group": {}, "manager": {}}
    no_text, no_size = cast(null(), String).label("more"), cast(null(), Integer).label("size")
    sized = bool(filters.location and filters.group) and (
        db.session.get_bind().dialect.name == "sqlite"
    )

    def size(kind: str, refs: list[int]):
        return user_counts.held(kind, refs).label("size") if sized else no_size

    branches = []
    if filters.by_manager:
        # Named as the Manager field suggests them (`managers_condition`); "more" holds the
        # email, which the field shows and a chip of a typed email is matched by.
        managers = aliased(User)
        given = []
        if filters.manager:
            given.append(managers.id.in_(filters.manager))
        if filters.manager_email:
            given.append(func.lower(managers.email).in_(filters.manager_email))
        branches.append(
            select(
                literal("manager"),
                managers.id,
                managers.first_name + " " + managers.last_name,
                func.lower(managers.email),
                no_size,
            ).where(or_(*given), managers_condition(managers))
        )
    if filters.location:
        branches.append(
            select(
                literal("location"),
                Location.id,
                Location.name,
                no_text,
                size("location", filters.location),
            ).where(Location.id.in_(filters.location), scope.visible(Location))
        )
    if filters.group:
        branches.append(
            select(
                literal("group"), Group.id, Group.name, no_text, size("group", filters.group)
            ).where(Group.id.in_(filters.group), scope.visible(Group))
        )
    if filters.course:
        names["course"] = {filters.course: "a deleted course"}
        branches.append(
            select(literal("course"), Course.id, Course.code, no_text, no_size).where(
                Course.id == filters.course
            )
        )
    if not branches:
        return names, {}
    query = branches[0] if len(branches) == 1 else union_all(*branches)
    sizes = {"location": 0, "group": 0}
    for kind, ident, name, last_name, count in db.session.execute(query):
        names[kind][ident] = (name, last_name) if kind == "manager" else name
        if count is not None:
            sizes[kind] = count
    return names, sizes if sized else {}


def _count_with_page(
    filters: UserFilters, query: Select, limit: int, offset: int
) -> tuple[dict[str, int], tuple[int, list[int]] | None]:
    """The users matching a search per status (as `_count_by_status`), and the page at
    `offset` with the next one's first, (offset, ids), where `counted_with_page` read it."""
    by_status: dict[str, int] = {}
    page: list[tuple[int, int]] = []
    statement = counted_with_page(filters, limit, offset, filters.per_page + 1, query)
    for status, n, found in db.session.execute(statement):
        if status is None:
            page.append((n, found))
        else:
            by_status[status] = n
    if sum(by_status.values()) > limit:
        return by_status, None
    return by_status, (offset, [found for _, found in sorted(page)])


def _count_by_status(filters: UserFilters, limit: int) -> dict[str, int]:
    """Users matching `filters` per status, counting no further than `limit` + 1 rows."""
    return dict(db.session.execute(counted_by_status(filters, limit)).all())


def counted_by_status(filters: UserFilters, limit: int):
    """The statement of `_count_by_status` (the bench prints its plan)."""
    matching = matching_statuses(filters).limit(limit + 1).subquery()
    return select(matching.c.status, func.count()).group_by(matching.c.status)


def _page_ids(ids_query, filters: UserFilters, total: int | None = None, page=None) -> list[int]:
    """The page's ids, and the next one's first when there is one. A page in the second
    half of a list whose length (`total`) is known is read from the list's end, in the
    reverse order: a walk along an index then passes the rows after the page, not all
    those before it (the last of 235 pages reads 30 rows, not 11,730). `page(sort, limit,
    offset)`: the statement of a slice, where `ids_query` in `sort` order is not it
    (`matches_sorted`)."""
    if page is None:

        def page(sort: str, limit: int, offset: int):
            return ordered(ids_query, sort).limit(limit).offset(offset)

    offset = (filters.page - 1) * filters.per_page
    key = filters.sort.removeprefix("-")
    # The location order puts users without one last both ways: it has no exact reverse.
    if total is not None and offset > total // 2 and key != "location":
        reverse = key if filters.sort.startswith("-") else f"-{key}"
        to_end = max(total - offset, 0)
        rows = page(reverse, min(to_end, filters.per_page), max(to_end - filters.per_page, 0))
        return list(db.session.scalars(rows))[::-1]
    return list(db.session.scalars(page(filters.sort, filters.per_page + 1, offset)))


def _page_ids_by_location(query, filters: UserFilters) -> list[int]:
    """The page's ids (and the next one's first) in location order, one location after
    another, each walked in name order on its own index (ix_users_location_name): the same
    rows as `ordered(query, "location")` without sorting every match by a joined name. A
    location before the page is counted only as far as the rows the page skips."""
    descending = filters.sort.startswith("-")
    names = select(Location.id).order_by(Location.name.desc() if descending else Location.name)
    if filters.location:
        names = names.where(Location.id.in_(filters.location))
    # Users without a location come last either way.
    buckets: list[int | None] = [*db.session.scalars(names), None]
    by_name = [User.last_name, User.first_name, User.id]
    if descending:
        by_name = [column.desc() for column in by_name]
    ids_only = query.with_only_columns(User.id).order_by(None)
    skip = (filters.page - 1) * filters.per_page
    wanted = filters.per_page + 1
    found: list[int] = []
    for location_id in buckets:
        if location_id is None:
            here = ids_only.where(User.location_id.is_(None))
        else:
            here = ids_only.where(User.location_id == location_id)
        if skip:
            counted = db.session.scalar(
                select(func.count()).select_from(here.limit(skip).subquery())
            )
            if counted < skip:
                skip -= counted
                continue
        rows = here.order_by(*by_name).offset(skip).limit(wanted - len(found))
        found += db.session.scalars(rows)
        skip = 0
        if len(found) == wanted:
            break
    return found


def _export_links(
    filters: UserFilters, total: int, active: int, capped: bool
) -> list[dict[str, Any]]:
    """ "Export N active users" and, when the view shows more than those, "Export this view
    (M)": each link names the statuses it exports, so the file holds what it says. Past the
    count cap the numbers are lower bounds, so the labels go without them."""

    def url(statuses: list[str]) -> str:
        args = filters.to_args(defaults=True, status=statuses, page="", per_page="", sort="")
        return url_for("users.export_users", **args.to_dict(flat=False))

    active_label = (
        "Export active users"
        if capped
        else f"Export {active:,} active {'user' if active == 1 else 'users'}"
    )
    # Offered only when the view includes active users: its count is then theirs (a view of
    # pending users alone would otherwise offer "Export 0 active users" and a file of others).
    links = (
        [{"label": active_label, "url": url(["active"]), "id": "export-active"}]
        if "active" in filters.status
        else []
    )
    if not links or (filters.status != ["active"] and (capped or total != active)):
        links.append(
            {
                "label": "Export this view" if capped else f"Export this view ({total:,})",
                "url": url(filters.status),
                "id": "export-view",
            }
        )
    return links


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@bp.app_template_filter("day")
def day(moment) -> str:
    """The one date format of the product, e.g. "30 Nov 2026" (strftime's "%d %b %Y" in
    English whatever the locale, and a fifth of its time: a page of users shows 150)."""
    return f"{moment.day:02d} {MONTHS[moment.month - 1]} {moment.year}" if moment else ""


@bp.app_template_global()
def user_training(user_id: int, page: dict | None = None):
    """A row's training counts: from the page's one query, or read for a row re-rendered
    alone after an action."""
    if page is not None:
        return page.get(user_id)
    return training_counts([user_id], utcnow().date()).get(user_id)


def _on_list() -> bool:
    """Does this htmx request come from the Users list page (not a profile)?"""
    current = urlsplit(request.headers.get("HX-Current-URL", ""))
    return app_path(current.path) == app_path(url_for("users.index"))


def row_answer(user: User, next_url: str, shown: bool = True) -> str:
    """A row action's answer to the list at `next_url`: the user's row, or nothing when
    the list's filters no longer match them (the row leaves), and the list's count out
    of band, so "N users match" stays true after the action. Elsewhere (`shown`: the
    caller's own answer) just the row."""
    row = render_template("users/_row.html", user=user, next_url=next_url)
    if not (wants_partial() and _on_list()):
        return row if shown else ""
    args = MultiDict(parse_qsl(urlsplit(next_url).query, keep_blank_values=True))
    filters = UserFilters.from_args(args)
    query = filtered_users(filters)
    if db.session.scalar(query.with_only_columns(User.id).where(User.id == user.id)) is None:
        row = ""
    counted = query.with_only_columns(User.id).order_by(None).limit(COUNT_CAP + 1).subquery()
    total = db.session.scalar(select(func.count()).select_from(counted)) or 0
    label = f"more than {COUNT_CAP:,}" if total > COUNT_CAP else f"{total:,}"
    count = render_template(
        "users/_count.html", total=total, total_label=label, filters=filters, oob=True
    )
    return row + count


class BulkCourse(NamedTuple):
    """A course as the bulk bar offers it (`bulk.bulk_options`' courses)."""

    id: int
    code: str
    title: str
    seats_available: int


def _choices_statement(bulk: bool, rule: scope.ScopeRule | None) -> Select:
    """The panel's locations, groups and courses as (kind, id, name, title, free) rows, in
    one statement; with `bulk`, the bulk bar's courses (with their free seats) and the
    groups the administrator may assign too."""
    kind = literal_column("kind")
    no_text, no_number = cast(null(), String), cast(null(), Integer)
    course = select(literal("course"), Course.id, Course.code, no_text, no_number)
    if bulk:
        free = Course.seats_total - Course.seats_reserved - Course.seats_used
        course = select(literal("course"), Course.id, Course.code, Course.title, free)
    branches = [
        select(
            literal("location").label("kind"),
            Location.id,
            Location.name.label("name"),
            no_text.label("title"),
            no_number.label("free"),
        ).where(scope.visible(Location, rule)),
        select(literal("group"), Group.id, Group.name, no_text, no_number).where(
            scope.visible(Group, rule)
        ),
        course,
    ]
    if bulk:
        branches.append(
            select(literal("bulk_group"), Group.id, Group.name, no_text, no_number).where(
                scope.assignable(rule)
            )
        )
    return union_all(*branches).order_by(kind, literal_column("name"))


# An organisation-wide administrator's statements (the same every request), built once:
# building and keying a new one took more time than running it. Prepared on PostgreSQL:
# its plan does not depend on its parameters (the kinds' names).
_ORGANISATION_CHOICES: dict[bool, Select] = {}


def _filter_choices(bulk: bool = False) -> tuple[list, list, list, dict]:
    """The panel's locations, groups and courses (id, name), in one query; with
    `bulk`, the bulk bar's options too (`bulk.bulk_options`: the groups the administrator
    may assign, every course with its free seats), from the same query."""
    rule = scope.current_rule()
    if rule is None:
        statement = _ORGANISATION_CHOICES.get(bulk)
        if statement is None:
            statement = _ORGANISATION_CHOICES[bulk] = _choices_statement(
                bulk, None
            ).execution_options(**PREPARED)
    else:
        statement = _choices_statement(bulk, rule)
    by_kind: dict[str, list] = {k: [] for k in ("location", "group", "course", "bulk_group")}
    for row in db.session.execute(statement):
        by_kind[row[0]].append(row)
    options = {}
    if bulk:
        options = {
            "groups": by_kind["bulk_group"],
            "courses": [
                BulkCourse(c.id, c.name, c.title, max(int(c.free), 0)) for c in by_kind["course"]
            ],
        }
    return by_kind["location"], by_kind["group"], by_kind["course"], options


def _manager_email(filters: UserFilters, context: dict[str, Any]) -> str:
    """What the Manager field shows: the one manager filtered on, as an email."""
    if len(filters.manager) + len(filters.manager_email) != 1:
        return ""
    if filters.manager_email:
        return filters.manager_email[0]
    named = context["chip_names"].get("manager", {}).get(filters.manager[0])
    return named[1] if named else ""


@bp.route("/managers")
@scoped
def manager_options():
    """The Manager field's suggestions as it is typed in (`manager`): options of its
    datalist, each a manager's email labelled with their name (a page of links without
    htmx)."""
    text = " ".join((request.args.get("manager") or "").split())[:100]
    return render(
        "users/managers.html",
        "users/_manager_options.html",
        managers=manager_suggestions(text),
        text=text,
        limit=MANAGER_SUGGESTIONS,
    )


def _anyone() -> bool:
    return db.session.scalar(select(User.id).where(scope.user_condition()).limit(1)) is not None


@bp.route("")
@scoped
def index():
    """List users (full page, or the table partial to htmx)."""
    filters = UserFilters.from_args(request.args)
    context = list_context(filters)
    form_sync = not wants_partial() or request.headers.get("HX-Trigger") not in FORM_TRIGGERS
    if form_sync:
        *choices, options = _filter_choices(bulk=not wants_partial())
        context["form"] = filter_form(filters, *choices, manager=_manager_email(filters, context))
        if options:
            # The bulk bar's options come with the filter panel's (one query, not three).
            context["bulk_options"] = lambda: options
    # Only the page's own list requests (chips, sort links, pager) re-sync its filter form.
    list_request = request.headers.get("HX-Target") == "users-results"
    oob_filters = form_sync and wants_partial() and list_request
    response = render("users/index.html", "users/_table.html", oob_filters=oob_filters, **context)
    if wants_partial():
        # The address bar shows the corrected state, defaults and empty fields left out.
        response.headers["HX-Push-Url"] = context["list_url"]
    return response
