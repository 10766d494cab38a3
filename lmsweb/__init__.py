"""lmsweb: the administrators' side of a compliance-training LMS."""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from contextvars import ContextVar

from flask import Flask, g, has_request_context, request, url_for
from sqlalchemy import event
from sqlalchemy.engine import Engine

from . import config as config_module
from .extensions import csrf, db, htmx, login_manager, mail, migrate

# Navigation of the admin pages.
NAVIGATION = (
    ("users.index", "Users"),
    ("courses.index", "Courses"),
    ("org.groups", "Groups"),
    ("org.locations", "Locations"),
    ("dashboard.index", "Dashboard"),
    ("outbox.index", "Email log"),
    ("audit_log.index", "Audit"),
)

_immediate: ContextVar[bool] = ContextVar("sqlite_immediate", default=False)


@contextmanager
def sqlite_write_transaction():
    """Outside a request (CLI, workers): start SQLite transactions with BEGIN IMMEDIATE."""
    token = _immediate.set(True)
    try:
        yield
    finally:
        _immediate.reset(token)


@event.listens_for(Engine, "connect")
def _sqlite_on_connect(dbapi_connection, _record):
    if isinstance(dbapi_connection, sqlite3.Connection):
        # We emit BEGIN ourselves (below): pysqlite's lazy BEGIN breaks check-then-write.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA busy_timeout = 20000")
        cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_on_begin(connection):
    if connection.dialect.name != "sqlite":
        return
    # A POST writes: take the write lock up front so a count checked is a count kept,
    # and two writers never deadlock upgrading shared locks.
    writing = _immediate.get() or (
        has_request_context() and request.method not in ("GET", "HEAD", "OPTIONS")
    )
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def icons_href() -> str:
    """The icon sprite's URL, built once per request: a list of users draws hundreds."""
    if "icons_href" not in g:
        g.icons_href = url_for("static", filename="icons.svg")
    return g.icons_href


def create_app(test_config: dict | None = None) -> Flask:
    """Build the application: configuration, extensions, blueprints, CLI."""
    app = Flask(__name__, instance_path=os.environ.get("LMSWEB_INSTANCE") or None)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(config_module.from_environment(app.instance_path))
    if test_config:
        app.config.update(test_config)
    config_module.apply_cross_site(app.config)

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "..", "migrations"))
    login_manager.init_app(app)
    mail.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)

    from . import auth_session, compression, errors, security, sso, throttle

    # before_request order: session timeouts, portal sign-in, then deny by default.
    auth_session.init_app(app)
    sso.init_app(app)
    security.init_app(app)
    throttle.init_app(app)
    errors.init_app(app)
    compression.init_app(app)

    from .blueprints import (
        audit_log,
        auth,
        courses,
        dashboard,
        learner,
        org,
        outbox,
        users,
    )

    for module in (auth, users, courses, org, dashboard, outbox, audit_log, learner):
        app.register_blueprint(module.bp)

    from .cli import lms

    app.cli.add_command(lms)

    app.jinja_env.globals["icons_href"] = icons_href

    @app.context_processor
    def navigation():
        return {
            "navigation": NAVIGATION,
            "org_name": app.config["ORG_NAME"],
        }

    _mount(app)
    return app


def _mount(app: Flask) -> None:
    """Serve under URL_PREFIX (SCRIPT_NAME, so url_for builds every URL with it) and trust
    `X-Forwarded-*` from exactly PROXY_COUNT reverse proxies."""
    from werkzeug.exceptions import NotFound
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.middleware.proxy_fix import ProxyFix

    prefix = config_module.normalise_prefix(app.config.get("URL_PREFIX", ""))
    if prefix:
        app.wsgi_app = DispatcherMiddleware(NotFound(), {prefix: app.wsgi_app})  # type: ignore[method-assign]
    count = app.config.get("PROXY_COUNT", 0)
    if count:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=count, x_proto=count, x_host=count, x_port=count
        )
