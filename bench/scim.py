"""SCIM provisioning: 10,000 users POSTed by 4 concurrent clients to gunicorn (2 sync
workers), and filtered SCIM lists at 100,000 users (Flask test client, one client in
process: p50/p95, requests/second and SQL statements per request), with an
organisation-wide token and with one scoped to two locations and a group. SQLite, and
PostgreSQL when TEST_DATABASE_URL is set.

BENCH_SCIM_USERS and BENCH_SCIM_LIST_USERS make the runs smaller while developing;
BENCH_SCIM_PART=provision or lists runs one half."""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

from bench import _support

ROOT = Path(__file__).resolve().parent
PROVISION_USERS = int(os.environ.get("BENCH_SCIM_USERS", "10000"))
LIST_USERS = int(os.environ.get("BENCH_SCIM_LIST_USERS", "100000"))
CLIENTS = 4
RUNS = 30
SECRET = "bench-secret-key"  # noqa: S105 - a throwaway local database

os.environ.setdefault("LMSWEB_INSTANCE", str(_support.DATA / "instance"))


def make_app(url: str, **config):
    from lmsweb import create_app

    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "SECRET_KEY": SECRET,
            "SCIM_RATE_LIMIT": "1000000 per minute",
            **config,
        }
    )


def migrate_and_token(
    url: str, name: str, locations: list[str] | None = None, groups: list[str] | None = None
) -> str:
    from flask_migrate import upgrade

    from lmsweb import scim_tokens
    from lmsweb.extensions import db
    from lmsweb.models import ScimToken

    app = make_app(url)
    with app.app_context():
        upgrade(directory=str(ROOT.parent / "migrations"))
        old = db.session.scalar(sa.select(ScimToken).where(ScimToken.name == name))
        if old is not None:
            old.name = f"{name} (replaced {time.time_ns()})"
            scim_tokens.revoke(old, None)
        found = scim_tokens.by_names(locations or [], groups or [])
        _, token = scim_tokens.create(name, None, *found)
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def user_body(n: int) -> str:
    email = f"scim.bench.{n}@bench.example.com"
    return json.dumps(
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": email,
            "externalId": f"B{n:07d}",
            "name": {"givenName": f"Given{n}", "familyName": f"Family{n % 997}"},
            "emails": [{"value": email, "type": "work", "primary": True}],
            "active": True,
        }
    )


def provision(url: str) -> None:
    token = migrate_and_token(url, "bench provisioning")
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET,
        "SCIM_RATE_LIMIT": "1000000 per minute",
    }
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "app:app",
        ],
        cwd=ROOT.parent,
        env=env,
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
        latencies: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()
        stamp = time.time_ns()

        def client(index: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for n in range(index, PROVISION_USERS, CLIENTS):
                started = time.perf_counter()
                conn.request("POST", "/scim/v2/Users", user_body(stamp + n), headers)
                response = conn.getresponse()
                response.read()
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    if response.status != 201:
                        failures.append(str(response.status))
            conn.close()

        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    p95 = statistics.quantiles(latencies, n=20)[-1]
    print(
        f"  {PROVISION_USERS:,} POST /Users with {CLIENTS} clients: {seconds:.1f} s, "
        f"{PROVISION_USERS / seconds:.0f} users/s, p50 {statistics.median(latencies):.1f} ms, "
        f"p95 {p95:.1f} ms, {len(failures)} failures",
        flush=True,
    )
    assert not failures, failures[:5]


SCOPE_LOCATIONS = ["Berlin", "Dublin"]
SCOPE_GROUPS = ["Finance"]


def prepare_list(url: str) -> tuple[str, str]:
    from lmsweb.extensions import db
    from lmsweb.models import User
    from lmsweb.seed import seed_demo

    token = migrate_and_token(url, "bench lists")
    app = make_app(url)
    with app.app_context():
        have = db.session.scalar(sa.select(sa.func.count()).select_from(User))
        if have < LIST_USERS:
            started = time.perf_counter()
            seed_demo(LIST_USERS - have)
            db.session.commit()
            seconds = time.perf_counter() - started
            print(f"  seeded {LIST_USERS - have:,} users in {seconds:.1f} s", flush=True)
        if "postgresql" in url:
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        else:
            # In a transaction of its own, as bench/users_list.py learned: through an
            # AUTOCOMMIT connection SQLite's statistics (sqlite_stat1) were never kept.
            db.session.execute(sa.text("ANALYZE"))
            db.session.commit()
        db.session.remove()
        db.engine.dispose()
    scoped = migrate_and_token(url, "bench lists, scoped", SCOPE_LOCATIONS, SCOPE_GROUPS)
    return token, scoped


def time_lists(url: str, token: str, label: str) -> None:
    from lmsweb.extensions import db
    from lmsweb.models import User

    app = make_app(url)
    with app.app_context():
        sample = db.session.scalar(sa.select(User).order_by(User.id.desc()).limit(1))
        email, employee_id = sample.email, sample.employee_id or "0000001"
        total = db.session.scalar(sa.select(sa.func.count()).select_from(User))
        engine = db.engine
    statements = [0]
    sa.event.listen(
        engine, "before_cursor_execute", lambda *a: statements.__setitem__(0, statements[0] + 1)
    )
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    filters = {
        "userName eq": f'userName eq "{email.upper()}"',
        "externalId eq": f'externalId eq "{employee_id}"',
        "emails co 'mar'": 'emails co "mar"',
        "userName sw 'm'": 'userName sw "m"',
        "active and familyName sw": 'active eq true and name.familyName sw "S"',
        "eq or eq": f'userName eq "{email}" or externalId eq "{employee_id}"',
        "externalId pr, page 50": "externalId pr",
    }
    print(f"  {total:,} users, {label}")
    print(
        f"  {'filter':<26} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>7} {'SQL/req':>8} {'matching':>9}"
    )
    for name, expression in filters.items():
        start = 4901 if "page 50" in name else 1
        path = f"/scim/v2/Users?filter={quote(expression)}&count=100&startIndex={start}"
        for _ in range(3):
            client.get(path, headers=headers)
        times, counts = [], []
        for _ in range(RUNS):
            statements[0] = 0
            started = time.perf_counter()
            response = client.get(path, headers=headers)
            times.append((time.perf_counter() - started) * 1000)
            counts.append(statements[0])
            assert response.status_code == 200, (path, response.text)
        matching = response.get_json()["totalResults"]
        p95 = statistics.quantiles(times, n=20)[-1]
        per_second = RUNS / (sum(times) / 1000)
        print(
            f"  {name:<26} {statistics.median(times):8.1f} {p95:8.1f} {per_second:7.1f} "
            f"{max(counts):8d} {matching:>9,}",
            flush=True,
        )
    with app.app_context():
        db.engine.dispose()


def main() -> None:
    if os.environ.get("BENCH_SCIM_PART", "provision") != "lists":
        fresh = _support.databases("scim_provision.sqlite3", "lmsweb_bench_scim", fresh=True)
        for engine, url in fresh:
            if engine == "sqlite":
                Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
            print(f"[{engine}] provisioning", flush=True)
            provision(url)
    if os.environ.get("BENCH_SCIM_PART", "lists") != "provision":
        for engine, url in _support.databases("scim_100k.sqlite3", "lmsweb_bench_scim_100k"):
            print(f"[{engine}] filtered lists", flush=True)
            token, scoped = prepare_list(url)
            time_lists(url, token, "organisation-wide token")
            time_lists(url, scoped, f"token scoped to {', '.join(SCOPE_LOCATIONS + SCOPE_GROUPS)}")


if __name__ == "__main__":
    main()
