"""The Users list at 100,000 users: latency of the list partial per filter combination
(Flask test client, p50/p95 and SQL statements per request) on SQLite and, when
TEST_DATABASE_URL is set, PostgreSQL; then requests/second of the list partial served by
gunicorn (2 sync workers) against a no-database render of the same 50 rows.

BENCH_SCOPED=1 times the list instead for an organisation-wide administrator and for one
scoped to one location and one group (#17), side by side, and prints the query plans of
the scoped list's count and page (no gunicorn run)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from bench import _support

ROOT = Path(__file__).resolve().parent
DATA = ROOT / ".data"
# BENCH_USERS=1000000 measures a million users (its own database: users_1m.sqlite3).
USERS = int(os.environ.get("BENCH_USERS", "100000"))
SIZE = f"{USERS // 1_000_000}m" if USERS % 1_000_000 == 0 else f"{USERS // 1000}k"
ADMIN_EMAIL = "bench.admin@bench.example"
ADMIN_PASSWORD = "bench-admin-password"  # noqa: S105 - a throwaway local database
SECRET = "bench-secret-key"  # noqa: S105
SCOPED_EMAIL = "bench.scoped@bench.example"
# The scoped administrator's scope: one location, one group (seed_demo's names).
SCOPE_LOCATION, SCOPE_GROUP = "Lisbon", "Warehouse"
SCOPED = os.environ.get("BENCH_SCOPED") == "1"
RUNS = int(os.environ.get("BENCH_RUNS", "40"))
# The partial as the search box and the filter form ask for it (no out-of-band form).
HX = {"HX-Request": "true", "HX-Trigger": "users-q"}

os.environ.setdefault("LMSWEB_INSTANCE", str(DATA / "instance"))


def databases() -> list[tuple[str, str]]:
    # BENCH_PG_SUFFIX: a PostgreSQL database of one's own on a shared server.
    suffix = ("" if SIZE == "100k" else f"_{SIZE}") + os.environ.get("BENCH_PG_SUFFIX", "")
    return _support.databases(f"users_{SIZE}.sqlite3", f"lmsweb_bench_users{suffix}")


def make_app(url: str):
    from lmsweb import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET})


def prepare(url: str) -> None:
    """Migrate, seed up to USERS users, add the bench administrator, refresh statistics."""
    from flask_migrate import upgrade

    from lmsweb.extensions import db
    from lmsweb.models import User
    from lmsweb.seed import seed_demo

    DATA.mkdir(parents=True, exist_ok=True)
    app = make_app(url)
    with app.app_context():
        upgrade(directory=str(ROOT.parent / "migrations"))
        have = db.session.scalar(sa.select(sa.func.count()).select_from(User))
        db.session.close()  # seed_demo sets SQLite pragmas, which need no open transaction
        if have < USERS:
            started = time.perf_counter()
            seed_demo(USERS - have)
            db.session.commit()
            print(f"  seeded {USERS - have:,} users in {time.perf_counter() - started:.1f} s")
        _support.add_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
        if SCOPED:
            _add_scoped_admin()
        db.session.commit()
        if "postgresql" in url:
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        else:
            # In a transaction of its own: through an AUTOCOMMIT connection SQLite's statistics
            # (sqlite_stat1) were never kept, and the planner went without them.
            db.session.execute(sa.text("ANALYZE"))
            db.session.commit()
        db.session.remove()
        db.engine.dispose()


def _add_scoped_admin() -> None:
    from lmsweb.extensions import db
    from lmsweb.models import Group, Location, User
    from lmsweb.scope import set_scope

    _support.add_admin(SCOPED_EMAIL, ADMIN_PASSWORD)
    db.session.flush()
    admin = db.session.scalar(sa.select(User).where(User.email == SCOPED_EMAIL))
    if admin.scope_id is None:
        location = db.session.scalar(sa.select(Location).where(Location.name == SCOPE_LOCATION))
        group = db.session.scalar(sa.select(Group).where(Group.name == SCOPE_GROUP))
        set_scope(admin, [location], [group])


def explain_scoped(app, url: str) -> None:
    """The plans of the scoped list's count and first page: each must use indexes."""
    from flask_login import login_user

    from lmsweb.blueprints.users.listing import COUNT_CAP, counted_by_status
    from lmsweb.extensions import db
    from lmsweb.models import User
    from lmsweb.user_queries import UserFilters, filtered_users, ordered

    with app.test_request_context():
        login_user(db.session.scalar(sa.select(User).where(User.email == SCOPED_EMAIL)))
        # As the list reads them past the count's cap: the page walked, the count from
        # scope_members.
        walked = filtered_users(UserFilters(), walk=True)
        page = ordered(walked.with_only_columns(User.id), "name").limit(51)
        counted = counted_by_status(UserFilters(), COUNT_CAP)
        prefix = "EXPLAIN" if "postgresql" in url else "EXPLAIN QUERY PLAN"
        for name, statement in (("page", page), ("count", counted)):
            compiled = statement.compile(db.engine, compile_kwargs={"literal_binds": True})
            print(f"  plan of the scoped {name}:")
            for row in db.session.execute(sa.text(f"{prefix} {compiled}")):
                print("    " + " ".join(str(c) for c in row))


def csrf_from(html: str) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)


def combinations(app) -> dict[str, str]:
    from lmsweb.extensions import db
    from lmsweb.models import Group, Location, User

    with app.app_context():
        location = db.session.scalar(sa.select(Location.id).where(Location.name == "Berlin"))
        group = db.session.scalar(sa.select(Group.id).where(Group.name == "Sales"))
        # The first managed user's manager (the demo's organisation chart, seed.TEAM), by
        # email: the head of the first twelve teams, with 22 reports (the last managed
        # user's, the seed's last team, may have a few).
        lead = (
            sa.select(User.manager_id)
            .where(User.manager_id.is_not(None))
            .order_by(User.id)
            .limit(1)
            .scalar_subquery()
        )
        manager = db.session.scalar(sa.select(User.email).where(User.id == lead))
    return {
        "none": "",
        "status+role": "status=active&role=learner",
        "status archived": "status=archived",
        "role admin": "role=admin",
        "search prefix 'ma'": "q=ma",
        "search 'mar'": "q=mar",
        "search 'son'": "q=son",
        "search 'rossi'": "q=rossi",
        "location": f"location={location}",
        "group": f"group={group}",
        "everything": f"q=mar&location={location}&group={group}&status=active&role=learner",
        "location+group": f"location={location}&group={group}",
        "group, sort location": f"group={group}&sort=location",
        "all statuses, sort -name": "status=active&status=pending&status=archived&sort=-name",
        "deep page (1000)": "page=1000",
        "two words 'mar ros'": "q=mar+ros",
        "sort email, page 500": "sort=email&page=500",
        "sort location": "sort=location",
        "sort -created": "sort=-created",
        "sort status, 100/page": "sort=status&per_page=100",
        **({"manager (email)": f"manager={manager}"} if manager else {}),
    }


# The scoped comparison's combinations: the first page, a search, a filter, a deep page.
SCOPED_COMBINATIONS = ("none", "search 'mar'", "location", "group", "deep page (1000)")


def time_requests(url: str, email: str = ADMIN_EMAIL) -> None:
    from lmsweb.extensions import db

    app = make_app(url)
    client = app.test_client()
    token = csrf_from(client.get("/login").text)
    response = client.post(
        "/login", data={"email": email, "password": ADMIN_PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 303, response.status_code
    statements = [0]
    with app.app_context():
        engine = db.engine
    sa.event.listen(
        engine, "before_cursor_execute", lambda *a: statements.__setitem__(0, statements[0] + 1)
    )
    print(
        f"  {'combination':<24} {'p50 ms':>8} {'p95 ms':>8} {'CPU ms':>8} {'SQL/req':>8} "
        f"{'matching':>9}"
    )
    for name, query in combinations(app).items():
        if SCOPED and name not in SCOPED_COMBINATIONS:
            continue
        path = f"/admin/users?{query}"
        for _ in range(3):
            client.get(path, headers=HX)
        times, counts, cpu = [], [], []
        for _ in range(RUNS):
            statements[0] = 0
            started, cpu_started = time.perf_counter(), time.process_time()
            response = client.get(path, headers=HX)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
            counts.append(statements[0])
            assert response.status_code == 200, (path, response.status_code)
        # Past the count's cap the list says "More than 10,000": printed as ">10,000".
        matching = re.search(r'id="users-count"[^>]*>(More than )?([\d,]+)', response.text)
        matching = (">" if matching.group(1) else "") + matching.group(2)
        p95 = statistics.quantiles(times, n=20)[-1]
        print(
            f"  {name:<24} {statistics.median(times):8.1f} {p95:8.1f} "
            f"{statistics.median(cpu):8.1f} "
            f"{max(counts):8d} {matching:>9}"
        )
    with app.app_context():
        db.engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sign_in(port: int) -> str:
    """Sign in over HTTP; returns the Cookie header to send."""
    import http.client

    def request(method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read().decode()
        conn.close()
        return response, data

    response, html = request("GET", "/login")
    cookie = response.getheader("Set-Cookie").split(";")[0]
    from urllib.parse import urlencode

    body = urlencode(
        {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": csrf_from(html)}
    )
    response, _ = request(
        "POST",
        "/login",
        body,
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
    )
    assert response.status == 303, response.status
    return response.getheader("Set-Cookie").split(";")[0]


def load(port: int, path: str, headers: dict, seconds: float = 8.0, threads: int = 8) -> float:
    """Requests/second with `threads` closed-loop clients (wrk if installed)."""
    if shutil.which("wrk"):
        args = ["wrk", "-t2", f"-c{threads}", f"-d{int(seconds)}s"]
        for key, value in headers.items():
            args += ["-H", f"{key}: {value}"]
        out = subprocess.run(
            [*args, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True
        ).stdout
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    import http.client

    done = [0]
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker():
        while time.perf_counter() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            conn.close()
            with lock:
                done[0] += 1
                errors[0] += response.status != 200

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors[0] == 0, f"{errors[0]} non-200 responses from {path}"
    return done[0] / (time.perf_counter() - started)


def serve_and_load(url: str) -> None:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": SECRET}
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "bench.users_list_wsgi:app",
        ],
        cwd=ROOT.parent,
        env=env,
    )
    try:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        cookie = sign_in(port)
        list_headers = {**HX, "Cookie": cookie}
        load(port, "/admin/users", list_headers, seconds=2)  # warm both workers
        load(port, "/bench/users-rows-no-db", HX, seconds=2)
        tool = "wrk" if shutil.which("wrk") else "Python threads"
        listing = load(port, "/admin/users", list_headers)
        baseline = load(port, "/bench/users-rows-no-db", HX)
        print(f"  gunicorn, 2 sync workers, 8 connections ({tool}):")
        print(f"  list partial (50 rows, count, signed in): {listing:8.1f} req/s")
        print(f"  same 50 rows rendered without database:   {baseline:8.1f} req/s")
        print(f"  ratio: {listing / baseline:.0%}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    """`python -m bench.users_list [sqlite|postgresql] [--no-load]`: one engine, or both;
    --no-load leaves out the gunicorn throughput part."""
    engines = [a for a in sys.argv[1:] if a in ("sqlite", "postgresql")]
    for engine, url in databases():
        if engines and engine not in engines:
            continue
        print(f"\n[{engine}] {USERS:,} users")
        prepare(url)
        if SCOPED:
            print("  organisation-wide administrator:")
            time_requests(url)
            print(f"  scoped administrator ({SCOPE_LOCATION} + {SCOPE_GROUP}):")
            time_requests(url, SCOPED_EMAIL)
            explain_scoped(make_app(url), url)
            continue
        time_requests(url)
        if "--no-load" not in sys.argv:
            serve_and_load(url)


if __name__ == "__main__":
    main()
