"""Background imports are claimed by workers with leases: one worker per job, and a job
whose worker died is taken over once its lease has run out."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import event
from sqlalchemy.orm.attributes import flag_modified

from lmsweb import import_jobs
from lmsweb.blueprints.users import imports
from lmsweb.extensions import db
from lmsweb.models import ImportJob, User, utcnow
from lmsweb.roster_import import jobs
from tests.conftest import HX, count, get
from tests.import_support import loaded_job


@pytest.fixture(autouse=True)
def _own_dev_mailbox(app, tmp_path):
    """Mail drained without MAIL_SERVER lands in this test's own instance folder, not in the
    session's (where the outbox tests count the messages)."""
    app.instance_path = str(tmp_path)


def job(app, admin, rows=3, rows_last=False):
    """A job waiting for its preview. `rows_last`: its document's members in the order the
    upload writes them now (Table.as_data); else as it wrote them before (rows first)."""
    fields = ["email", "first_name", "last_name"]
    cells = [[f"p{n}@example.com", "P", str(n)] for n in range(rows)]
    lines = list(range(2, rows + 2))
    if rows_last:
        data = {"fields": fields, "lines": lines, "ignored": [], "rows": cells}
    else:
        data = {"fields": fields, "rows": cells, "lines": lines}
    with app.app_context():
        record = ImportJob(
            created_by_id=admin.id,
            filename="people.csv",
            status="previewing",
            data=data,
            preview={},
            result={},
            total_rows=rows,
            processed_rows=0,
        )
        db.session.add(record)
        db.session.commit()
        return record.id


def test_a_job_is_claimed_once_and_a_crashed_workers_job_is_resumed(app, admin):
    ident = job(app, admin)
    with app.app_context():
        first = import_jobs.claim_next()
        assert first is not None and first[0] == ident
        assert import_jobs.claim_next() is None  # leased: a second worker gets nothing
        # The first worker dies here. Once the lease has run out another worker takes over.
        later = utcnow() + import_jobs.LEASE + timedelta(seconds=1)
        resumed = import_jobs.claim_next(later)
        assert resumed is not None and resumed[0] == ident
        import_jobs.run_job(ident)
        db.session.remove()
    done = loaded_job(app, ident)
    assert done.status == "ready" and done.lease_until is None
    assert done.preview["totals"]["create"] == 3


def test_the_worker_runs_preview_then_apply(app, admin, runner):
    ident = job(app, admin)
    assert "1 background jobs run" in runner.invoke(args=["lms", "worker", "--once"]).output
    with app.app_context():
        db.session.get(ImportJob, ident).status = "applying"
        db.session.commit()
    assert "1 background jobs run" in runner.invoke(args=["lms", "worker", "--once"]).output
    assert get(app, ImportJob, ident).status == "done"
    assert count(app, User, User.email.like("p%@example.com")) == 3
    assert "0 background jobs run" in runner.invoke(args=["lms", "worker", "--once"]).output


_DOCUMENT = re.compile(r"(?<!CAST\()import_jobs\.(data|preview|result)\b")


def _page_and_statements(app, client, ident):
    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def listener(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    try:
        page = client.get(f"/admin/users/import/{ident}", headers=HX)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert page.status_code == 200 and seen
    return page, seen


def test_a_running_job_is_polled_without_reading_its_rows_or_verdicts(app, admin_client, admin):
    """The page polls a running job every second: each poll of a 100,000-row job loaded its
    rows and verdicts (13 MB of JSON), 0.2-0.75 s of CPU beside the worker importing."""
    ident = job(app, admin, rows=20)
    page, seen = _page_and_statements(app, admin_client, ident)
    assert "0 of 20 rows checked" in page.text
    assert not [s for s in seen if _DOCUMENT.search(s) or "CAST(import_jobs" in s]
    with app.app_context():
        import_jobs.run_job(ident)
        db.session.get(ImportJob, ident).status = "applying"
        db.session.commit()
    page, seen = _page_and_statements(app, admin_client, ident)
    assert "Importing 20 rows" in page.text
    assert not [s for s in seen if _DOCUMENT.search(s) or "CAST(import_jobs" in s]


class _CountingDecoder(json.JSONDecoder):
    def __init__(self):
        super().__init__()
        self.values = 0

    def raw_decode(self, s, idx=0):
        self.values += 1
        return super().raw_decode(s, idx)


def test_a_previewed_job_shows_its_first_rows_decoding_no_more(
    app, admin_client, admin, monkeypatch
):
    rows = imports.PREVIEW_ROWS * 5
    ident = job(app, admin, rows=rows, rows_last=True)
    with app.app_context():
        import_jobs.run_job(ident)
    decoder = _CountingDecoder()
    monkeypatch.setattr(jobs, "_DECODER", decoder)
    page, seen = _page_and_statements(app, admin_client, ident)
    assert f"<strong>{rows:,}</strong> to add" in page.text
    shown = re.findall(r"p(\d+)@example\.com", page.text)
    assert shown == [str(n) for n in range(imports.PREVIEW_ROWS)]
    # Read as text, and decoded as far as the rows shown: their cells, verdicts and row
    # numbers, and the preview's few other members.
    assert not [s for s in seen if _DOCUMENT.search(s)]
    assert 3 * imports.PREVIEW_ROWS <= decoder.values <= 3 * imports.PREVIEW_ROWS + 20


def test_a_job_stored_with_its_rows_first_shows_its_preview_and_errors(app, admin_client, admin):
    """Jobs written before the rows were stored last read as before, stepping over them."""
    ident = job(app, admin, rows=5)
    with app.app_context():
        import_jobs.run_job(ident)
        stored = db.session.get(ImportJob, ident)
        stored.preview = {"rows": stored.preview["rows"], **stored.preview}  # rows first
        stored.preview["rows"][1] = ["error", ["Unknown location “Mars”."], None, []]
        stored.preview["totals"] = {**stored.preview["totals"], "create": 4, "error": 1}
        flag_modified(stored, "preview")
        db.session.commit()
    page = admin_client.get(f"/admin/users/import/{ident}", headers=HX)
    assert "<strong>4</strong> to add" in page.text and "Unknown location “Mars”." in page.text
    assert re.findall(r"p(\d+)@example\.com", page.text) == ["0", "1", "2", "3", "4"]
    errors = admin_client.get(f"/admin/users/import/{ident}/errors.xlsx")
    sheet = load_workbook(io.BytesIO(errors.data)).active
    assert [list(r) for r in sheet.iter_rows(values_only=True)][1][:2] == [3, "p1@example.com"]
