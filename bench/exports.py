"""Every Excel export through its URL, at 100,000 users (and 1,000,000 with
`BENCH_EXPORT_SIZES=100000,1000000`; seeding a million users takes a minute or more, once).
SQLite, and PostgreSQL when TEST_DATABASE_URL names a server (BENCH_EXPORT_ENGINES picks).

For each export: time to first byte (the first chunk of the streamed response), total time,
CPU time, bytes, and the peak RSS during the request (each export runs in its own process,
and the peak is reset after sign-in), beside the RSS before it and the peak of anonymous
memory alone (SQLite's memory-mapped database pages count in RSS too), and for the users
export the CPU and peak RSS of the process that writes its records sheet beside it.
Exports: users (every status), dashboard training records (every record), audit log (one
event per user, added once), import errors (an import of IMPORT_MAX_ROWS rows that are all
errors; its rows live in the job, not in a table).
Figures are printed, never judged.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench import _support
from bench.bulk_export import ADMIN_EMAIL, ADMIN_PASSWORD, _database, app_for

EXPORTS = {
    "users": "/admin/users/export.xlsx?status=pending&status=active&status=archived",
    "records": "/admin/dashboard/records.xlsx",
    "audit": "/admin/audit/export.xlsx",
    "import errors": "/admin/users/import/{job}/errors.xlsx",
}
IMPORT_ROWS = 100_000


def _sizes() -> list[int]:
    raw = os.environ.get("BENCH_EXPORT_SIZES", "100000")
    return [int(n) for n in raw.replace(",", " ").split()]


def _postgresql(users: int) -> str:
    """The PostgreSQL database of `users` demo users on the TEST_DATABASE_URL server (built
    once: migrated, seeded, the bench administrator added, statistics gathered)."""
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from lmsweb.extensions import db
    from lmsweb.models import User
    from lmsweb.seed import seed_demo

    url = dict(_support.databases(f"users-{users}.sqlite3", f"lmsweb_bench_exports_{users}"))[
        "postgresql"
    ]
    app = app_for(url)
    with app.app_context():
        upgrade()
        if db.session.scalar(sa.select(sa.func.count()).select_from(User)) < users:
            db.session.close()
            seed_demo(users)
            _support.add_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
            db.session.commit()
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        db.session.remove()
        db.engine.dispose()
    return url


def _prepare(url: str) -> int:
    """Audit events (one per user) and an all-errors import job, added once; the job id."""
    from sqlalchemy import func, insert, select

    from lmsweb import sqlite_write_transaction
    from lmsweb.extensions import db
    from lmsweb.models import AuditEvent, ImportJob, User

    app = app_for(url)
    with app.app_context(), sqlite_write_transaction():
        job_id = db.session.scalar(
            select(ImportJob.id).where(ImportJob.filename == "bench-errors.xlsx")
        )
        if job_id is None:
            admin = db.session.scalar(select(User.id).where(User.email == ADMIN_EMAIL))
            users = db.session.scalar(select(func.count(User.id)))
            ids = db.session.scalars(select(User.id).order_by(User.id)).all()
            for start in range(0, users, 20_000):
                db.session.execute(
                    insert(AuditEvent),
                    [
                        {
                            "actor_id": admin,
                            "action": "user.approve",
                            "target_type": "user",
                            "target_id": ident,
                            "target_user_id": ident,
                            "summary": f"Approved user {ident}",
                            "details": {"before": "pending", "after": "active"},
                        }
                        for ident in ids[start : start + 20_000]
                    ],
                )
            fields = ["email", "first_name", "last_name", "user_id"]
            rows = [[f"bad{n}", f"First{n}", f"Last{n}", f"{n:07d}"] for n in range(IMPORT_ROWS)]
            reason = ["error", ["Not a valid email address."], None, []]
            job = ImportJob(
                created_by_id=admin,
                filename="bench-errors.xlsx",
                status="ready",
                data={"fields": fields, "rows": rows, "lines": list(range(2, IMPORT_ROWS + 2))},
                preview={"rows": [reason] * IMPORT_ROWS},
                result={},
                total_rows=IMPORT_ROWS,
            )
            db.session.add(job)
            db.session.commit()
            job_id = job.id
        db.engine.dispose()
    return job_id


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> float | None:
    """Start the peak RSS afresh (Linux: clear_refs 5), so the peak is the export's, not the
    start-up's or the sign-in's (a scrypt hash check takes 32 MB); the RSS at that point."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return _status_mb("VmRSS")


class _AnonPeak:
    """The peak of the process's anonymous memory (RssAnon), sampled every 20 ms: on SQLite
    the exports read the database through a memory map, whose pages (the OS's page cache,
    shared and dropped at will) count in VmHWM as file-backed RSS; the heap is RssAnon."""

    def __init__(self) -> None:
        self.peak = _status_mb("RssAnon")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _status_mb("RssAnon"))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, _status_mb("RssAnon"))


def _child(database: str, url: str) -> None:
    """One export through the test client, read chunk by chunk as a client would."""
    app = app_for(database)
    client = app.test_client()
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/login").text)[1]
    client.post(
        "/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token}
    )
    baseline = _reset_peak_rss()
    anon = _AnonPeak()
    started, cpu = time.perf_counter(), time.process_time()
    helpers_before = _helpers_cpu()
    response = client.get(url, buffered=False)
    first = None
    size = 0
    for chunk in response.response:
        if first is None:
            first = time.perf_counter() - started
        size += len(chunk)
    response.close()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    helpers = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss = _status_mb("VmHWM") if baseline is not None else _maxrss_mb()
    anon_mb = anon.stop()
    print(
        json.dumps(
            {
                "status": response.status_code,
                "ttfb": first,
                "seconds": seconds,
                "cpu": cpu,
                "bytes": size,
                "rss_mb": rss,
                "anon_mb": anon_mb,
                "baseline_mb": baseline,
                "helper_cpu": _helpers_cpu() - helpers_before,
                "helper_rss_mb": helpers.ru_maxrss / 1024,
            }
        )
    )


def _helpers_cpu() -> float:
    """CPU seconds of this process's ended children: an export's sheet processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_child(database: str, url: str) -> dict:
    output = subprocess.run(
        [sys.executable, "-m", "bench.exports", "--child", database, url],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def _engines() -> list[str]:
    """SQLite, and PostgreSQL when TEST_DATABASE_URL names a server; BENCH_EXPORT_ENGINES
    (e.g. "postgresql") picks among them."""
    found = ["sqlite"]
    if os.environ.get("TEST_DATABASE_URL", "").startswith(("postgres://", "postgresql")):
        found.append("postgresql")
    wanted = os.environ.get("BENCH_EXPORT_ENGINES", "").replace(",", " ").split()
    return [engine for engine in found if not wanted or engine in wanted]


def main() -> None:
    for engine in _engines():
        for users in _sizes():
            started = time.perf_counter()
            database = _postgresql(users) if engine == "postgresql" else _sqlite(users)
            job = _prepare(database)
            ready = time.perf_counter() - started
            print(f"{engine}, {users:,} users (database ready in {ready:.0f} s)")
            for name, url in EXPORTS.items():
                _print(name, _run_child(database, url.format(job=job)))


def _sqlite(users: int) -> str:
    return f"sqlite:///{_database(users)}"


def _print(name: str, figures: dict) -> None:
    print(
        f"  {name:<13} HTTP {figures['status']}: first byte {figures['ttfb']:6.3f} s, "
        f"total {figures['seconds']:6.1f} s (CPU {figures['cpu']:5.1f} s), "
        f"{figures['bytes'] / 1e6:6.1f} MB, peak RSS {figures['rss_mb']:4.0f} MB "
        f"(anonymous {figures['anon_mb']:4.0f} MB)"
        + (
            f"; its sheet process: CPU {figures['helper_cpu']:.1f} s, "
            f"peak RSS {figures['helper_rss_mb']:.0f} MB"
            if figures["helper_cpu"]
            else ""
        )
        + (
            f" (RSS before the request {figures['baseline_mb']:.0f} MB)"
            if figures["baseline_mb"] is not None
            else ""
        )
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2], sys.argv[3])
    else:
        main()
