"""Roster import, jobs: an upload held as an ImportJob, previewed and applied here or, for
a large file, by the worker (lmsweb/import_jobs.py)."""

from __future__ import annotations

from ..extensions import db
from ..models import ImportJob, utcnow
from .planning import plan_import
from .reading import Table

# Above this many rows, preview and apply run as a background job.
BACKGROUND_ROWS = 2000


def new_job(
    table: Table, filename: str, created_by_id: int | None, create_missing: bool = False
) -> ImportJob:
    """An ImportJob holding an uploaded table, added to the session and flushed (so it has
    an id); its preview comes from preview_job, here or in the worker (import_jobs)."""
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


def error_rows(job: ImportJob):
    """(row number, cells..., reason) for every row the preview marked as an error."""
    data = job.data
    for row, result, line in zip(
        data["rows"], job.preview.get("rows", []), data["lines"], strict=False
    ):
        if result[0] == "error":
            yield [line, *row, " ".join(result[1])]
