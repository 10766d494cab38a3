"""Bench-only WSGI app: lmsweb plus one route that renders the Users list partial for
the same 50 rows from memory (no database), the baseline bench/users_list.py compares
the real list partial against. Never part of lmsweb itself.

    DATABASE_URL=... gunicorn --workers 2 bench.users_list_wsgi:app
"""

from __future__ import annotations

from flask import render_template
from werkzeug.datastructures import MultiDict

from lmsweb import create_app
from lmsweb.blueprints.users.listing import list_context
from lmsweb.security import public
from lmsweb.user_queries import UserFilters

app = create_app()

with app.test_request_context("/admin/users", headers={"HX-Request": "true"}):
    # Loaded once at start-up (rows, groups, location, count), then served from memory.
    _context = list_context(UserFilters.from_args(MultiDict()))


@app.route("/bench/users-rows-no-db")
@public
def users_rows_no_db():
    """The list partial for the first page, rendered from rows held in memory."""
    return render_template("users/_table.html", oob_filters=False, **_context)
