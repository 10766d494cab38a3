"""Error pages: a visible message, never a silent failure; htmx gets a short text."""

from __future__ import annotations

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

MESSAGES = {
    400: "The request could not be understood.",
    403: "You do not have permission to do that.",
    404: "That page does not exist, or it has moved.",
    405: "That action is not allowed here.",
    413: "The upload is too large.",
    429: "Too many attempts. Please wait a moment and try again.",
    500: "Something went wrong on our side. Nothing was changed; please try again.",
}
# PostgreSQL gave up one of two transactions that waited for each other (a deadlock) or
# could not be serialised: the request's changes are rolled back whole, and the same request
# again normally succeeds.
RETRYABLE_SQLSTATES = {"40P01", "40001"}
CONFLICT_MESSAGE = (
    "Another change reached the same records at the same moment. Nothing was changed; "
    "please try again."
)


def is_retryable(error: BaseException) -> bool:
    """Whether `error` is a database conflict that trying again resolves."""
    original = getattr(error, "orig", None)
    return getattr(original, "sqlstate", None) in RETRYABLE_SQLSTATES


def _render_error(code: int, message: str):
    if request.htmx:
        return message, code, {"Content-Type": "text/plain; charset=utf-8"}
    return render_template("error.html", code=code, message=message), code


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        return _render_error(
            400,
            "This form has expired or is missing its security token. "
            "Reload the page and try again.",
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        code = error.code or 500
        if code == 413:
            limit_mb = (app.config.get("MAX_CONTENT_LENGTH") or 0) // (1024 * 1024)
            message = f"The upload is too large: the limit is {limit_mb} MB."
        elif (
            error.description
            and code not in (404, 405)
            and not error.description.startswith(("The server", "The browser", "You don't"))
        ):
            message = error.description
        else:
            message = MESSAGES.get(code, error.name)
        return _render_error(code, message)

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        app.logger.exception("Unhandled error on %s %s", request.method, request.path)
        from .extensions import db

        db.session.rollback()
        return _render_error(500, MESSAGES[500])

    @app.errorhandler(OperationalError)
    def database_conflict(error: OperationalError):
        if not is_retryable(error):
            return unexpected_error(error)
        from .extensions import db

        db.session.rollback()
        app.logger.warning("Database conflict on %s %s: %s", request.method, request.path, error)
        return _render_error(409, CONFLICT_MESSAGE)
