"""Background imports, run by the worker (`flask lms worker`), never in a web process.

A job the page left for the background is `previewing` or `applying`. Any worker on any
instance may claim it with a lease (one conditional UPDATE: of two workers, one wins); the
lease is renewed as the preview progresses. A worker that crashed leaves its lease to run
out, and the next worker starts the phase again: a preview is recomputed, an apply (one
transaction, rolled back by the crash) is made from the start.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from .database import sqlite_write_transaction
from .domain_error import DomainError
from .extensions import db
from .models import ImportJob, User, utcnow
from .roster_import import apply, preview_job
from .roster_import.bulk import gc_paused

log = logging.getLogger("lmsweb.import_jobs")

LEASE = timedelta(minutes=10)
RUNNING = ("previewing", "applying")


def _claimable(now: datetime):
    return (
        ImportJob.status.in_(RUNNING),
        or_(ImportJob.lease_until.is_(None), ImportJob.lease_until < now),
    )


def claim_next(now: datetime | None = None) -> tuple[int, datetime] | None:
    """Take the oldest unleased running job: (job id, this worker's lease) or None."""
    now = now or utcnow()
    db.session.rollback()
    with sqlite_write_transaction():
        for job_id in db.session.scalars(
            select(ImportJob.id).where(*_claimable(now)).order_by(ImportJob.id).limit(5)
        ):
            lease = now + LEASE
            claimed = db.session.execute(
                update(ImportJob)
                .where(ImportJob.id == job_id, *_claimable(now))
                .values(lease_until=lease)
                .execution_options(synchronize_session=False)
            ).rowcount
            if claimed == 1:
                db.session.commit()
                return job_id, lease
        db.session.rollback()
    return None


def _progress(job_id: int, processed: int) -> None:
    """Record progress and renew the lease, committed (the page polls it)."""
    db.session.execute(
        update(ImportJob)
        .where(ImportJob.id == job_id)
        .values(processed_rows=processed, updated_at=utcnow(), lease_until=utcnow() + LEASE)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def run_job(job_id: int) -> None:
    """Run the phase the job is in (preview or apply), then release it. Python's cycle
    collector stays off throughout (`gc_paused`), loading the job's rows included: 100,000
    rows decoded from JSON are 700,000 objects it would walk again and again."""
    with sqlite_write_transaction(), gc_paused():
        try:
            job = db.session.get(ImportJob, job_id)
            if job.status == "previewing":
                preview_job(job, progress=lambda n: _progress(job_id, n))
            else:
                actor = db.session.get(User, job.created_by_id) if job.created_by_id else None
                apply(job, actor)
            job.lease_until = None
            db.session.commit()
        except Exception as exc:
            db.session.rollback()
            if not isinstance(exc, DomainError):
                log.exception("Import job %s failed", job_id)
            message = (
                exc.message
                if isinstance(exc, DomainError)
                else "The import failed; nothing was changed."
            )
            db.session.execute(
                update(ImportJob)
                .where(ImportJob.id == job_id)
                .values(
                    status="failed",
                    error=message,
                    finished_at=utcnow(),
                    updated_at=utcnow(),
                    lease_until=None,
                )
            )
            db.session.commit()


def run_pending(now: datetime | None = None) -> int:
    """Run every claimable job, one after another; returns how many ran."""
    ran = 0
    while (claimed := claim_next(now)) is not None:
        run_job(claimed[0])
        ran += 1
    return ran
