"""Sessions: who is signed in, and when a session ends.

A session ends on sign-out, and for every copy of its cookie when the user's
`session_version` moves on (password, role or archive change); it also ends after
SESSION_IDLE_MINUTES without a request and PERMANENT_SESSION_LIFETIME after sign-in.
"""

from __future__ import annotations

import time

from flask import Flask, current_app, flash, request, session
from flask_login import current_user, login_user, logout_user
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from .database import PREPARED
from .extensions import db, login_manager
from .models import User, utcnow

# Session keys kept across the session.clear() of a sign-in or sign-out.
_KEPT = ("embed",)


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """The session holds `id:version`; a bumped version ends every older session."""
    user_id, _, version = session_id.partition(":")
    if not user_id.isdigit() or not version.isdigit():
        return None
    user = db.session.get(User, int(user_id), execution_options=PREPARED)
    if user is None or user.session_version != int(version) or not user.is_active:
        return None
    return user


def _fresh_session() -> None:
    kept = {key: session[key] for key in _KEPT if key in session}
    session.clear()
    session.update(kept)


def start_session(user: User) -> None:
    """Sign `user` in on a fresh session (never reuse the anonymous one); the caller commits."""
    _fresh_session()
    login_user(user)
    session.permanent = True
    now = int(time.time())
    session["signed_in_at"] = now
    session["seen_at"] = now
    user.last_login_at = utcnow()


def end_session() -> None:
    """Sign out of this session only (callers bump session_version to end every copy)."""
    logout_user()
    _fresh_session()


# A request moves the idle clock on (and so writes the cookie) once a minute at most, not
# on every request: an idle session may end up to a minute early.
SEEN_EVERY = 60


def enforce_timeouts():
    """before_request: end a session that was idle too long or is older than its lifetime."""
    if request.endpoint == "static" or not current_user.is_authenticated:
        return
    config = current_app.config
    now = int(time.time())
    signed_in_at = session.get("signed_in_at")
    seen_at = session.get("seen_at", signed_in_at)
    lifetime = config["PERMANENT_SESSION_LIFETIME"].total_seconds()
    idle = config["SESSION_IDLE_MINUTES"] * 60
    if not isinstance(signed_in_at, int) or not isinstance(seen_at, int):
        end_session()
    elif now - signed_in_at > lifetime:
        end_session()
        flash("Your session has reached its time limit. Please sign in again.", "info")
    elif idle and now - seen_at > idle:
        end_session()
        flash("You were signed out after a period of inactivity.", "info")
    elif now - seen_at >= SEEN_EVERY:
        session["seen_at"] = now


# Changes that must end the user's other sessions, whichever code makes them.
_SESSION_ENDING = ("password_hash", "role")


@event.listens_for(Session, "before_flush")
def _end_sessions_on_sensitive_change(session_, _context, _instances):
    for obj in session_.dirty:
        if not isinstance(obj, User):
            continue
        state = inspect(obj)
        if state.attrs.session_version.history.has_changes():
            continue  # the code already ended the sessions itself
        archived = state.attrs.status.history.has_changes() and obj.status == "archived"
        if archived or any(state.attrs[name].history.has_changes() for name in _SESSION_ENDING):
            obj.end_sessions()


def remember_embed_mode():
    """before_request: `?embed=1` (or `0`) switches embedded mode for the session."""
    flag = request.args.get("embed")
    if flag in ("0", "1"):
        session["embed"] = flag == "1"


def embedded() -> bool:
    """Render without the application chrome (inside a portal frame)?"""
    return bool(current_app.config.get("EMBED_MODE") or session.get("embed"))


def init_app(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "basic"
    # Deny by default happens in security.enforce_access; this only covers @login_required.
    login_manager.login_message = None
    app.before_request(remember_embed_mode)
    app.before_request(enforce_timeouts)
    app.jinja_env.globals["embedded"] = embedded
