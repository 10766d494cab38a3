"""Users: Export Users to Excel (the active users, or the list's filtered view)."""

from __future__ import annotations

import tempfile

from flask import Response, request
from sqlalchemy import select

from ...models import User, utcnow
from ...roster_export import file_name, write_users
from ...user_queries import STATUS, UserFilters, filtered_users
from . import bp

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@bp.route("/export.xlsx")
def export_users():
    """Download the users as .xlsx: the active ones by default, else the filtered view."""
    ids = [int(v) for v in request.args.getlist("user_ids") if v.isdigit()]
    if ids:
        users = select(User).where(User.id.in_(ids))
    else:
        filters = UserFilters.from_args(request.args)
        if STATUS not in request.args:
            filters.status = ["active"]
        users = filtered_users(filters)
    # Written to a temporary file (write-only openpyxl streams rows to disk as well), then
    # sent in chunks, so a 100,000-user export never sits in memory.
    output = tempfile.TemporaryFile()  # noqa: SIM115 (closed by _chunks once sent)
    write_users(output, users)
    size = output.tell()
    output.seek(0)
    response = Response(_chunks(output), mimetype=XLSX)
    response.headers["Content-Length"] = str(size)
    response.headers["Content-Disposition"] = f'attachment; filename="{file_name(utcnow().date())}"'
    response.call_on_close(output.close)
    return response


def _chunks(output, size: int = 64 * 1024):
    try:
        while block := output.read(size):
            yield block
    finally:
        output.close()
