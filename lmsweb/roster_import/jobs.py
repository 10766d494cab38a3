"""Roster import, jobs: an upload held as an ImportJob, previewed and applied here or, for
a large file, by the worker (lmsweb/import_jobs.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from sqlalchemy import String, Text, cast, func, literal, select

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


def _json_elements(text: str) -> Iterator[Any]:
    """The elements of a JSON array, decoded one at a time from its text: the array is
    never built, so memory holds the text and one element."""
    decoder = json.JSONDecoder()
    space = _JSON_SPACE.match
    pos = space(text, 0).end()
    if text[pos : pos + 1] != "[":
        raise ValueError("not a JSON array")
    pos = space(text, pos + 1).end()
    if text[pos : pos + 1] == "]":
        return
    while True:
        value, pos = decoder.raw_decode(text, pos)
        yield value
        pos = space(text, pos).end()
        if text[pos : pos + 1] == ",":
            pos = space(text, pos + 1).end()
        elif text[pos : pos + 1] == "]":
            return
        else:
            raise ValueError("damaged JSON array")


_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def _member_text(column, key: str):
    """One member of a JSON column as JSON text, extracted by the database (so the job's
    whole document is never decoded in Python)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return cast(column.op("->")(literal(key, String)), Text)
    return func.json_extract(column, f"$.{key}")


def error_texts(job_id: int) -> tuple[list[str], tuple[str, str, str]] | None:
    """A job's fields, and the JSON texts of its rows, line numbers and preview results
    (None when it has no preview yet), read without decoding the job's documents."""
    found = db.session.execute(
        select(
            _member_text(ImportJob.data, "fields"),
            _member_text(ImportJob.data, "rows"),
            _member_text(ImportJob.data, "lines"),
            _member_text(ImportJob.preview, "rows"),
        ).where(ImportJob.id == job_id)
    ).first()
    if found is None or found[3] is None or found[0] is None:
        return None
    return json.loads(found[0]), (found[1], found[2], found[3])


def error_rows(texts: tuple[str, str, str]) -> Iterator[list]:
    """(row number, cells..., reason) for every row the preview marked as an error, decoded
    one row at a time from the texts of error_texts: the first row goes out at once and
    memory does not hold 100,000 decoded rows."""
    rows, lines, results = texts
    for row, result, line in zip(
        _json_elements(rows), _json_elements(results), _json_elements(lines), strict=False
    ):
        if result[0] == "error":
            yield [line, *row, " ".join(result[1])]
