"""Roster import, planning: what each row would do, checked against the database.

The preview plans the file once, and keeps with its verdicts a digest of everything in the
database they were read from (the basis: the matched users, their groups and courses, the
locations, groups, courses, managers, administrators and the importer's scope). The
commit reads the basis again inside its transaction: unchanged, the operations are rebuilt
from the file and the preview's verdicts (no row is checked twice); changed, the file is
planned again there. Either way nothing is applied on a stale reading."""

from __future__ import annotations

import functools
import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import ARRAY, String, any_, bindparam, func, select
from sqlalchemy.types import NullType

from .. import lifecycle, scope
from ..extensions import db
from ..models import Course, CourseAssignment, Group, Location, User, user_groups
from .bulk import BATCH, gc_paused, json_values

# Progress is reported every CHUNK rows.
CHUNK = 2000

ROLES = {
    "learner": "learner",
    "user": "learner",
    "student": "learner",
    "admin": "admin",
    "administrator": "admin",
}
_LIST_SPLIT = re.compile(r"\s*[;,|\n]\s*")
_HAS_SEPARATOR = re.compile(r"[;,|\n]").search


@dataclass
class Plan:
    """What an import would do, row by row, and the operations to do it."""

    rows: list[list[Any]]  # [action, reasons, user id, changed fields]
    creates: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    new_locations: dict[str, str] = field(default_factory=dict)  # key -> name as written
    new_groups: dict[str, str] = field(default_factory=dict)
    licenses: list[dict[str, Any]] = field(default_factory=list)
    basis: str = ""

    @property
    def totals(self) -> dict[str, int]:
        counts = Counter(row[0] for row in self.rows)
        return {a: counts.get(a, 0) for a in ("create", "update", "unchanged", "error")}

    @property
    def seat_shortfall(self) -> list[dict[str, Any]]:
        return [c for c in self.licenses if c["needed"] > c["available"]]

    def preview(self) -> dict[str, Any]:
        # The rows last, as in the job's data (Table.as_data).
        return {
            "totals": self.totals,
            "licenses": self.licenses,
            "new_locations": sorted(self.new_locations.values(), key=str.lower),
            "new_groups": sorted(self.new_groups.values(), key=str.lower),
            "basis": self.basis,
            "rows": self.rows,
        }


def _postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _chunks(items: list, size: int = BATCH):
    """Lookup batches; each is one parameter (member_of)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def member_of(column, values: list):
    """`column IN values` with the values as one parameter: on PostgreSQL `column =
    ANY(array)`, on SQLite `column IN (SELECT value FROM json_each(?))`. An IN list of 900
    placeholders made SQLAlchemy render and the driver parse 900 parameters per statement
    (a cProfile of a 100,000-row import: a third of its CPU on PostgreSQL, an eighth on
    SQLite)."""
    if _postgresql():
        # lower(...) has no type of its own: its values are text.
        element = String() if isinstance(column.type, NullType) else column.type
        return column == any_(bindparam(None, list(values), type_=ARRAY(element)))
    return column.in_(json_values(values))


@functools.lru_cache(maxsize=4096)
def _split(text: str) -> tuple[tuple[str, str], ...]:
    """The names in a list cell, each with its key (lower-cased). Cached: a roster repeats
    the same few lists of groups and courses on most of its rows."""
    if not _HAS_SEPARATOR(text):
        return ((text, text.lower()),) if text else ()
    return tuple((part, part.lower()) for part in _LIST_SPLIT.split(text) if part)


class Existing(NamedTuple):
    """A user the file's rows may match, as the planner compares them."""

    id: int
    email: str
    employee_id: str | None
    first_name: str
    last_name: str
    location_id: int | None
    role: str
    status: str
    manager_id: int | None


class CourseRow(NamedTuple):
    id: int
    code: str
    title: str
    available: int


class _AdminsLeft:
    """The administrators an import leaves: those of the basis, less the ones its earlier
    rows demote (so a file cannot demote the last administrator either)."""

    def __init__(self, ids: set[int]) -> None:
        self._ids = ids
        self.demoted: set[int] = set()

    def besides(self, user_id: int) -> int:
        return len(self._ids - self.demoted - {user_id})


_EXISTING = (
    User.id,
    func.lower(User.email),
    User.employee_id,
    User.first_name,
    User.last_name,
    User.location_id,
    User.role,
    User.status,
    User.manager_id,
)


def _existing_users(emails: list[str], user_ids: list[str]) -> tuple[dict, dict]:
    found: dict[int, Existing] = {}
    for part in _chunks(emails):
        for row in db.session.execute(
            select(*_EXISTING).where(member_of(func.lower(User.email), part))
        ):
            found[row[0]] = Existing(*row)
    for part in _chunks(user_ids):
        for row in db.session.execute(select(*_EXISTING).where(member_of(User.employee_id, part))):
            found[row[0]] = Existing(*row)
    by_email = {row.email: row for row in found.values()}
    by_uid = {row.employee_id: row for row in found.values() if row.employee_id}
    return by_email, by_uid


def _users_by_id(user_ids: list[int]) -> dict[int, Existing]:
    found: dict[int, Existing] = {}
    for part in _chunks(user_ids):
        for row in db.session.execute(select(*_EXISTING).where(member_of(User.id, part))):
            found[row[0]] = Existing(*row)
    return found


def managers_by_email(emails: set[str]) -> dict[str, int]:
    """Lower-cased email → id of the (unarchived) users named as managers."""
    found: dict[str, int] = {}
    for part in _chunks(sorted(emails)):
        found.update(
            (email, user_id)
            for user_id, email in db.session.execute(
                select(User.id, func.lower(User.email)).where(
                    member_of(func.lower(User.email), part), User.status != "archived"
                )
            )
        )
    return found


def _links(table, column, user_ids: list[int]) -> dict[int, set[int]]:
    links: dict[int, set[int]] = {}
    for part in _chunks(user_ids):
        for user_id, other in db.session.execute(
            select(table.c.user_id, column).where(member_of(table.c.user_id, part))
        ):
            links.setdefault(user_id, set()).add(other)
    return links


def _open_courses(user_ids: list[int]) -> dict[int, set[int]]:
    links: dict[int, set[int]] = {}
    for part in _chunks(user_ids):
        for user_id, course_id in db.session.execute(
            select(CourseAssignment.user_id, CourseAssignment.course_id).where(
                member_of(CourseAssignment.user_id, part), CourseAssignment.archived_at.is_(None)
            )
        ):
            links.setdefault(user_id, set()).add(course_id)
    return links


# A plain dot-atom local part: always valid, so only its domain needs the full check.
_SIMPLE_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def _email_problem(email: str, domains: dict[str, str | None]) -> str | None:
    """None when valid, else the reason. email-validator decides; its verdict on a domain
    is reused for every simple address there (100,000 full checks cost seconds)."""
    local, _, domain = email.rpartition("@")
    if local and len(local) <= 64 and len(email) <= 254 and _SIMPLE_LOCAL.fullmatch(local):
        if domain not in domains:
            domains[domain] = _full_check(f"a@{domain}")
        return domains[domain]
    return _full_check(email)


def _full_check(email: str) -> str | None:
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        return str(exc)
    return None


def _name_key(
    name: str, key: str, kind: str, known: dict, new: dict | None, reasons: list[str]
) -> str:
    """A location's or group's key; an unknown one goes into `new`, or is a row error."""
    if key not in known:
        if new is not None:
            new.setdefault(key, name)
        else:
            reasons.append(f"Unknown {kind} “{name}”.")
    return key


def _actor_rule(actor_id: int | None) -> scope.ScopeRule | None:
    scope_id = (
        db.session.scalar(select(User.scope_id).where(User.id == actor_id)) if actor_id else None
    )
    return scope.rule_for(scope_id)


def _reaches(target: Existing, rule: scope.ScopeRule, groups_of: dict[int, set[int]]) -> bool:
    """scope.reaches, from what the plan has read."""
    if target.location_id is not None and target.location_id in rule.location_ids:
        return True
    return bool(groups_of.get(target.id, set()) & rule.group_ids)


def _scope_reasons(rule, target, role, location_id, group_keys, groups, groups_of) -> list[str]:
    """Why a scoped administrator's row may not be imported: it names someone outside their
    scope or an administrator, makes an administrator, gives a group outside the scope, or
    leaves the user outside it."""
    if target is not None:
        if not _reaches(target, rule, groups_of):
            return ["Outside your scope: you do not manage this user."]
        if target.role == "admin":
            return [scope.NOT_ADMINS]
    if role == "admin":
        return ["Only an organisation-wide administrator can make administrators."]
    had = groups_of.get(target.id, set()) if target else set()
    if group_keys is not None:
        wanted = {groups[k] for k in group_keys if k in groups}
        if wanted - had - rule.group_ids:
            return [f"A group outside your scope ({rule.label})."]
    else:
        wanted = had
    final_location = (
        location_id if location_id is not None else (target.location_id if target else None)
    )
    if not (
        (final_location is not None and final_location in rule.location_ids)
        or wanted & rule.group_ids
    ):
        return [f"Outside your scope: give a location or group of your scope ({rule.label})."]
    return []


class Cells(NamedTuple):
    """One row's cells by meaning ('' where the file has no such column); the email and
    the manager's email lower-cased."""

    email: str
    uid: str
    first: str
    last: str
    location: str
    groups: str
    courses: str
    manager: str
    role: str


_CELL_FIELDS = (
    "email",
    "user_id",
    "first_name",
    "last_name",
    "location",
    "groups",
    "courses",
    "manager_email",
    "role",
)


def _cells(data: dict[str, Any]) -> list[Cells]:
    fields = data["fields"]
    at = [fields.index(name) if name in fields else -1 for name in _CELL_FIELDS]
    cells = []
    for row in data["rows"]:
        values = [row[i] if i >= 0 else "" for i in at]
        values[0] = values[0].lower()
        values[7] = values[7].lower()
        cells.append(Cells(*values))
    return cells


@dataclass
class _Basis:
    """What the verdicts of a plan are read from in the database."""

    users: dict[int, Existing]  # the users rows were matched to
    locations: dict[str, int]  # lower-cased name -> id
    groups: dict[str, int]
    courses: dict[str, CourseRow]  # lower-cased code -> course
    managers: dict[str, int]  # the file's managers: lower-cased email -> id
    rule: scope.ScopeRule | None
    admins: set[int]  # unarchived administrators (read when the file has roles)
    groups_of: dict[int, set[int]]  # the matched users' groups (file with groups, or scoped)
    courses_of: dict[int, set[int]]  # their open courses (file with courses)

    def digest(self, targets, actor_id: int | None, create_missing: bool) -> str:
        """A digest of the basis as far as it decides the verdicts on rows matched to
        `targets` (a changed name or seat count of a course decides none of them)."""
        rule = self.rule
        parts = [
            repr((1, actor_id, create_missing)),
            repr(sorted(self.locations.items())),
            repr(sorted(self.groups.items())),
            repr(sorted((course.id, code) for code, course in self.courses.items())),
            repr(sorted(self.managers.items())),
            repr(rule and (sorted(rule.location_ids), sorted(rule.group_ids))),
            repr(sorted(self.admins)),
        ]
        for user_id in sorted(targets):
            parts.append(
                repr(
                    (
                        tuple(self.users[user_id]),
                        sorted(self.groups_of.get(user_id, ())),
                        sorted(self.courses_of.get(user_id, ())),
                    )
                )
            )
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _read_basis(
    cells: list[Cells], fields, users: dict[int, Existing], actor_id: int | None
) -> _Basis:
    """Everything but the users (read by email and user ID to plan, by id to check)."""
    rule = _actor_rule(actor_id)
    matched = sorted(users)
    return _Basis(
        users=users,
        locations={k.lower(): i for i, k in db.session.execute(select(Location.id, Location.name))},
        groups={k.lower(): i for i, k in db.session.execute(select(Group.id, Group.name))},
        courses={
            code.lower(): CourseRow(cid, code, title, available)
            for cid, code, title, available in db.session.execute(
                select(
                    Course.id,
                    Course.code,
                    Course.title,
                    Course.seats_total - Course.seats_reserved - Course.seats_used,
                )
            )
        },
        managers=managers_by_email({c.manager for c in cells} - {""}),
        rule=rule,
        admins=set(
            db.session.scalars(
                select(User.id).where(User.role == "admin", User.status != "archived")
            )
        )
        if "role" in fields
        else set(),
        groups_of=_links(user_groups, user_groups.c.group_id, matched)
        if "groups" in fields or rule is not None
        else {},
        courses_of=_open_courses(matched) if "courses" in fields else {},
    )


def _targets(rows: list[list[Any]]) -> list[int]:
    """The users whose rows are applied or left unchanged: what the verdicts rest on."""
    return sorted({row[2] for row in rows if row[0] in ("update", "unchanged")})


def _licenses(basis: _Basis, seats: Counter) -> list[dict[str, Any]]:
    by_id = {c.id: c for c in basis.courses.values()}
    return [
        {"code": c.code, "title": c.title, "needed": n, "available": c.available}
        for c, n in sorted(((by_id[cid], n) for cid, n in seats.items()), key=lambda i: i[0].code)
    ]


def _keys_once(basis: _Basis, plan: Plan, create_missing: bool):
    """`_keys` for one plan, each pair of location and groups cells worked out once (a
    roster repeats a few pairs on most of its rows): the keys, with the reasons they give."""
    known: dict[tuple[str, str], tuple] = {}

    def keys(cells: Cells, reasons: list[str]):
        pair = (cells.location, cells.groups)
        if pair not in known:
            given: list[str] = []
            location_key, group_keys = _keys(cells, basis, plan, create_missing, given)
            known[pair] = (location_key, group_keys, given)
        location_key, group_keys, given = known[pair]
        reasons += given
        # A list of its own for each row: the plan's operations hold it.
        return location_key, None if group_keys is None else list(group_keys)

    return keys


def _keys(cells: Cells, basis: _Basis, plan: Plan, create_missing: bool, reasons: list[str]):
    """The row's location key and group keys (None: no groups given); unknown ones are
    collected as new (create_missing) or are row errors."""
    new_locations = plan.new_locations if create_missing else None
    new_groups = plan.new_groups if create_missing else None
    location_key = (
        _name_key(
            cells.location,
            cells.location.lower(),
            "location",
            basis.locations,
            new_locations,
            reasons,
        )
        if cells.location
        else None
    )
    group_keys = None
    if cells.groups:
        group_keys = [
            _name_key(name, key, "group", basis.groups, new_groups, reasons)
            for name, key in _split(cells.groups)
        ]
    return location_key, group_keys


def _create(cells: Cells, role, location_key, group_keys, course_ids) -> dict[str, Any]:
    return {
        "kind": "create",
        "email": cells.email,
        "employee_id": cells.uid or None,
        "first_name": cells.first,
        "last_name": cells.last,
        "role": role or "learner",
        "location": location_key,
        "groups": group_keys or [],
        "courses": course_ids,
        "manager": cells.manager or None,
    }


def _changed(cells: Cells, role, location_key, group_keys) -> dict[str, Any]:
    """What an update sets each field it changes to."""
    return {
        "email": cells.email,
        "employee_id": cells.uid,
        "first_name": cells.first,
        "last_name": cells.last,
        "location": location_key,
        "role": role,
        "manager": cells.manager,
        "groups": group_keys,
    }


def _role(cells: Cells) -> str | None:
    return ROLES.get(cells.role.lower()) if cells.role else None


def _course_ids(cells: Cells, basis: _Basis, reasons: list[str]) -> list[int]:
    course_ids: list[int] = []
    for code, key in _split(cells.courses):
        course = basis.courses.get(key)
        if course is None:
            reasons.append(f"Unknown course “{code}”.")
        elif course.id not in course_ids:
            course_ids.append(course.id)
    return course_ids


@gc_paused()
def plan_import(
    data: dict[str, Any], create_missing: bool, actor_id: int | None, progress=None
) -> Plan:
    """Classify every row as create / update / unchanged / error, with its reasons."""
    fields, lines = data["fields"], data["lines"]
    cells_of = _cells(data)
    by_email, by_uid = _existing_users(
        [e for e in {c.email for c in cells_of} if e], [u for u in {c.uid for c in cells_of} if u]
    )
    users = {row.id: row for row in (*by_email.values(), *by_uid.values())}
    basis = _read_basis(cells_of, fields, users, actor_id)
    locations, groups, managers = basis.locations, basis.groups, basis.managers
    current_groups, current_courses = basis.groups_of, basis.courses_of
    file_emails = {c.email for c in cells_of}
    plan = Plan(rows=[])
    seen_email: dict[str, int] = {}
    seen_uid: dict[str, int] = {}
    seen_target: dict[int, int] = {}
    domains: dict[str, str | None] = {}
    seats: Counter[int] = Counter()
    admins = _AdminsLeft(basis.admins)

    # A scoped administrator's rows must stay in their scope, and create no locations or
    # groups (#17).
    rule = basis.rule
    create_missing = create_missing and rule is None
    keys = _keys_once(basis, plan, create_missing)

    for index, cells in enumerate(cells_of):
        if progress and index and index % CHUNK == 0:
            progress(index)
        line = lines[index]
        reasons: list[str] = []
        email, uid = cells.email, cells.uid
        if not email:
            reasons.append("Missing email.")
        elif (problem := _email_problem(email, domains)) is not None:
            reasons.append(f"Invalid email “{email}”: {problem}")
        elif email in seen_email:
            reasons.append(f"Duplicate email: also on row {seen_email[email]} of this file.")
        if email:
            seen_email.setdefault(email, line)
        if uid and uid in seen_uid:
            reasons.append(f"Duplicate user ID {uid}: also on row {seen_uid[uid]} of this file.")
        if uid:
            seen_uid.setdefault(uid, line)
        existing = by_email.get(email) if email else None
        owner = by_uid.get(uid) if uid else None
        if existing and owner and existing[0] != owner[0]:
            reasons.append(f"User ID {uid} belongs to another user ({owner[1]}).")
        target = existing or owner
        if target is not None and not reasons:
            if target.id in seen_target:
                reasons.append(
                    f"Matches the same user ({target.email}) as row {seen_target[target.id]}."
                )
            seen_target.setdefault(target.id, line)

        location_key, group_keys = keys(cells, reasons)
        course_ids = _course_ids(cells, basis, reasons)
        manager_email = cells.manager
        if manager_email and manager_email not in managers and manager_email not in file_emails:
            reasons.append(f"Unknown manager “{manager_email}”: no user has this email.")
        elif manager_email and manager_email == email:
            reasons.append("A user cannot be their own manager.")
        role = _role(cells)
        if cells.role and role is None:
            reasons.append(f"Unknown role “{cells.role}” (use learner or admin).")
        first, last = cells.first, cells.last
        if len(first) > 100 or len(last) > 100:
            reasons.append("A name is longer than 100 characters.")
        if len(uid) > 64:
            reasons.append("The user ID is longer than 64 characters.")

        if target is None:
            if not first:
                reasons.append("Missing first name (needed for a new user).")
            if not last:
                reasons.append("Missing last name (needed for a new user).")
        else:
            if target.status == "archived" and course_ids:
                new_courses = set(course_ids) - current_courses.get(target.id, set())
                if new_courses:
                    reasons.append("The user is archived: restore them before assigning courses.")
            if role and (
                refusal := lifecycle.role_change_refusal(
                    target.id,
                    target.role,
                    role,
                    actor_id,
                    lambda user_id=target.id: admins.besides(user_id),
                )
            ):
                reasons.append(refusal)
        if rule is not None and not reasons:
            reasons += _scope_reasons(
                rule, target, role, locations.get(location_key or ""), group_keys, groups,
                current_groups,
            )  # fmt: skip
        if reasons:
            plan.rows.append(["error", reasons, target.id if target else None, []])
            continue

        if target is None:
            plan.creates.append(_create(cells, role, location_key, group_keys, course_ids))
            if course_ids:
                seats.update(course_ids)
            plan.rows.append(["create", [], None, []])
            continue

        user_id = target.id
        values = _changed(cells, role, location_key, group_keys)
        changes: dict[str, Any] = {}
        if email != target.email:
            changes["email"] = email
        if uid and uid != target.employee_id:
            changes["employee_id"] = uid
        if first and first != target.first_name:
            changes["first_name"] = first
        if last and last != target.last_name:
            changes["last_name"] = last
        if location_key is not None and locations.get(location_key) != target.location_id:
            changes["location"] = location_key
        if role and role != target.role:
            changes["role"] = role
            if target.role == "admin":
                admins.demoted.add(user_id)
        if manager_email and managers.get(manager_email, -1) != target.manager_id:
            changes["manager"] = manager_email
        if group_keys is not None:
            wanted = {groups.get(k, k) for k in group_keys}
            if wanted != current_groups.get(user_id, set()):
                changes["groups"] = group_keys
        changes = {name: values[name] for name in changes}
        new_courses = [c for c in course_ids if c not in current_courses.get(user_id, set())]
        if new_courses:
            changes["courses"] = new_courses
            seats.update(new_courses)
        if not changes:
            plan.rows.append(["unchanged", [], user_id, []])
            continue
        plan.updates.append({"kind": "update", "id": user_id, **changes})
        plan.rows.append(["update", [], user_id, list(changes)])

    plan.licenses = _licenses(basis, seats)
    plan.basis = basis.digest(_targets(plan.rows), actor_id, create_missing)
    return plan


def replan(data: dict[str, Any], preview: dict[str, Any], create_missing: bool, actor_id):
    """The plan of a previewed file rebuilt from the preview's verdicts, or None when the
    database has changed since in anything they rest on (the caller plans again). Costs a
    read of the matched users by id and the small tables; no row is checked again.

    A user created since with the email or user ID of a row to create is not seen here:
    the unique indexes refuse the insert, and the caller plans again."""
    rows = preview.get("rows")
    if not preview.get("basis") or rows is None or len(rows) != len(data["rows"]):
        return None
    cells_of = _cells(data)
    targets = _targets(rows)
    basis = _read_basis(cells_of, data["fields"], _users_by_id(targets), actor_id)
    create_missing = create_missing and basis.rule is None
    if len(basis.users) != len(targets) or (
        basis.digest(targets, actor_id, create_missing) != preview["basis"]
    ):
        return None
    plan = Plan(rows=rows, basis=preview["basis"])
    seats: Counter[int] = Counter()
    keys = _keys_once(basis, plan, create_missing)
    for cells, (action, _reasons, user_id, changed) in zip(cells_of, rows, strict=True):
        if not create_missing and action not in ("create", "update"):
            continue
        # As the plan did for every row: unknown names are collected as new.
        location_key, group_keys = keys(cells, [])
        if action == "create":
            course_ids = _course_ids(cells, basis, [])
            plan.creates.append(_create(cells, _role(cells), location_key, group_keys, course_ids))
            if course_ids:
                seats.update(course_ids)
        elif action == "update":
            values = _changed(cells, _role(cells), location_key, group_keys)
            op = {"kind": "update", "id": user_id}
            for name in changed:
                if name == "courses":
                    had = basis.courses_of.get(user_id, set())
                    op[name] = [c for c in _course_ids(cells, basis, []) if c not in had]
                    seats.update(op[name])
                else:
                    op[name] = values[name]
            plan.updates.append(op)
    plan.licenses = _licenses(basis, seats)
    return plan
