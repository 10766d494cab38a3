"""A realistic demo organisation, inserted in bulk (a million users in about two minutes of CPU
on SQLite)."""

from __future__ import annotations

import random
import unicodedata
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import bindparam, func, select, text
from werkzeug.security import generate_password_hash

from . import figures, user_counts
from .extensions import db
from .licensing import repair_counters
from .models import Course, Group, Location, User, utcnow

LOCATIONS = [
    "Amsterdam",
    "Berlin",
    "Bristol",
    "Chicago",
    "Dublin",
    "Frankfurt",
    "Leeds",
    "Lisbon",
    "Lyon",
    "Madrid",
    "Manchester",
    "Milan",
    "Munich",
    "Oslo",
    "Paris",
    "Prague",
    "Rotterdam",
    "Stockholm",
    "Toronto",
    "Vienna",
    "Warsaw",
    "Zurich",
    "Head Office",
    "Remote",
]
GROUPS = [
    "Finance",
    "Sales",
    "Marketing",
    "Engineering",
    "Operations",
    "Customer Support",
    "Legal",
    "Human Resources",
    "Warehouse",
    "Drivers",
    "Managers",
    "New Starters",
    "Contractors",
    "Health & Safety Reps",
    "First Aiders",
    "IT",
    "Procurement",
    "Facilities",
]
COURSES = [
    ("GDPR-101", "Data Protection Essentials", 365),
    ("HS-200", "Health and Safety at Work", 30),
    ("FIRE-110", "Fire Safety Awareness", 30),
    ("AML-300", "Anti-Money Laundering", 60),
    ("ETH-150", "Code of Conduct and Ethics", 45),
    ("CYB-120", "Cyber Security Basics", 30),
    ("DEI-100", "Diversity and Inclusion", 90),
    ("MH-130", "Manual Handling", 14),
]
FIRST = [
    "Aisha",
    "Ben",
    "Chloé",
    "Daniel",
    "Elif",
    "Farah",
    "George",
    "Hannah",
    "Ivan",
    "Jana",
    "Kwame",
    "Lena",
    "Marco",
    "Nadia",
    "Oliver",
    "Priya",
    "Quentin",
    "Rosa",
    "Stéphane",
    "Tomás",
    "Uma",
    "Viktor",
    "Wen",
    "Xavier",
    "Yusuf",
    "Zoë",
    "Amelia",
    "Bruno",
    "Carla",
    "Dmitri",
    "Emma",
    "Felix",
    "Grace",
    "Hugo",
    "Isla",
    "Jonas",
    "Kira",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Pedro",
    "Rania",
    "Sofia",
    "Theo",
    "Valentina",
    "William",
    "Yara",
]
LAST = [
    "Adams",
    "Bakker",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "García",
    "Hughes",
    "Ivanova",
    "Jansen",
    "Kowalski",
    "Larsen",
    "Müller",
    "Novak",
    "O'Brien",
    "Patel",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Taylor",
    "Ünal",
    "Varga",
    "Walsh",
    "Xu",
    "Yilmaz",
    "Zimmermann",
    "Ñúñez",
    "Andersson",
    "Brown",
    "Chen",
    "Dijkstra",
    "Evans",
    "Ferreira",
    "Green",
    "Horvat",
    "Ito",
    "Johnson",
    "Kim",
    "Lopez",
    "Martin",
    "Nielsen",
    "Okafor",
    "Petrov",
    "Reyes",
    "Singh",
    "Thompson",
    "Virtanen",
    "Wilson",
    "Young",
    "Zhang",
]
DEMO_PASSWORD = "demo-learner-1"  # noqa: S105 - printed in the README for demo learners


def _get_or_create(model, names):
    existing = {row.name.lower(): row for row in db.session.scalars(select(model))}
    for name in names:
        if name.lower() not in existing:
            row = model(name=name)
            db.session.add(row)
            existing[name.lower()] = row
    db.session.flush()
    return [existing[name.lower()] for name in names]


USER_COLUMNS = (
    "id",
    "email",
    "employee_id",
    "first_name",
    "last_name",
    "role",
    "status",
    "location_id",
    "password_hash",
    "session_version",
    "created_at",
    "approved_at",
    "notified_at",
    "invite_status",
    "activated_at",
    "last_login_at",
    "archived_at",
    "manager_id",
)
# The demo's organisation chart: teams of TEAM users, each led by its first, who reports
# to the first of their TEAM leads (the Users list's Manager filter, the compliance
# cycle's escalations).
TEAM = 12
ASSIGNMENT_COLUMNS = (
    "user_id",
    "course_id",
    "assigned_by_id",
    "assigned_at",
    "notified_at",
    "due_date",
    "started_at",
    "completed_at",
    "score",
    "state",
    "archived_at",
    "archive_reason",
)
HOURS_2, HOURS_3, DAY, DAYS_2 = (timedelta(hours=h) for h in (2, 3, 24, 48))
# From this many users on, SQLite builds the indexes once after the rows instead of
# updating every one of them row by row (several times faster at a million users).
BULK_FROM = 20_000
BULK_TABLES = ("users", "user_groups", "course_assignments")
# Migration 0009_substring_search: the insert trigger that keeps users_search (trigrams).
SEARCH_INSERT_TRIGGER = "users_search_insert"
# Migration 0015_user_counts: the insert triggers that keep user_counts, a row at a time.
COUNTS_INSERT_TRIGGERS = ("user_counts_user_insert", "user_counts_link_insert")
PG_COUNTS_INSERT_TRIGGERS = (
    ("users", "user_counts_users_added"),
    ("user_groups", "user_counts_links_added"),
)


@contextmanager
def _bulk_load(connection, users: int):
    """For a large seed: drop the secondary indexes of the tables written, then build them
    again once after the rows (several times faster than updating each of them row by
    row), and gather the planner's statistics. Inside the caller's transaction, so a
    failed seed rolls the schema back too."""
    if users < BULK_FROM:
        yield
        return
    if connection.dialect.name == "postgresql":
        with _bulk_load_postgresql(connection):
            yield
    else:
        with _bulk_load_sqlite(connection):
            yield


@contextmanager
def _bulk_load_postgresql(connection):
    """Indexes that back no constraint (primary and foreign keys stay, and are checked)."""
    saved = connection.execute(
        text(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = current_schema() "
            "WHERE t.relname IN :tables AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)"
        ).bindparams(bindparam("tables", expanding=True)),
        {"tables": list(BULK_TABLES)},
    ).all()
    for name, _sql in saved:
        connection.exec_driver_sql(f'DROP INDEX "{name}"')
    # The kept user counts: counted once after the rows, not appended per batch.
    for table, trigger in PG_COUNTS_INSERT_TRIGGERS:
        connection.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
    yield
    connection.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
    for _name, sql in saved:
        connection.exec_driver_sql(sql)
    user_counts.repair()
    for table, trigger in PG_COUNTS_INSERT_TRIGGERS:
        connection.exec_driver_sql(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
    for table in BULK_TABLES:
        connection.exec_driver_sql(f"ANALYZE {table}")


@contextmanager
def _bulk_load_sqlite(connection):
    """The secondary indexes, and the insert triggers of the search table and of the kept
    user counts (both are rebuilt once instead). A large page cache and in-memory sorting
    meanwhile."""
    saved = connection.execute(
        text(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND "
            "((type = 'index' AND tbl_name IN :tables) OR (type = 'trigger' AND name IN :triggers))"
        ).bindparams(bindparam("tables", expanding=True), bindparam("triggers", expanding=True)),
        {"tables": list(BULK_TABLES), "triggers": [SEARCH_INSERT_TRIGGER, *COUNTS_INSERT_TRIGGERS]},
    ).all()
    cache = connection.exec_driver_sql("PRAGMA cache_size").scalar()
    connection.exec_driver_sql("PRAGMA cache_size = -262144")
    # SQLite refuses to change temp_store inside a transaction (the app's connections
    # begin one before the first statement): then the sorts use temporary files.
    memory_temp = not connection.connection.dbapi_connection.in_transaction
    if memory_temp:
        connection.exec_driver_sql("PRAGMA temp_store = MEMORY")
    for kind, name, _sql in saved:
        connection.exec_driver_sql(f'DROP {kind.upper()} "{name}"')
    yield
    for kind, _name, sql in saved:
        if kind == "index":
            connection.exec_driver_sql(sql)
    triggers = {name: sql for kind, name, sql in saved if kind == "trigger"}
    if SEARCH_INSERT_TRIGGER in triggers:
        connection.exec_driver_sql("INSERT INTO users_search(users_search) VALUES ('rebuild')")
    if triggers.keys() & set(COUNTS_INSERT_TRIGGERS):
        user_counts.repair()
    for sql in triggers.values():
        connection.exec_driver_sql(sql)
    # Statistics from a sample of each index (a second at a million users): without them
    # SQLite's planner guesses, and some of its guesses scan a million rows.
    connection.exec_driver_sql("PRAGMA analysis_limit = 1000")
    connection.exec_driver_sql("ANALYZE")
    connection.exec_driver_sql(f"PRAGMA cache_size = {int(cache)}")
    if memory_temp and not connection.connection.dbapi_connection.in_transaction:
        connection.exec_driver_sql("PRAGMA temp_store = DEFAULT")


def _manager(n: int, start_id: int) -> int | None:
    """The manager of the `n`th demo user of a seed whose first user is `start_id`."""
    lead = n - n % TEAM
    if lead != n:
        return start_id + lead
    head = n - n % (TEAM * TEAM)
    return start_id + head if head != n else None


def seed_demo(users: int, seed: int = 7, batch: int = 5000) -> dict[str, int]:
    """Insert `users` demo users with groups and training records; returns counts."""
    rng = random.Random(seed)
    locations = _get_or_create(Location, LOCATIONS)
    groups = _get_or_create(Group, GROUPS)
    courses = []
    existing_courses = {c.code: c for c in db.session.scalars(select(Course))}
    for code, title, days in COURSES:
        course = existing_courses.get(code)
        if course is None:
            course = Course(
                code=code,
                title=title,
                description=f"{title}: the annual compliance module.",
                launch_url=f"https://content.example.org/{code.lower()}",
                default_due_days=days,
                seats_total=0,
                seats_reserved=0,
                seats_used=0,
            )
            db.session.add(course)
        courses.append(course)
    db.session.flush()

    start_id = (db.session.scalar(select(func.max(User.id))) or 0) + 1
    password_hash = generate_password_hash(DEMO_PASSWORD)
    now = utcnow()
    counts = {"users": 0, "assignments": 0}
    statuses = ["active"] * 80 + ["pending"] * 15 + ["archived"] * 5
    group_counts = [0, 1, 1, 2, 2, 3]
    course_counts = [0, 1, 2, 2, 3]
    states = ["assigned", "in_progress", "completed", "completed"]
    location_ids = [location.id for location in locations]
    group_ids = [group.id for group in groups]
    course_days = [(course.id, course.default_due_days) for course in courses]
    # Email local parts, ASCII-folded once per name pair rather than once per user.
    locals_ = {
        (first, last): unicodedata.normalize("NFKD", f"{first}.{last}".lower().replace("'", ""))
        .encode("ascii", "ignore")
        .decode()
        for first in FIRST
        for last in LAST
    }
    connection = db.session.connection()
    sqlite = connection.dialect.name == "sqlite"
    # The driver's own executemany with tuples: SQLAlchemy's per-value processing was most
    # of the time. SQLite stores dates as SQLAlchemy's text format; psycopg takes objects.
    stamp = (lambda d: d and d.isoformat(" ", "microseconds")) if sqlite else (lambda d: d)
    day = (lambda d: d.isoformat()) if sqlite else (lambda d: d)
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"

    def statement(table: str, columns: tuple[str, ...]) -> str:
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 - this module's names
            f"VALUES ({', '.join([mark] * len(columns))})"
        )

    link_columns = ("user_id", "group_id")
    insert_user = statement("users", USER_COLUMNS)
    insert_link = statement("user_groups", link_columns)
    insert_assignment = statement("course_assignments", ASSIGNMENT_COLUMNS)

    def write(table: str, columns: tuple[str, ...], sql: str, rows: list[tuple]) -> None:
        if not rows:
            return
        if sqlite:
            connection.exec_driver_sql(sql, rows)
            return
        # PostgreSQL: COPY, several times faster than an INSERT per row.
        cursor = connection.connection.dbapi_connection.cursor()
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.close()

    random_ = rng.random
    choice = rng.choice

    with _bulk_load(connection, users):
        for offset in range(0, users, batch):
            user_rows, group_rows, assignment_rows = [], [], []
            for n in range(offset, min(offset + batch, users)):
                uid = start_id + n
                first, last = choice(FIRST), choice(LAST)
                status = choice(statuses)
                created = now - timedelta(days=1 + int(random_() * 900), minutes=random_() * 1440)
                created = created.replace(microsecond=0)
                # Only an approved user can be invited (Notify follows Approve).
                notified = status != "pending"
                activated = status != "pending" and random_() < 0.85
                archived_at = (
                    stamp(now - timedelta(days=1 + int(random_() * 60)))
                    if status == "archived"
                    else None
                )
                user_rows.append(
                    (
                        uid,
                        f"{locals_[first, last]}.{uid}@demo.example",
                        f"{uid:07d}" if random_() < 0.7 else None,
                        first,
                        last,
                        "learner",
                        status,
                        choice(location_ids),
                        password_hash if activated else None,
                        1,
                        stamp(created),
                        stamp(created + HOURS_2) if status != "pending" else None,
                        stamp(created + HOURS_3) if notified else None,
                        "sent" if notified else None,
                        stamp(created + DAY) if activated else None,
                        stamp(created + DAYS_2) if activated else None,
                        archived_at,
                        _manager(n, start_id),
                    )
                )
                for group_id in rng.sample(group_ids, choice(group_counts)):
                    group_rows.append((uid, group_id))
                if status == "pending":
                    continue
                archived = status == "archived"
                for course_id, due_days in rng.sample(course_days, choice(course_counts)):
                    assigned = created + timedelta(days=1 + int(random_() * 30))
                    state = choice(states)
                    started = (
                        assigned + timedelta(days=int(random_() * 11))
                        if state != "assigned"
                        else None
                    )
                    completed = state == "completed"
                    assignment_rows.append(
                        (
                            uid,
                            course_id,
                            None,
                            stamp(assigned),
                            # Announced when assigned: the worker sends no notices for history.
                            stamp(assigned),
                            day((assigned + timedelta(days=due_days)).date()),
                            stamp(started),
                            stamp(started + timedelta(days=int(random_() * 6)))
                            if completed
                            else None,
                            70 + int(random_() * 31) if completed else None,
                            state,
                            archived_at if archived else None,
                            "user_archived" if archived else None,
                        )
                    )
            write("users", USER_COLUMNS, insert_user, user_rows)
            write("user_groups", link_columns, insert_link, group_rows)
            write("course_assignments", ASSIGNMENT_COLUMNS, insert_assignment, assignment_rows)
            counts["users"] += len(user_rows)
            counts["assignments"] += len(assignment_rows)

    # Pools: counters from the records, plus some spare seats (one course nearly full).
    repair_counters()
    # PostgreSQL appended the kept user counts of each batch as rows of their own.
    user_counts.merge()
    # The dashboard's snapshots predate these rows: gone, so none is shown as current.
    figures.forget()
    for index, course in enumerate(courses):
        db.session.refresh(course)
        in_use = course.seats_reserved + course.seats_used
        spare = 3 if index == len(courses) - 1 else max(25, in_use // 10)
        course.seats_total = in_use + spare
    db.session.flush()
    if db.engine.dialect.name == "postgresql":
        # Explicit ids were inserted: move the sequence past them.
        db.session.execute(
            select(func.setval("users_id_seq", select(func.max(User.id)).scalar_subquery()))
        )
    return counts
