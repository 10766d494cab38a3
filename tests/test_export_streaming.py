"""Every export streams: the response starts before the rows are read, the workbook re-opens
in openpyxl with every row, and Python's peak memory does not grow with the number of rows."""

from __future__ import annotations

import io
import tracemalloc
from datetime import date, datetime

from openpyxl import load_workbook
from sqlalchemy import func, insert, select

from lmsweb.extensions import db
from lmsweb.models import AuditEvent, Course, CourseAssignment, ImportJob, User
from tests.conftest import count

EXPORTS = {
    "users": "/admin/users/export.xlsx?status=pending&status=active&status=archived",
    "records": "/admin/dashboard/records.xlsx",
    "audit": "/admin/audit/export.xlsx",
}
# Python's peak while 6,000 more rows go out may exceed the peak for the first 2,000 by no
# more than this: holding those rows (a list of them, openpyxl's normal mode) takes ~1 KB
# each, 6 MB. What does vary is the database batch in flight (yield_per rows) and
# allocator noise, under a megabyte in every run measured.
GROWTH_LIMIT = 2 * 1024 * 1024
PEAK_LIMIT = 10 * 1024 * 1024


def add_rows(app, admin_id: int, users: int) -> None:
    """`users` users, each with one training record and one audit event (Core inserts)."""
    with app.app_context():
        course = db.session.scalar(select(Course).where(Course.code == "STREAM"))
        if course is None:
            course = Course(code="STREAM", title="Streaming", seats_total=0)
            db.session.add(course)
            db.session.flush()
        start = db.session.scalar(select(func.max(User.id))) + 1
        ids = range(start, start + users)
        db.session.execute(
            insert(User),
            [
                {
                    "id": n,
                    "email": f"stream{n}@example.com",
                    "first_name": f"=cmd{n}" if n % 100 == 0 else f"First{n}",
                    "last_name": f"Last{n:07d}",
                    "role": "learner",
                    "status": "active",
                    "approved_at": datetime(2026, 1, 2, 3, 4),
                }
                for n in ids
            ],
        )
        db.session.execute(
            insert(CourseAssignment),
            [
                {
                    "user_id": n,
                    "course_id": course.id,
                    "state": "assigned",
                    "due_date": date(2030, 1, 1),
                    "assigned_at": datetime(2026, 1, 2),
                }
                for n in ids
            ],
        )
        db.session.execute(
            insert(AuditEvent),
            [
                {
                    "actor_id": admin_id,
                    "action": "user.approve",
                    "target_type": "user",
                    "target_id": n,
                    "target_user_id": n,
                    "summary": f"Approved {n}",
                    "details": {"n": n},
                }
                for n in ids
            ],
        )
        db.session.commit()


def download(client, url: str) -> tuple[bytes, int]:
    """The body, read chunk by chunk, and Python's peak memory meanwhile."""
    tracemalloc.start()
    try:
        response = client.get(url, buffered=False)
        assert response.status_code == 200
        assert response.is_streamed and "Content-Length" not in response.headers
        chunks = iter(response.response)
        first = next(chunks)
        # The zip's first member is written before any row is read.
        assert first.startswith(b"PK\x03\x04")
        body = first + b"".join(chunks)
        response.close()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return body, peak


def sheet_rows(data: bytes) -> list[tuple]:
    return list(load_workbook(io.BytesIO(data)).active.iter_rows(values_only=True))


def test_exports_stream_every_row_in_bounded_memory(app, admin, admin_client):
    add_rows(app, admin.id, 2000)
    small = {name: download(admin_client, url)[1] for name, url in EXPORTS.items()}
    add_rows(app, admin.id, 6000)
    for name, url in EXPORTS.items():
        events = count(app, AuditEvent)
        data, peak = download(admin_client, url)
        assert peak - small[name] < GROWTH_LIMIT, (name, small[name], peak)
        assert peak < PEAK_LIMIT, (name, peak)
        rows = sheet_rows(data)
        if name == "users":
            assert len(rows) == 1 + 8001  # the header, the streamed users and the admin
            row = next(r for r in rows if r[2] == "stream100@example.com")
            assert row[0] == "=cmd100" and row[8] == datetime(2026, 1, 2)
        elif name == "records":
            assert len(rows) == 1 + 8000
            assert rows[1][6] == "STREAM" and rows[1][10] == datetime(2030, 1, 1)
        else:
            # The export's own event is recorded before it runs, and left out of it.
            assert len(rows) == 1 + events
            assert rows[1][1] == admin.email and rows[1][2] == "user.approve"
    assert count(app, AuditEvent, AuditEvent.action == "audit.export") == 2


def test_the_formula_looking_text_stays_text_in_a_streamed_export(app, admin, admin_client):
    add_rows(app, admin.id, 100)
    data, _peak = download(admin_client, EXPORTS["users"])
    sheet = load_workbook(io.BytesIO(data)).active
    cell = next(c for c in sheet["A"] if c.value == "=cmd100")
    assert cell.data_type == "s" and cell.quotePrefix


def test_the_import_errors_export_streams_its_rows(app, admin, admin_client):
    with app.app_context():
        job = ImportJob(
            created_by_id=admin.id,
            filename='roster\r\n"x".xlsx',
            status="ready",
            data={
                "fields": ["email", "first_name"],
                "rows": [[f"bad{n}", f"=F{n}"] for n in range(3000)],
                "lines": list(range(2, 3002)),
            },
            preview={"rows": [["error", ["Not an email."], None, []]] * 3000},
            result={},
            total_rows=3000,
        )
        db.session.add(job)
        db.session.commit()
        job_id = job.id
    response = admin_client.get(f"/admin/users/import/{job_id}/errors.xlsx")
    assert response.status_code == 200
    assert 'filename="roster' in response.headers["Content-Disposition"]
    assert "\n" not in response.headers["Content-Disposition"]
    rows = sheet_rows(response.data)
    assert rows[0] == ("Row", "Email", "First name", "Reason")
    assert len(rows) == 3001
    assert rows[1] == (2, "bad0", "=F0", "Not an email.")


def add_error_job(app, admin_id: int, rows: int) -> int:
    """An import job of `rows` rows, every other one an error."""
    with app.app_context():
        job = ImportJob(
            created_by_id=admin_id,
            filename="big.xlsx",
            status="ready",
            data={
                "fields": ["email", "first_name", "last_name"],
                "rows": [[f"bad{n}", f"First{n}", f"Last{n}"] for n in range(rows)],
                "lines": list(range(2, rows + 2)),
            },
            preview={
                "rows": [
                    ["error", ["Not an email.", "Twice."], None, []]
                    if n % 2 == 0
                    else ["create", [], None, []]
                    for n in range(rows)
                ]
            },
            result={},
            total_rows=rows,
        )
        db.session.add(job)
        db.session.commit()
        return job.id


def test_the_import_errors_export_does_not_decode_the_job(app, admin, admin_client):
    """The job's rows are decoded one at a time as they are written: Python's peak for a
    job ten times larger grows by the job's JSON text (~85 bytes a row), not by its decoded
    rows and preview (~650 bytes a row, 13 MB here, which the export used to build first)."""
    small = add_error_job(app, admin.id, 2000)
    large = add_error_job(app, admin.id, 20000)
    _data, small_peak = download(admin_client, f"/admin/users/import/{small}/errors.xlsx")
    data, peak = download(admin_client, f"/admin/users/import/{large}/errors.xlsx")
    assert peak - small_peak < 3 * 1024 * 1024, (small_peak, peak)
    rows = sheet_rows(data)
    assert rows[0] == ("Row", "Email", "First name", "Last name", "Reason")
    assert len(rows) == 1 + 10000
    assert rows[1] == (2, "bad0", "First0", "Last0", "Not an email. Twice.")
    assert rows[-1] == (20000, "bad19998", "First19998", "Last19998", "Not an email. Twice.")


def test_the_import_errors_export_of_a_job_without_preview_is_refused(app, admin, admin_client):
    with app.app_context():
        job = ImportJob(
            created_by_id=admin.id,
            filename="waiting.xlsx",
            status="previewing",
            data={"fields": ["email"], "rows": [["a@example.com"]], "lines": [2]},
            preview={},
            result={},
            total_rows=1,
        )
        db.session.add(job)
        db.session.commit()
        job_id = job.id
    response = admin_client.get(f"/admin/users/import/{job_id}/errors.xlsx")
    assert response.status_code == 409
    assert admin_client.get("/admin/users/import/999999/errors.xlsx").status_code == 404
