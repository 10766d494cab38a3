"""Users: Export Users to Excel (the active users, or the list's filtered view)."""

from __future__ import annotations

import tempfile

from flask import request, send_file
from sqlalchemy import select

from ...models import User, utcnow
from ...roster_export import file_name, write_users
from ...user_queries import filtered_users, parse_filters
from . import bp

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@bp.route("/export.xlsx")
def export_users():
    """Download the users as .xlsx: the active ones by default, else the filtered view."""
    ids = [int(v) for v in request.args.getlist("user_ids") if v.isdigit()]
    if ids:
        users = select(User).where(User.id.in_(ids))
    else:
        filters = parse_filters(request.args)
        if "status" not in request.args:
            filters.status = ["active"]
        users = filtered_users(filters)
    # Spooled to a temporary file (write-only openpyxl streams rows to disk as well), so a
    # 100,000-user export never sits in memory.
    output = tempfile.TemporaryFile()  # noqa: SIM115 (send_file closes it)
    write_users(output, users)
    output.seek(0)
    return send_file(
        output,
        mimetype=XLSX,
        as_attachment=True,
        download_name=file_name(utcnow().date()),
        max_age=0,
    )
