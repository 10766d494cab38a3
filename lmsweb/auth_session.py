"""Sessions: who is signed in, and when a session ends."""

from __future__ import annotations

from flask import Flask

from .extensions import db, login_manager
from .models import User


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """The session holds `id:version`; a bumped version ends every older session."""
    user_id, _, version = session_id.partition(":")
    if not user_id.isdigit() or not version.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_version != int(version) or not user.is_active:
        return None
    return user


def init_app(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "basic"
    # Deny by default happens in security.enforce_access; this only covers @login_required.
    login_manager.login_message = None
