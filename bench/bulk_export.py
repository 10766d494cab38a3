"""Bulk actions and Export Users at scale (SQLite only).

- Approve & notify on 10,000 users matching a filter, through POST /admin/users/bulk
  (goal <= 3 s); Assign course to the same 10,000 (goal <= 5 s).
- Export of 10,000 and 100,000 users (roster_export: one aggregated query streamed into
  lmsweb.xlsx) against openpyxl's own write-only time for the same rows, in the same run
  (goal: at most +30%), each in a child process so its peak RSS is its own (goal <= 200 MB).
Figures are printed, never judged; CPU times beside wall times, because the machine is
shared and wall time swings with its load.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import _support

DATA = Path(__file__).parent / ".data"
SIZES = (10_000, 100_000)
BULK = 10_000
ADMIN_EMAIL = "bench.admin@example.com"
ADMIN_PASSWORD = "bench admin password"  # noqa: S105 - a throwaway local database


def _app(path: Path):
    return app_for(f"sqlite:///{path}")


def app_for(url: str):
    """The benches' app on the database at `url` (no mail server: nothing is sent)."""
    from lmsweb import create_app

    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "SECRET_KEY": "bench",
            "PUBLIC_BASE_URL": "http://lms.bench",
            "MAIL_SERVER": None,
        }
    )


def _database(users: int) -> Path:
    """A migrated database with `users` demo users (built once, then reused as a template)."""
    path = DATA / f"users-{users}.sqlite3"
    if path.exists():
        return path
    from flask_migrate import upgrade

    from lmsweb.extensions import db
    from lmsweb.seed import seed_demo

    DATA.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".building")
    partial.unlink(missing_ok=True)
    app = _app(partial)
    with app.app_context():
        upgrade()
        # A fresh connection, as `flask lms seed-demo` has: the seed's bulk path sets
        # pragmas SQLite refuses once a migration has used the temporary database.
        db.session.remove()
        db.engine.dispose()
        seed_demo(users)
        _support.add_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
        db.session.commit()
        db.engine.dispose()
    partial.rename(path)
    return path


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(kind: str, path: str) -> None:
    """Run one export in this (child) process and print its figures as JSON."""
    from openpyxl import Workbook

    from lmsweb.roster_export import HEADERS, export_rows, write_users
    from lmsweb.user_queries import UserFilters, filtered_users

    app = _app(Path(path))
    everyone = filtered_users(UserFilters(status=["pending", "active", "archived"]))
    with app.app_context(), tempfile.TemporaryFile() as out:
        if kind == "export":
            started, cpu = time.perf_counter(), time.process_time()
            rows = write_users(out, everyone)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        else:
            data = list(export_rows(everyone))  # the same rows, fetched before the clock
            started, cpu = time.perf_counter(), time.process_time()
            workbook = Workbook(write_only=True)
            sheet = workbook.create_sheet("Users")
            sheet.append(HEADERS)
            for row in data:
                sheet.append(row)
            workbook.save(out)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            rows = len(data)
        size = out.tell()
    print(
        json.dumps(
            {"seconds": seconds, "cpu": cpu, "rows": rows, "rss_mb": _maxrss_mb(), "bytes": size}
        )
    )


def _run_child(kind: str, path: Path) -> dict:
    output = subprocess.run(
        [sys.executable, "-m", "bench.bulk_export", "--child", kind, str(path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def _exports() -> None:
    for users in SIZES:
        path = _database(users)
        ours = _run_child("export", path)
        plain = _run_child("openpyxl", path)
        overhead = (ours["seconds"] / plain["seconds"] - 1) * 100
        cpu_overhead = (ours["cpu"] / plain["cpu"] - 1) * 100
        print(
            f"export {ours['rows']:>7,} users: {ours['seconds']:6.2f} s (CPU {ours['cpu']:.2f} s), "
            f"peak RSS {ours['rss_mb']:5.0f} MB, {ours['bytes'] / 1e6:.1f} MB file | openpyxl "
            f"write-only of the same rows: {plain['seconds']:6.2f} s (CPU {plain['cpu']:.2f} s; "
            f"RSS {plain['rss_mb']:.0f} MB, rows held in memory) | overhead {overhead:+.0f}% wall, "
            f"{cpu_overhead:+.0f}% CPU (goal <= +30%, <= 200 MB)"
        )


def _bulk() -> None:
    from sqlalchemy import func, insert, select

    from lmsweb import sqlite_write_transaction
    from lmsweb.extensions import db
    from lmsweb.models import Course, CourseAssignment, Location, OutboundEmail, User

    work = DATA / "bulk-work.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    shutil.copy(_database(SIZES[0]), work)
    app = _app(work)
    with app.app_context(), sqlite_write_transaction():
        location = Location(name="Bench pending")
        course = Course(code="BENCH", title="Bench course", seats_total=BULK)
        db.session.add_all([location, course])
        db.session.flush()
        start = db.session.scalar(select(func.max(User.id))) + 1
        db.session.execute(
            insert(User),
            [
                {
                    "id": start + n,
                    "email": f"pending.{n}@bench.example",
                    "first_name": f"Pending{n}",
                    "last_name": "Bench",
                    "status": "pending",
                    "role": "learner",
                    "location_id": location.id,
                }
                for n in range(BULK)
            ],
        )
        db.session.commit()
        location_id, course_id = location.id, course.id

    client = app.test_client()
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/login").text)[1]
    client.post(
        "/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token}
    )
    headers = {"HX-Request": "true", "X-CSRFToken": token}
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/admin/users").text)[1]
    headers["X-CSRFToken"] = token
    matching = {"select_all": "matching", "location": str(location_id), "status": "pending"}

    started, cpu = time.perf_counter(), time.process_time()
    response = client.post(
        "/admin/users/bulk", data={"action": "approve_notify", **matching}, headers=headers
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert response.status_code == 200, response.text[:500]
    with app.app_context():
        queued = db.session.scalar(select(func.count()).select_from(OutboundEmail))
        active = db.session.scalar(
            select(func.count()).where(User.location_id == location_id, User.status == "active")
        )
    print(
        f"approve & notify {BULK:,} matching users (one POST): {seconds:.2f} s "
        f"(CPU {cpu:.2f} s) "
        f"(goal <= 3 s); {active:,} approved, {queued:,} emails queued"
    )

    matching["status"] = "active"
    started, cpu = time.perf_counter(), time.process_time()
    response = client.post(
        "/admin/users/bulk",
        data={"action": "assign_course", "course": str(course_id), "confirm": "1", **matching},
        headers=headers,
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert response.status_code == 200, response.text[:500]
    with app.app_context():
        assigned = db.session.scalar(
            select(func.count()).where(CourseAssignment.course_id == course_id)
        )
        pool = db.session.get(Course, course_id)
        print(
            f"assign course to {BULK:,} matching users (one POST): {seconds:.2f} s "
            f"(CPU {cpu:.2f} s) "
            f"(goal <= 5 s); {assigned:,} assigned, seats reserved {pool.seats_reserved:,} "
            f"of {pool.seats_total:,}"
        )
        db.engine.dispose()


def main() -> None:
    started = time.perf_counter()
    for users in SIZES:
        _database(users)
    print(f"data ready in {time.perf_counter() - started:.1f} s (cached under bench/.data/)")
    _bulk()
    _exports()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3])
    else:
        main()
