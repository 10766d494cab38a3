"""Roster import, jobs: an upload held as an ImportJob, previewed and applied here or in a
background thread."""

from __future__ import annotations

import threading

from flask import Flask
from sqlalchemy import update

from ..database import sqlite_write_transaction
from ..domain_error import DomainError
from ..extensions import db
from ..models import ImportJob, User, utcnow
from .applying import apply
from .planning import plan_import
from .reading import Table

# Above this many rows, preview and apply run as a background job.
BACKGROUND_ROWS = 2000


_threads: dict[int, threading.Thread] = {}


def new_job(
    table: Table, filename: str, created_by_id: int | None, create_missing: bool = False
) -> ImportJob:
    """An ImportJob holding an uploaded table, added to the session and flushed (so it has
    an id); its preview comes from preview_job, here or in a background thread."""
    job = ImportJob(
        created_by_id=created_by_id,
        filename=filename,
        status="previewing",
        create_missing=create_missing,
        data=table.as_data(),
        preview={},
        result={},
        total_rows=len(table.rows),
        processed_rows=0,
    )
    db.session.add(job)
    db.session.flush()
    return job


def preview_job(job: ImportJob, progress=None) -> None:
    plan = plan_import(job.data, job.create_missing, job.created_by_id, progress=progress)
    job.preview = plan.preview()
    job.status = "ready"
    job.processed_rows = job.total_rows
    job.updated_at = utcnow()


def _set_progress(job_id: int, processed: int) -> None:
    db.session.execute(
        update(ImportJob)
        .where(ImportJob.id == job_id)
        .values(processed_rows=processed, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _run(app: Flask, job_id: int, phase: str) -> None:
    with app.app_context(), sqlite_write_transaction():
        try:
            job = db.session.get(ImportJob, job_id)
            if phase == "preview":
                preview_job(job, progress=lambda n: _set_progress(job_id, n))
            else:
                actor = db.session.get(User, job.created_by_id) if job.created_by_id else None
                apply(job, actor)
            db.session.commit()
        except Exception as exc:
            db.session.rollback()
            if not isinstance(exc, DomainError):
                app.logger.exception("Import job %s failed", job_id)
            message = (
                exc.message
                if isinstance(exc, DomainError)
                else "The import failed; nothing was changed."
            )
            db.session.execute(
                update(ImportJob)
                .where(ImportJob.id == job_id)
                .values(status="failed", error=message, finished_at=utcnow(), updated_at=utcnow())
            )
            db.session.commit()
        finally:
            db.session.remove()
            _threads.pop(job_id, None)


def start_background(app: Flask, job_id: int, phase: str) -> threading.Thread:
    """Run the preview or apply phase of a job in a thread with its own app context."""
    thread = threading.Thread(
        target=_run, args=(app, job_id, phase), name=f"import-{job_id}", daemon=True
    )
    _threads[job_id] = thread
    thread.start()
    return thread


def wait_for(job_id: int, timeout: float | None = None) -> None:
    """Block until a background job of this process finishes (tests, benchmarks)."""
    thread = _threads.get(job_id)
    if thread is not None:
        thread.join(timeout)


def error_rows(job: ImportJob):
    """(row number, cells..., reason) for every row the preview marked as an error."""
    data = job.data
    for row, result, line in zip(
        data["rows"], job.preview.get("rows", []), data["lines"], strict=False
    ):
        if result[0] == "error":
            yield [line, *row, " ".join(result[1])]
