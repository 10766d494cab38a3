"""The 50-row Users list partial's render alone, profiled: CPU per render (median of 7×30,
after 30 warm-ups) and a cProfile of 100 renders summed by kind of work (the compiled
templates, Jinja's runtime, escaping, URL building, ...). The page's rows are read once,
so the figures are the render's, not the database's.

On `users_list`'s 100,000-user SQLite database (`users_list.prepare`); PROFILE_ENGINE=postgresql
with TEST_DATABASE_URL set reads its PostgreSQL one. PROFILE_ROOT=/path/to/checkout profiles
another checkout's lmsweb against the same database, for a before and after:

    git worktree add /tmp/before cda9fc9^
    PROFILE_ROOT=/tmp/before .venv/bin/python -m bench render_profile
"""

from __future__ import annotations

import collections
import cProfile
import os
import pstats
import statistics
import sys
import time

ROOT = os.environ.get("PROFILE_ROOT", "").strip()
if ROOT:
    sys.path.insert(0, ROOT)

KINDS = (
    ("/templates/", "template code (the compiled templates: rows, macros)"),
    ("markupsafe", "escaping (markupsafe)"),
    ("werkzeug/routing", "URL building (url_for)"),
    ("flask/helpers", "URL building (url_for)"),
    ("jinja2", "Jinja's runtime (calls, context, attribute lookups)"),
    ("sqlalchemy", "SQLAlchemy (ORM attributes)"),
    ("/lmsweb/", "lmsweb's helpers"),
)


def _kind(filename: str) -> str:
    for part, kind in KINDS:
        if part in filename:
            return kind
    return "builtins (str.join, getattr, ...)"


def main() -> None:
    import sqlalchemy as sa
    from flask import render_template
    from flask_login import login_user
    from werkzeug.datastructures import MultiDict

    import lmsweb
    from bench import users_list
    from lmsweb.blueprints.users.listing import list_context
    from lmsweb.extensions import db
    from lmsweb.models import User
    from lmsweb.user_queries import UserFilters

    engine = os.environ.get("PROFILE_ENGINE", "sqlite")
    urls = dict(users_list.databases())
    if engine not in urls:
        print(f"{engine}: not available (set TEST_DATABASE_URL for PostgreSQL)")
        return
    users_list.prepare(urls[engine])  # as `peers` does: migrated, seeded once, analysed
    app = users_list.make_app(urls[engine])
    with app.test_request_context("/admin/users", headers={"HX-Request": "true"}):
        admin = db.session.scalar(sa.select(User).where(User.email == users_list.ADMIN_EMAIL))
        login_user(admin)
        context = list_context(UserFilters.from_args(MultiDict()))

        def render() -> str:
            return render_template("users/_table.html", oob_filters=False, **context)

        size = len(render())
        for _ in range(30):
            render()
        runs = []
        for _ in range(7):
            started = time.process_time()
            for _ in range(30):
                render()
            runs.append((time.process_time() - started) / 30 * 1000)
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(100):
            render()
        profile.disable()
    stats = pstats.Stats(profile).stats
    total = sum(entry[2] for entry in stats.values())
    kinds: collections.Counter[str] = collections.Counter()
    for (filename, _line, _name), entry in stats.items():
        kinds[_kind(filename)] += entry[2]
    url_for = sum(entry[0] for key, entry in stats.items() if key[2] == "url_for") / 100
    print(
        f"lmsweb from {os.path.dirname(os.path.dirname(lmsweb.__file__))} ({engine}): "
        f"the 50-row partial ({size:,} characters) renders in {statistics.median(runs):.2f} ms "
        f"of CPU (median of 7×30); url_for {url_for:.0f} times a render"
    )
    print(f"  cProfile, 100 renders: {total / 100 * 1000:.2f} ms a render with the profiler")
    for kind, seconds in kinds.most_common():
        print(f"  {seconds / total * 100:5.1f}%  {seconds / 100 * 1000:6.2f} ms  {kind}")


if __name__ == "__main__":
    main()
