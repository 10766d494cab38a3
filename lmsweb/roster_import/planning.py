"""Roster import, planning: what each row would do, checked against the database.

Preview and apply share this one pass, so what is applied is re-checked inside the apply
transaction, never taken on trust."""

from __future__ import annotations

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

    @property
    def totals(self) -> dict[str, int]:
        counts = Counter(row[0] for row in self.rows)
        return {a: counts.get(a, 0) for a in ("create", "update", "unchanged", "error")}

    @property
    def seat_shortfall(self) -> list[dict[str, Any]]:
        return [c for c in self.licenses if c["needed"] > c["available"]]

    def preview(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "totals": self.totals,
            "licenses": self.licenses,
            "new_locations": sorted(self.new_locations.values(), key=str.lower),
            "new_groups": sorted(self.new_groups.values(), key=str.lower),
        }


def _postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _chunks(items: list, size: int | None = None):
    """Lookup batches: 900 values on SQLite (one bound parameter each); 20,000 on
    PostgreSQL, where a batch is one array parameter (member_of)."""
    size = size or (20_000 if _postgresql() else 900)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def member_of(column, values: list):
    """`column IN values`. On PostgreSQL `column = ANY(array)`: one parameter, where an IN
    list of 900 made SQLAlchemy render and psycopg parse 900 placeholders per statement
    (a cProfile of a 100,000-row import on PostgreSQL: a third of its CPU)."""
    if _postgresql():
        # lower(...) has no type of its own: its values are text.
        element = String() if isinstance(column.type, NullType) else column.type
        return column == any_(bindparam(None, list(values), type_=ARRAY(element)))
    return column.in_(values)


def _split(text: str) -> list[str]:
    if not _HAS_SEPARATOR(text):
        return [text] if text else []
    return [part for part in _LIST_SPLIT.split(text) if part]


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
    """The administrators an import leaves: read at its first demotion, less the ones its
    earlier rows demote (so a file cannot demote the last administrator either)."""

    def __init__(self) -> None:
        self._ids: set[int] | None = None
        self.demoted: set[int] = set()

    def besides(self, user_id: int) -> int:
        if self._ids is None:
            self._ids = set(
                db.session.scalars(
                    select(User.id).where(User.role == "admin", User.status != "archived")
                )
            )
        return len(self._ids - self.demoted - {user_id})


def _existing_users(emails: list[str], user_ids: list[str]) -> tuple[dict, dict]:
    columns = (
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
    found: dict[int, Existing] = {}
    for part in _chunks(emails):
        for row in db.session.execute(
            select(*columns).where(member_of(func.lower(User.email), part))
        ):
            found[row[0]] = Existing(*row)
    for part in _chunks(user_ids):
        for row in db.session.execute(select(*columns).where(member_of(User.employee_id, part))):
            found[row[0]] = Existing(*row)
    by_email = {row.email: row for row in found.values()}
    by_uid = {row.employee_id: row for row in found.values() if row.employee_id}
    return by_email, by_uid


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


def _name_key(name: str, kind: str, known: dict, new: dict | None, reasons: list[str]) -> str:
    """A location's or group's key; an unknown one goes into `new`, or is a row error."""
    key = name.lower()
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


def _scope_reasons(
    rule, target, role, location_id, group_keys, groups, current_groups
) -> list[str]:
    """Why a scoped administrator's row may not be imported: it names someone outside their
    scope or an administrator, makes an administrator, gives a group outside the scope, or
    leaves the user outside it."""
    if target is not None:
        if not scope.reaches(db.session.get(User, target.id), rule):
            return ["Outside your scope: you do not manage this user."]
        if target.role == "admin":
            return [scope.NOT_ADMINS]
    if role == "admin":
        return ["Only an organisation-wide administrator can make administrators."]
    had = current_groups.get(target.id, set()) if target else set()
    if group_keys is not None:
        wanted = {groups[k] for k in group_keys if k in groups}
        if wanted - had - rule.group_ids:
            return [f"A group outside your scope ({rule.label})."]
    else:
        wanted = _groups_of(target.id) if target is not None else set()
    final_location = (
        location_id if location_id is not None else (target.location_id if target else None)
    )
    if not (
        (final_location is not None and final_location in rule.location_ids)
        or wanted & rule.group_ids
    ):
        return [f"Outside your scope: give a location or group of your scope ({rule.label})."]
    return []


def _groups_of(user_id: int) -> set[int]:
    return set(
        db.session.scalars(select(user_groups.c.group_id).where(user_groups.c.user_id == user_id))
    )


def plan_import(
    data: dict[str, Any], create_missing: bool, actor_id: int | None, progress=None
) -> Plan:
    """Classify every row as create / update / unchanged / error, with its reasons."""
    fields, rows = data["fields"], data["rows"]
    lines = data["lines"]
    col = {name: fields.index(name) for name in fields}

    def value(row, name):
        return row[col[name]] if name in col else ""

    emails = [value(r, "email").lower() for r in rows]
    uids = [value(r, "user_id") for r in rows]
    by_email, by_uid = _existing_users([e for e in set(emails) if e], [u for u in set(uids) if u])
    matched_ids = sorted(
        {row.id for row in by_email.values()} | {row.id for row in by_uid.values()}
    )
    current_groups = (
        _links(user_groups, user_groups.c.group_id, matched_ids) if "groups" in col else {}
    )
    current_courses = _open_courses(matched_ids) if "courses" in col else {}
    managers = managers_by_email({value(r, "manager_email").lower() for r in rows} - {""})
    file_emails = set(emails)
    locations = {k.lower(): i for i, k in db.session.execute(select(Location.id, Location.name))}
    groups = {k.lower(): i for i, k in db.session.execute(select(Group.id, Group.name))}
    courses = {
        code.lower(): CourseRow(cid, code, title, available)
        for cid, code, title, available in db.session.execute(
            select(
                Course.id,
                Course.code,
                Course.title,
                Course.seats_total - Course.seats_reserved - Course.seats_used,
            )
        )
    }
    plan = Plan(rows=[])
    seen_email: dict[str, int] = {}
    seen_uid: dict[str, int] = {}
    seen_target: dict[int, int] = {}
    domains: dict[str, str | None] = {}
    seats: Counter[int] = Counter()
    admins = _AdminsLeft()

    # A scoped administrator's rows must stay in their scope, and create no locations or
    # groups (#17).
    rule = _actor_rule(actor_id)
    create_missing = create_missing and rule is None
    # Unknown locations and groups are created (collected here) or refused.
    new_locations = plan.new_locations if create_missing else None
    new_groups = plan.new_groups if create_missing else None

    for index, row in enumerate(rows):
        if progress and index and index % CHUNK == 0:
            progress(index)
        line = lines[index]
        reasons: list[str] = []
        email, uid = emails[index], uids[index]
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

        location_name = value(row, "location")
        location_key = (
            _name_key(location_name, "location", locations, new_locations, reasons)
            if location_name
            else None
        )
        group_keys = None
        if value(row, "groups"):
            group_keys = [
                _name_key(name, "group", groups, new_groups, reasons)
                for name in _split(value(row, "groups"))
            ]
        course_ids: list[int] = []
        for code in _split(value(row, "courses")):
            course = courses.get(code.lower())
            if course is None:
                reasons.append(f"Unknown course “{code}”.")
            elif course.id not in course_ids:
                course_ids.append(course.id)
        manager_email = value(row, "manager_email").lower()
        if manager_email and manager_email not in managers and manager_email not in file_emails:
            reasons.append(f"Unknown manager “{manager_email}”: no user has this email.")
        elif manager_email and manager_email == email:
            reasons.append("A user cannot be their own manager.")
        role_text = value(row, "role")
        role = ROLES.get(role_text.lower()) if role_text else None
        if role_text and role is None:
            reasons.append(f"Unknown role “{role_text}” (use learner or admin).")
        first, last = value(row, "first_name"), value(row, "last_name")
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
            op = {
                "kind": "create",
                "email": email,
                "employee_id": uid or None,
                "first_name": first,
                "last_name": last,
                "role": role or "learner",
                "location": location_key,
                "groups": group_keys or [],
                "courses": course_ids,
                "manager": manager_email or None,
            }
            plan.creates.append(op)
            seats.update(course_ids)
            plan.rows.append(["create", [], None, []])
            continue

        user_id = target.id
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
        new_courses = [c for c in course_ids if c not in current_courses.get(user_id, set())]
        if new_courses:
            changes["courses"] = new_courses
            seats.update(new_courses)
        if not changes:
            plan.rows.append(["unchanged", [], user_id, []])
            continue
        plan.updates.append({"kind": "update", "id": user_id, **changes})
        plan.rows.append(["update", [], user_id, list(changes)])

    by_id = {c.id: c for c in courses.values()}
    plan.licenses = [
        {"code": c.code, "title": c.title, "needed": n, "available": c.available}
        for c, n in sorted(((by_id[cid], n) for cid, n in seats.items()), key=lambda i: i[0].code)
    ]
    return plan
