"""Roster import: read a spreadsheet safely, preview what it would do, apply it at once.

Reading: Excel formats through python-calamine (a Rust reader: no XML entity expansion),
after checking the zip container of .xlsx/.ods so a zip bomb is refused before parsing;
CSV with BOM, delimiter and encoding detection. Cells become text (user IDs keep their
leading zeros; calamine's `1.0` becomes `1`, its `''` a blank).

Preview (`classify`) and apply (`apply`) share one planning pass, so what is applied is
re-checked against the database inside the apply transaction, never taken on trust.
"""

from __future__ import annotations

import csv
import io
import re
import threading
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import Flask, current_app, has_app_context
from sqlalchemy import delete, func, insert, select, update

from . import audit, sheet_reader
from .extensions import db
from .licensing import take_seats
from .models import Course, CourseAssignment, Group, ImportJob, Location, User, user_groups, utcnow

EXTENSIONS = (".xlsx", ".xls", ".ods", ".csv")
# Zip containers (.xlsx, .ods) are checked before any parsing.
MAX_ZIP_MEMBERS = 1000
ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Above this many rows, preview and apply run as a background job.
BACKGROUND_ROWS = 2000
CHUNK = 2000

# Field -> accepted header names, compared without case, spaces or punctuation.
FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("email", "e-mail", "email address", "e-mail address", "mail", "work email"),
    "first_name": ("first name", "firstname", "given name", "forename", "first"),
    "last_name": ("last name", "lastname", "surname", "family name", "last"),
    "user_id": (
        "user id",
        "employee id",
        "employee number",
        "employee no",
        "staff id",
        "staff number",
        "personnel number",
        "id",
    ),
    "location": ("location", "site", "office", "branch"),
    "groups": ("groups", "group", "teams", "team", "departments", "department"),
    "role": ("role",),
    "courses": ("courses", "course", "course codes", "course code"),
}
TEMPLATE_HEADERS = ("Email", "First name", "Last name", "User ID", "Location", "Groups", "Role")
ROLES = {
    "learner": "learner",
    "user": "learner",
    "student": "learner",
    "admin": "admin",
    "administrator": "admin",
}
_LIST_SPLIT = re.compile(r"\s*[;,|\n]\s*")
_HAS_SEPARATOR = re.compile(r"[;,|\n]").search


class ImportFileError(Exception):
    """The file cannot be imported at all; the message says why."""


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


_ALIASES = {_key(alias): name for name, aliases in FIELDS.items() for alias in aliases}


# --- reading -----------------------------------------------------------------------------


def check_zip(data: bytes, max_members: int = MAX_ZIP_MEMBERS, max_bytes: int | None = None):
    """Refuse a zip container with too many members or too much data once inflated.

    Declared sizes can lie, so members are inflated (and discarded) while counting."""
    if max_bytes is None:
        max_bytes = _limits(0).uncompressed_bytes
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportFileError("The file is not a valid spreadsheet (a damaged zip).") from exc
    with archive:
        members = archive.infolist()
        if len(members) > max_members:
            raise ImportFileError(
                f"The workbook has {len(members)} parts; at most {max_members} are accepted."
            )
        declared = sum(m.file_size for m in members)
        too_big = "The workbook expands to more than {} MB; it is refused as unsafe."
        limit_mb = max_bytes // (1024 * 1024)
        if declared > max_bytes:
            raise ImportFileError(too_big.format(limit_mb))
        total = 0
        try:
            for member in members:
                with archive.open(member) as stream:
                    while chunk := stream.read(1 << 20):
                        total += len(chunk)
                        if total > max_bytes:
                            raise ImportFileError(too_big.format(limit_mb))
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise ImportFileError("The file is not a valid spreadsheet (a damaged zip).") from exc


def cell_text(value: Any) -> str:
    """A cell as text: integral floats without `.0`, dates as ISO, blanks as ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return (
            value.date().isoformat()
            if value.time() == datetime.min.time()
            else value.isoformat(" ")
        )
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def _limits(max_rows: int) -> sheet_reader.Limits:
    config = current_app.config if has_app_context() else {}
    return sheet_reader.Limits.from_config(config, max_rows)


def _read_excel(data: bytes, extension: str, max_rows: int) -> list[tuple[int, list[str]]]:
    """The non-empty rows as (row number, cells); .xlsx through the bounded reader."""
    if extension in (".xlsx", ".ods"):
        if not data.startswith(ZIP_MAGIC):
            raise ImportFileError(
                f"The file is not a valid {extension} workbook (was another file renamed?)."
            )
        check_zip(data)
        if extension == ".xlsx":
            try:
                streamed = sheet_reader.check_xlsx(io.BytesIO(data), _limits(max_rows))
            except sheet_reader.SheetError as exc:
                raise ImportFileError(str(exc)) from exc
            if streamed is not None:
                return streamed
    elif not data.startswith(OLE_MAGIC):
        raise ImportFileError("The file is not a valid .xls workbook (was another file renamed?).")
    from python_calamine import CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
        if not workbook.sheet_names:
            return []
        rows = workbook.get_sheet_by_index(0).to_python(skip_empty_area=False)
    except Exception as exc:  # calamine raises its own error types for any damage
        raise ImportFileError(f"The workbook could not be read: {exc}") from exc
    texts = ([cell_text(v) for v in row] for row in rows)
    return [(n, row) for n, row in enumerate(texts, start=1) if any(row)]


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data[:4096]:
        raise ImportFileError("The file is not a text CSV file.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # cp1252 leaves five bytes undefined; latin-1 maps them rather than failing.
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            return data.decode("latin-1")


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the header line most: `,`, `;`, tab or `|`."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _read_csv(data: bytes) -> list[list[str]]:
    if data.startswith((ZIP_MAGIC, OLE_MAGIC)):
        raise ImportFileError("The file is a workbook, not CSV: save it with its own extension.")
    text = decode_text(data)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text))
    try:
        return [[cell.strip() for cell in row] for row in reader]
    except csv.Error as exc:
        raise ImportFileError(f"The CSV file could not be read: {exc}") from exc


@dataclass
class Table:
    """The rows of an upload, cells as text, aligned to `fields` (recognised columns)."""

    fields: list[str]
    rows: list[list[str]]
    lines: list[int]  # the spreadsheet row number of each row (the header is row 1)
    ignored: list[str] = field(default_factory=list)

    def as_data(self) -> dict[str, Any]:
        return {
            "fields": self.fields,
            "rows": self.rows,
            "lines": self.lines,
            "ignored": self.ignored,
        }


def read_table(filename: str, data: bytes, max_rows: int) -> Table:
    """Read an upload into a Table, or raise ImportFileError with a clear reason."""
    extension = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension not in EXTENSIONS:
        raise ImportFileError("Upload an .xlsx, .xls, .ods or .csv file.")
    if not data:
        raise ImportFileError("The file is empty.")
    if extension == ".csv":
        raw = _read_csv(data)
        numbered = [(n, row) for n, row in enumerate(raw, start=1) if any(c for c in row)]
    else:
        numbered = _read_excel(data, extension, max_rows)
    try:
        sheet_reader.check_cells(numbered, _limits(max_rows))
    except sheet_reader.SheetError as exc:
        raise ImportFileError(str(exc)) from exc
    if not numbered:
        raise ImportFileError("The file is empty.")
    header_line, header = numbered[0]
    columns: dict[str, int] = {}
    ignored = []
    for index, name in enumerate(header):
        target = _ALIASES.get(_key(name))
        if target and target not in columns:
            columns[target] = index
        elif name:
            ignored.append(name)
    if "email" not in columns:
        found = ", ".join(f"“{h}”" for h in header if h) or "none"
        raise ImportFileError(f"No email column was found in the first row (columns: {found}).")
    body = numbered[1:]
    if not body:
        raise ImportFileError("The file has a header row but no users.")
    if len(body) > max_rows:
        raise ImportFileError(
            f"The file has {len(body):,} rows; at most {max_rows:,} are accepted."
        )
    fields = list(columns)
    indexes = [columns[f] for f in fields]
    rows = [[row[i] if i < len(row) else "" for i in indexes] for _, row in body]
    return Table(fields=fields, rows=rows, lines=[n for n, _ in body], ignored=ignored)


# --- planning ----------------------------------------------------------------------------


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


def _chunks(items: list, size: int = 900):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _split(text: str) -> list[str]:
    if not _HAS_SEPARATOR(text):
        return [text] if text else []
    return [part for part in _LIST_SPLIT.split(text) if part]


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
    )
    found: dict[int, tuple] = {}
    for part in _chunks(emails):
        for row in db.session.execute(select(*columns).where(func.lower(User.email).in_(part))):
            found[row[0]] = tuple(row)
    for part in _chunks(user_ids):
        for row in db.session.execute(select(*columns).where(User.employee_id.in_(part))):
            found[row[0]] = tuple(row)
    by_email = {row[1]: row for row in found.values()}
    by_uid = {row[2]: row for row in found.values() if row[2]}
    return by_email, by_uid


def _links(table, column, user_ids: list[int]) -> dict[int, set[int]]:
    links: dict[int, set[int]] = {}
    for part in _chunks(user_ids):
        for user_id, other in db.session.execute(
            select(table.c.user_id, column).where(table.c.user_id.in_(part))
        ):
            links.setdefault(user_id, set()).add(other)
    return links


def _open_courses(user_ids: list[int]) -> dict[int, set[int]]:
    links: dict[int, set[int]] = {}
    for part in _chunks(user_ids):
        for user_id, course_id in db.session.execute(
            select(CourseAssignment.user_id, CourseAssignment.course_id).where(
                CourseAssignment.user_id.in_(part), CourseAssignment.archived_at.is_(None)
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
        {row[0] for row in by_email.values()} | {row[0] for row in by_uid.values()}
    )
    current_groups = (
        _links(user_groups, user_groups.c.group_id, matched_ids) if "groups" in col else {}
    )
    current_courses = _open_courses(matched_ids) if "courses" in col else {}
    locations = {k.lower(): i for i, k in db.session.execute(select(Location.id, Location.name))}
    groups = {k.lower(): i for i, k in db.session.execute(select(Group.id, Group.name))}
    courses = {
        code.lower(): (cid, code, title, available)
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
            if target[0] in seen_target:
                reasons.append(
                    f"Matches the same user ({target[1]}) as row {seen_target[target[0]]}."
                )
            seen_target.setdefault(target[0], line)

        location_key = None
        location_name = value(row, "location")
        if location_name:
            location_key = location_name.lower()
            if location_key not in locations:
                if create_missing:
                    plan.new_locations.setdefault(location_key, location_name)
                else:
                    reasons.append(f"Unknown location “{location_name}”.")
        group_keys = None
        if value(row, "groups"):
            group_keys = []
            for name in _split(value(row, "groups")):
                key = name.lower()
                if key not in groups:
                    if create_missing:
                        plan.new_groups.setdefault(key, name)
                    else:
                        reasons.append(f"Unknown group “{name}”.")
                group_keys.append(key)
        course_ids: list[int] = []
        for code in _split(value(row, "courses")):
            course = courses.get(code.lower())
            if course is None:
                reasons.append(f"Unknown course “{code}”.")
            elif course[0] not in course_ids:
                course_ids.append(course[0])
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
            if target[7] == "archived" and course_ids:
                new_courses = set(course_ids) - current_courses.get(target[0], set())
                if new_courses:
                    reasons.append("The user is archived: restore them before assigning courses.")
            if role and role != target[6] and target[0] == actor_id:
                reasons.append("You cannot change your own role.")
        if reasons:
            plan.rows.append(["error", reasons, target[0] if target else None, []])
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
            }
            plan.creates.append(op)
            seats.update(course_ids)
            plan.rows.append(["create", [], None, []])
            continue

        user_id = target[0]
        changes: dict[str, Any] = {}
        if email != target[1]:
            changes["email"] = email
        if uid and uid != target[2]:
            changes["employee_id"] = uid
        if first and first != target[3]:
            changes["first_name"] = first
        if last and last != target[4]:
            changes["last_name"] = last
        if location_key is not None and locations.get(location_key) != target[5]:
            changes["location"] = location_key
        if role and role != target[6]:
            changes["role"] = role
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

    by_id = {c[0]: c for c in courses.values()}
    plan.licenses = [
        {"code": by_id[cid][1], "title": by_id[cid][2], "needed": n, "available": by_id[cid][3]}
        for cid, n in sorted(seats.items(), key=lambda item: by_id[item[0]][1])
    ]
    return plan


# --- applying ----------------------------------------------------------------------------


def _insert_rows(table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows in the session's transaction: executemany on SQLite (fast there);
    COPY on PostgreSQL, where psycopg's executemany sends one statement per row."""
    if not rows:
        return
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        db.session.execute(insert(table), rows)
        return
    # COPY knows no Python-side defaults: fill them in as an INSERT would.
    names = list(rows[0])
    defaults = {
        c.name: c.default.arg
        for c in table.columns
        if c.name not in names and c.default is not None and c.default.is_scalar
    }
    names += list(defaults)
    columns = ", ".join(f'"{name}"' for name in names)
    raw = connection.connection.dbapi_connection
    with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([row[n] if n in row else defaults[n] for n in names])


def _ensure_named(model, wanted: dict[str, str]) -> dict[str, int]:
    existing = {n.lower(): i for i, n in db.session.execute(select(model.id, model.name))}
    missing = [
        {"name": name, "created_at": utcnow()}
        for key, name in wanted.items()
        if key not in existing
    ]
    if missing:
        db.session.execute(insert(model), missing)
        existing = {n.lower(): i for i, n in db.session.execute(select(model.id, model.name))}
    return existing


def apply(job: ImportJob, actor: User | None) -> dict[str, Any]:
    """Apply the valid rows of `job` (re-planned now) in the caller's transaction.

    Raises NoSeatsAvailable (nothing changed) when a course lacks seats."""
    plan = plan_import(job.data, job.create_missing, actor.id if actor else None)
    if plan.seat_shortfall:
        from .licensing import NoSeatsAvailable

        short = plan.seat_shortfall[0]
        raise NoSeatsAvailable(
            f"No licenses available for {short['code']}: needs {short['needed']}, "
            f"{short['available']} available. Nothing was imported."
        )
    locations = _ensure_named(Location, plan.new_locations)
    groups = _ensure_named(Group, plan.new_groups)
    now = utcnow()
    created_ids: list[int] = []
    if plan.creates:
        values = [
            {
                "email": op["email"],
                "employee_id": op["employee_id"],
                "first_name": op["first_name"],
                "last_name": op["last_name"],
                "role": op["role"],
                "status": "pending",
                "location_id": locations.get(op["location"]) if op["location"] else None,
                "session_version": 1,
                "created_at": now,
            }
            for op in plan.creates
        ]
        # Core executemany of the users table (RETURNING in parameter order would make
        # SQLite insert row by row); the new ids are then read back by email.
        _insert_rows(User.__table__, values)
        ids: dict[str, int] = {}
        for part in _chunks([v["email"] for v in values]):
            ids.update(
                (email, user_id)
                for user_id, email in db.session.execute(
                    select(User.id, func.lower(User.email)).where(func.lower(User.email).in_(part))
                )
            )
        created_ids = [ids[v["email"]] for v in values]
    links: list[dict[str, int]] = []
    assignments: list[dict[str, Any]] = []
    course_days = dict(db.session.execute(select(Course.id, Course.default_due_days)).all())
    today = date.today()

    def assign_rows(user_id, course_ids):
        for course_id in course_ids:
            assignments.append(
                {
                    "user_id": user_id,
                    "course_id": course_id,
                    "assigned_by_id": actor.id if actor else None,
                    "assigned_at": now,
                    "due_date": today + timedelta(days=course_days[course_id]),
                    "state": "assigned",
                }
            )

    for user_id, op in zip(created_ids, plan.creates, strict=True):
        links.extend(
            {"user_id": user_id, "group_id": groups[k]} for k in dict.fromkeys(op["groups"])
        )
        assign_rows(user_id, op["courses"])

    regroup: list[int] = []
    role_changed: list[int] = []
    field_updates: list[dict[str, Any]] = []
    for op in plan.updates:
        values = {
            k: op[k] for k in ("email", "employee_id", "first_name", "last_name", "role") if k in op
        }
        if "location" in op:
            values["location_id"] = locations[op["location"]]
        if values:
            field_updates.append({"id": op["id"], **values})
        if "role" in op:
            role_changed.append(op["id"])
        if "groups" in op:
            regroup.append(op["id"])
            links.extend(
                {"user_id": op["id"], "group_id": groups[k]} for k in dict.fromkeys(op["groups"])
            )
        assign_rows(op["id"], op.get("courses", []))
    # Grouped by the columns they set: one executemany per shape.
    shapes: dict[tuple, list] = {}
    for values in field_updates:
        shapes.setdefault(tuple(sorted(values)), []).append(values)
    for batch in shapes.values():
        db.session.execute(update(User), batch)
    for part in _chunks(role_changed):
        db.session.execute(
            update(User)
            .where(User.id.in_(part))
            .values(session_version=User.session_version + 1)
            .execution_options(synchronize_session=False)
        )
    for part in _chunks(regroup):
        db.session.execute(delete(user_groups).where(user_groups.c.user_id.in_(part)))
    _insert_rows(user_groups, links)
    if assignments:
        needed = Counter(a["course_id"] for a in assignments)
        for course in db.session.scalars(select(Course).where(Course.id.in_(list(needed)))):
            take_seats(course, needed[course.id])
        _insert_rows(CourseAssignment.__table__, assignments)

    totals = plan.totals
    skipped = [i for i, row in enumerate(plan.rows) if row[0] == "error"]
    result = {
        "created": totals["create"],
        "updated": totals["update"],
        "unchanged": totals["unchanged"],
        "skipped": len(skipped),
        "assigned": len(assignments),
        "new_locations": sorted(plan.new_locations.values()),
        "new_groups": sorted(plan.new_groups.values()),
    }
    job.preview = plan.preview()
    job.result = result
    job.status = "done"
    job.processed_rows = job.total_rows
    job.finished_at = job.updated_at = utcnow()
    audit.record(
        "users.import",
        target=job,
        actor=actor,
        summary=(
            f"Imported {job.filename}: {result['created']} created, {result['updated']} updated, "
            f"{result['unchanged']} unchanged, {result['skipped']} skipped"
        ),
        details={"import_id": job.id, **result},
    )
    db.session.flush()
    return result


# --- jobs --------------------------------------------------------------------------------

_threads: dict[int, threading.Thread] = {}


def new_job(
    table: Table, filename: str, created_by_id: int | None, create_missing: bool = False
) -> ImportJob:
    """An ImportJob holding an uploaded table, added to the session and flushed (so it has
    an id); its preview comes from preview_job, here or in a background thread."""
    job = ImportJob(
        created_by_id=created_by_id,
        filename=filename,
        status="previewing",
        create_missing=create_missing,
        data=table.as_data(),
        preview={},
        result={},
        total_rows=len(table.rows),
        processed_rows=0,
    )
    db.session.add(job)
    db.session.flush()
    return job


def preview_job(job: ImportJob, progress=None) -> None:
    plan = plan_import(job.data, job.create_missing, job.created_by_id, progress=progress)
    job.preview = plan.preview()
    job.status = "ready"
    job.processed_rows = job.total_rows
    job.updated_at = utcnow()


def _set_progress(job_id: int, processed: int) -> None:
    db.session.execute(
        update(ImportJob)
        .where(ImportJob.id == job_id)
        .values(processed_rows=processed, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _run(app: Flask, job_id: int, phase: str) -> None:
    from . import sqlite_write_transaction
    from .licensing import DomainError

    with app.app_context(), sqlite_write_transaction():
        try:
            job = db.session.get(ImportJob, job_id)
            if phase == "preview":
                preview_job(job, progress=lambda n: _set_progress(job_id, n))
            else:
                actor = db.session.get(User, job.created_by_id) if job.created_by_id else None
                apply(job, actor)
            db.session.commit()
        except Exception as exc:
            db.session.rollback()
            if not isinstance(exc, DomainError):
                app.logger.exception("Import job %s failed", job_id)
            message = (
                exc.message
                if isinstance(exc, DomainError)
                else "The import failed; nothing was changed."
            )
            db.session.execute(
                update(ImportJob)
                .where(ImportJob.id == job_id)
                .values(status="failed", error=message, finished_at=utcnow(), updated_at=utcnow())
            )
            db.session.commit()
        finally:
            db.session.remove()
            _threads.pop(job_id, None)


def start_background(app: Flask, job_id: int, phase: str) -> threading.Thread:
    """Run the preview or apply phase of a job in a thread with its own app context."""
    thread = threading.Thread(
        target=_run, args=(app, job_id, phase), name=f"import-{job_id}", daemon=True
    )
    _threads[job_id] = thread
    thread.start()
    return thread


def wait_for(job_id: int, timeout: float | None = None) -> None:
    """Block until a background job of this process finishes (tests, benchmarks)."""
    thread = _threads.get(job_id)
    if thread is not None:
        thread.join(timeout)


def error_rows(job: ImportJob):
    """(row number, cells..., reason) for every row the preview marked as an error."""
    data = job.data
    for row, result, line in zip(
        data["rows"], job.preview.get("rows", []), data["lines"], strict=False
    ):
        if result[0] == "error":
            yield [line, *row, " ".join(result[1])]
