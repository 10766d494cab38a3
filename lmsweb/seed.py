"""A realistic demo organisation, inserted in bulk (100,000 users in well under a minute)."""

from __future__ import annotations

import random
import unicodedata
from datetime import timedelta

from sqlalchemy import func, insert, select
from werkzeug.security import generate_password_hash

from .extensions import db
from .licensing import repair_counters
from .models import Course, CourseAssignment, Group, Location, User, user_groups, utcnow

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
    user_table = User.__table__
    assignment_table = CourseAssignment.__table__

    for offset in range(0, users, batch):
        user_rows, group_rows, assignment_rows = [], [], []
        for n in range(offset, min(offset + batch, users)):
            uid = start_id + n
            first, last = rng.choice(FIRST), rng.choice(LAST)
            status = rng.choice(statuses)
            created = now - timedelta(days=rng.randint(1, 900), minutes=rng.randint(0, 1440))
            # Only an approved user can be invited (Notify follows Approve).
            notified = status != "pending"
            activated = status != "pending" and rng.random() < 0.85
            local = unicodedata.normalize("NFKD", f"{first}.{last}".lower().replace("'", ""))
            user_rows.append(
                {
                    "id": uid,
                    "email": f"{local}.{uid}@demo.example".encode("ascii", "ignore").decode(),
                    "employee_id": f"{uid:07d}" if rng.random() < 0.7 else None,
                    "first_name": first,
                    "last_name": last,
                    "role": "learner",
                    "status": status,
                    "location_id": rng.choice(locations).id,
                    "password_hash": password_hash if activated else None,
                    "session_version": 1,
                    "created_at": created,
                    "approved_at": created + timedelta(hours=2) if status != "pending" else None,
                    "notified_at": created + timedelta(hours=3) if notified else None,
                    "invite_status": "sent" if notified else None,
                    "activated_at": created + timedelta(days=1) if activated else None,
                    "last_login_at": created + timedelta(days=2) if activated else None,
                    "archived_at": now - timedelta(days=rng.randint(1, 60))
                    if status == "archived"
                    else None,
                }
            )
            for group in rng.sample(groups, rng.choice([0, 1, 1, 2, 2, 3])):
                group_rows.append({"user_id": uid, "group_id": group.id})
            if status == "pending":
                continue
            for course in rng.sample(courses, rng.choice([0, 1, 2, 2, 3])):
                assigned = created + timedelta(days=rng.randint(1, 30))
                state = rng.choice(["assigned", "in_progress", "completed", "completed"])
                started = (
                    assigned + timedelta(days=rng.randint(0, 10)) if state != "assigned" else None
                )
                archived = status == "archived"
                assignment_rows.append(
                    {
                        "user_id": uid,
                        "course_id": course.id,
                        "assigned_by_id": None,
                        "assigned_at": assigned,
                        "due_date": (assigned + timedelta(days=course.default_due_days)).date(),
                        "started_at": started,
                        "completed_at": started + timedelta(days=rng.randint(0, 5))
                        if state == "completed"
                        else None,
                        "score": rng.randint(70, 100) if state == "completed" else None,
                        "state": state,
                        "archived_at": user_rows[-1]["archived_at"] if archived else None,
                        "archive_reason": "user_archived" if archived else None,
                    }
                )
        db.session.execute(insert(user_table), user_rows)
        if group_rows:
            db.session.execute(insert(user_groups), group_rows)
        if assignment_rows:
            db.session.execute(insert(assignment_table), assignment_rows)
        counts["users"] += len(user_rows)
        counts["assignments"] += len(assignment_rows)

    # Pools: counters from the records, plus some spare seats (one course nearly full).
    repair_counters()
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
