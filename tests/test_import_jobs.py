"""Background imports are claimed by workers with leases: one worker per job, and a job
whose worker died is taken over once its lease has run out."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lmsweb import import_jobs
from lmsweb.extensions import db
from lmsweb.models import ImportJob, User, utcnow
from tests.conftest import count, get


@pytest.fixture(autouse=True)
def _own_dev_mailbox(app, tmp_path):
    """Mail drained without MAIL_SERVER lands in this test's own instance folder, not in the
    session's (where the outbox tests count the messages)."""
    app.instance_path = str(tmp_path)


def job(app, admin, rows=3):
    with app.app_context():
        record = ImportJob(
            created_by_id=admin.id,
            filename="people.csv",
            status="previewing",
            data={
                "fields": ["email", "first_name", "last_name"],
                "rows": [[f"p{n}@example.com", "P", str(n)] for n in range(rows)],
                "lines": list(range(2, rows + 2)),
            },
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
    done = get(app, ImportJob, ident)
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
