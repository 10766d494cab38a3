"""The dashboard at 100,000 users (BENCH_USERS=1000000: a million): p50/p95 and CPU of the
full page (for an organisation-wide administrator and for one scoped to a location and a
group) and of filtered record pages, and how long counting the figures' snapshots takes
(the worker's part past FIGURES_LIVE_MAX_USERS, lmsweb/figures.py).

The database is bench/users_list.py's (built once under bench/.data/ by seed_demo, ~135k
training records per 100,000 users) and reused; with TEST_DATABASE_URL set to a PostgreSQL
server, a database on it is measured too (PEERS_ENGINE=sqlite or postgresql: one only).
"""

from __future__ import annotations

import os
import re
import statistics
import time

from bench import _support

USERS = int(os.environ.get("BENCH_USERS", "100000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "30"))
DATA = _support.DATA
EMAIL = "bench.admin@example.com"
SCOPED_EMAIL = "bench.dashboard.scoped@example.com"
PASSWORD = "bench-admin-password-1"  # noqa: S105 - a throwaway local benchmark database


def _app(url: str):
    from lmsweb import create_app

    os.environ.setdefault("LMSWEB_INSTANCE", str(DATA / "instance"))
    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "SECRET_KEY": "bench-secret-key",
            "WTF_CSRF_ENABLED": False,
            "MAIL_SERVER": None,
        }
    )


def _prepare(app) -> None:
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from lmsweb.extensions import db
    from lmsweb.models import User
    from lmsweb.seed import seed_demo

    with app.app_context():
        upgrade()
        if not db.session.scalar(select(func.count()).select_from(User)):
            started = time.perf_counter()
            counts = seed_demo(USERS)
            db.session.commit()
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE")  # fresh statistics for the planner
            print(
                f"seeded {counts['users']} users, {counts['assignments']} records "
                f"in {time.perf_counter() - started:.1f} s"
            )
        _support.add_admin(EMAIL, PASSWORD)
        _add_scoped_admin()
        db.session.commit()
        _count_snapshots()
        db.session.remove()


def _add_scoped_admin() -> None:
    """An administrator scoped to one location and one group (users_list's choice)."""
    from sqlalchemy import select

    from bench.users_list import SCOPE_GROUP, SCOPE_LOCATION
    from lmsweb.extensions import db
    from lmsweb.models import Group, Location, User
    from lmsweb.scope import set_scope

    _support.add_admin(SCOPED_EMAIL, PASSWORD)
    db.session.flush()
    admin = db.session.scalar(select(User).where(User.email == SCOPED_EMAIL))
    if admin.scope_id is None:
        location = db.session.scalar(select(Location).where(Location.name == SCOPE_LOCATION))
        group = db.session.scalar(select(Group).where(Group.name == SCOPE_GROUP))
        set_scope(admin, [location], [group])


def _count_snapshots() -> None:
    """What the worker does every few minutes at this size: count every audience's figures
    (the organisation's, each administrator scope's). Timed, wall and CPU."""
    try:
        from lmsweb import figures
    except ImportError:  # the code before lmsweb/figures.py: the page counts live
        return
    from lmsweb.extensions import db

    if not figures.is_large():
        print("figures: counted live on every request (a small organisation)")
        return
    audiences = figures.audiences()
    started, cpu = time.perf_counter(), time.process_time()
    figures.refresh_many(audiences)
    db.session.commit()
    print(
        f"snapshots of the organisation and {len(audiences) - 1} scopes, one pass (the "
        f"worker's): {time.perf_counter() - started:.1f} s wall, "
        f"{time.process_time() - cpu:.1f} s CPU"
    )


def _sign_in(app, email: str = EMAIL):
    client = app.test_client()
    response = client.post("/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 303, response.status_code
    return client


def _measure(client, url: str, headers=None) -> tuple[float, float, float, str]:
    times, cpu = [], []
    text = ""
    for _ in range(ROUNDS + 2):
        started, cpu_started = time.perf_counter(), time.process_time()
        response = client.get(url, headers=headers or {})
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        text = response.text
    times = sorted(times[2:])  # the first two warm the caches
    p50 = statistics.median(times)
    p95 = times[min(len(times) - 1, round(0.95 * len(times)) - 1)]
    return p50, p95, statistics.median(cpu[2:]), text


def main() -> None:
    from bench import users_list

    only = os.environ.get("PEERS_ENGINE", "")
    for engine, url in users_list.databases():
        if only and engine != only:
            continue
        print(f"\n[{engine}]")
        measure(_app(url))


def measure(app) -> None:
    _prepare(app)
    client = _sign_in(app)
    hx = {"HX-Request": "true", "HX-Target": "records"}
    with app.app_context():
        from sqlalchemy import select

        from lmsweb.extensions import db
        from lmsweb.models import Course, Group, Location

        course = db.session.scalar(select(Course.id).order_by(Course.id))
        location = db.session.scalar(select(Location.id).order_by(Location.id))
        group = db.session.scalar(select(Group.id).order_by(Group.id))
        db.session.remove()
    scoped = _sign_in(app, SCOPED_EMAIL)
    cases = [
        ("full page, no filter", "/admin/dashboard", None),
        ("full page, scoped administrator", "/admin/dashboard", None, scoped),
        ("records: overdue", "/admin/dashboard?state=overdue", hx),
        ("records: archived", "/admin/dashboard?archived=yes", hx),
        (
            "records: course + not started",
            f"/admin/dashboard?course={course}&state=not_started",
            hx,
        ),
        ("records: a location", f"/admin/dashboard?location={location}", hx),
        ("records: a group", f"/admin/dashboard?group={group}", hx),
        ("records: location + group", f"/admin/dashboard?location={location}&group={group}", hx),
        ("records: search 'son'", "/admin/dashboard?q=son", hx),
        ("records: page 2000", "/admin/dashboard?page=2000", hx),
    ]
    print(f"{USERS} users, {ROUNDS} requests each (in-process test client, warm caches)")
    print(f"{'case':34} {'p50 ms':>8} {'p95 ms':>8} {'CPU ms':>8}  rows")
    for label, url, headers, *who in cases:
        p50, p95, cpu, text = _measure(who[0] if who else client, url, headers)
        found = re.search(r'id="records-count">([^<]+)</p>', text)
        rows = found.group(1).replace(" training records", "") if found else "?"
        print(f"{label:34} {p50:8.1f} {p95:8.1f} {cpu:8.1f}  {rows}")
    print("goal: full page p95 < 100 ms")


if __name__ == "__main__":
    main()
