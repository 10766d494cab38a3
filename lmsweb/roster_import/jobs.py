"""Roster import, jobs: an upload held as an ImportJob, previewed and applied here or, for
a large file, by the worker (lmsweb/import_jobs.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Text, cast, select

from ..extensions import db
from ..models import ImportJob, utcnow
from .bulk import gc_paused
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


@gc_paused()
def preview_job(job: ImportJob, progress=None) -> None:
    # Read before planning: `progress` commits, which expires the job, and reading any of
    # its columns afterwards would load (and decode) all its rows again.
    total_rows = job.total_rows
    plan = plan_import(job.data, job.create_missing, job.created_by_id, progress=progress)
    job.preview = plan.preview()
    job.status = "ready"
    job.processed_rows = total_rows
    job.updated_at = utcnow()


_DECODER = json.JSONDecoder()
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_NUMBERS = re.compile(r"\[[-+0-9.eE, \t\n\r]*\]")


def _json_elements(text: str, pos: int = 0) -> Iterator[Any]:
    """The elements of the JSON array starting at `pos` in `text`, decoded one at a time:
    the array is never built, so memory holds the text and one element. Returns (as the
    generator's value) the position after the array."""
    space = _JSON_SPACE.match
    pos = space(text, pos).end()
    if text[pos : pos + 1] != "[":
        raise ValueError("not a JSON array")
    pos = space(text, pos + 1).end()
    if text[pos : pos + 1] == "]":
        return pos + 1
    while True:
        value, pos = _DECODER.raw_decode(text, pos)
        yield value
        pos = space(text, pos).end()
        if text[pos : pos + 1] == ",":
            pos = space(text, pos + 1).end()
        elif text[pos : pos + 1] == "]":
            return pos + 1
        else:
            raise ValueError("damaged JSON array")


def _skip(text: str, pos: int) -> int:
    """The position after the JSON value at `pos`; an array is stepped over element by
    element rather than decoded whole."""
    if text[pos : pos + 1] != "[":
        return _DECODER.raw_decode(text, pos)[1]
    if numbers := _NUMBERS.match(text, pos):  # the row numbers: one match, not 100,000 values
        return numbers.end()
    elements = _json_elements(text, pos)
    while True:
        try:
            next(elements)
        except StopIteration as end:
            return end.value


def _members(text: str, wanted: set[str]) -> dict[str, int]:
    """Where each top-level member's value starts in the text of a JSON object, as far as
    the last of the `wanted` ones: the members after it are not stepped over."""
    space = _JSON_SPACE.match
    pos = space(text, 0).end()
    if text[pos : pos + 1] != "{":
        raise ValueError("not a JSON object")
    pos = space(text, pos + 1).end()
    found: dict[str, int] = {}
    while text[pos : pos + 1] != "}":
        key, pos = _DECODER.raw_decode(text, pos)
        pos = space(text, pos).end()
        if text[pos : pos + 1] != ":":
            raise ValueError("damaged JSON object")
        pos = space(text, pos + 1).end()
        found[key] = pos
        if wanted <= found.keys():
            break
        pos = space(text, _skip(text, pos)).end()
        if text[pos : pos + 1] == ",":
            pos = space(text, pos + 1).end()
    return found


_SUMMARY = {"totals", "licenses", "new_locations", "new_groups"}


def error_texts(
    job_id: int, summary: bool = False
) -> tuple[list[str], tuple[str, dict, str, dict]] | None:
    """A job's fields, and the texts of its data and preview with where their members start
    (None when it has no preview yet): read as text, never decoded whole. (Decoding the
    job took seconds and ~90 MB for 100,000 rows; so did the database's own JSON
    functions, which parse the whole document for each member asked.) `summary`: where the
    preview's totals, licenses and new names start too."""
    found = db.session.execute(
        select(cast(ImportJob.data, Text), cast(ImportJob.preview, Text)).where(
            ImportJob.id == job_id
        )
    ).first()
    if found is None or not found[0] or not found[1]:
        return None
    data, preview = found
    data_at = _members(data, {"fields", "rows", "lines"})
    preview_at = _members(preview, {"rows", *_SUMMARY} if summary else {"rows"})
    if "rows" not in preview_at or not {"fields", "rows", "lines"} <= data_at.keys():
        return None
    fields = _DECODER.raw_decode(data, data_at["fields"])[0]
    return fields, (data, data_at, preview, preview_at)


def preview_view(job_id: int, limit: int) -> tuple[dict[str, Any], list[tuple]] | None:
    """What a previewed job's page shows, from the texts of error_texts: the preview's
    members but its rows (totals, licenses, the names it would create), and the first
    `limit` rows worth a look (all but the unchanged) as (row number, cells by field,
    verdict). None when it has no preview yet. The page of a 100,000-row preview decoded
    every row and verdict (0.78 s of CPU, the cycle collector walking them); now only the
    rows shown are, and the members before the rows (stored last)."""
    found = error_texts(job_id, summary=True)
    if found is None:
        return None
    fields, (data, data_at, preview, preview_at) = found
    summary = {
        key: _DECODER.raw_decode(preview, preview_at[key])[0]
        for key in _SUMMARY
        if key in preview_at
    }
    shown: list[tuple] = []
    rows = zip(
        _json_elements(data, data_at["lines"]),
        _json_elements(data, data_at["rows"]),
        _json_elements(preview, preview_at["rows"]),
        strict=False,
    )
    while len(shown) < limit and (row := next(rows, None)) is not None:
        line, cells, result = row
        if result[0] != "unchanged":
            shown.append((line, dict(zip(fields, cells, strict=False)), result))
    return summary, shown


def error_rows(texts: tuple[str, dict, str, dict]) -> Iterator[list]:
    """(row number, cells..., reason) for every row the preview marked as an error, decoded
    one row at a time from the texts of error_texts: the first row goes out at once and
    memory does not hold 100,000 decoded rows."""
    data, data_at, preview, preview_at = texts
    for row, result, line in zip(
        _json_elements(data, data_at["rows"]),
        _json_elements(preview, preview_at["rows"]),
        _json_elements(data, data_at["lines"]),
        strict=False,
    ):
        if result[0] == "error":
            yield [line, *row, " ".join(result[1])]
