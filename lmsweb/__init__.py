"""lmsweb: the administrators' side of a compliance-training LMS."""

from __future__ import annotations

import os

from flask import Flask, g, url_for

from . import config as config_module
from .database import sqlite_write_transaction  # noqa: F401  (the engine listeners; and re-exported)
from .extensions import csrf, db, htmx, login_manager, mail, migrate
from .navigation import app_path, app_url

# Navigation of the admin pages.
NAVIGATION = (
    ("users.index", "Users"),
    ("courses.index", "Courses"),
    ("org.groups", "Groups"),
    ("org.locations", "Locations"),
    ("dashboard.index", "Dashboard"),
    ("outbox.index", "Email log"),
    ("audit_log.index", "Audit"),
    ("settings.scim", "Settings"),
)


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

    from . import auth_session, compression, errors, oidc, params, security, sso, throttle

    # before_request order: session timeouts, portal sign-in, then deny by default.
    auth_session.init_app(app)
    sso.init_app(app)
    security.init_app(app)
    throttle.init_app(app)
    errors.init_app(app)
    # Before the blueprints: their routes use the bounded `<id:...>` converter.
    params.init_app(app)
    oidc.init_app(app)
    compression.init_app(app)

    from .blueprints import (
        audit_log,
        auth,
        courses,
        dashboard,
        learner,
        oidc,
        org,
        outbox,
        scim,
        settings,
        users,
    )

    blueprints = (auth, oidc, users, courses, org, dashboard, outbox, audit_log, learner)
    blueprints += (settings, scim)
    for module in blueprints:
        app.register_blueprint(module.bp)

    from .cli import lms

    app.cli.add_command(lms)

    app.jinja_env.globals.update(icons_href=icons_href, app_path=app_path, app_url=app_url)

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
