"""Portal sign-in: a reverse proxy that has authenticated the user names them in a header.

Off unless TRUSTED_HEADER_AUTH is on, and honoured only when the request's direct peer
(the TCP connection, not an `X-Forwarded-For` claim) is one of TRUSTED_PROXIES: anyone
else can send the same header, so from anywhere else it is ignored.
"""

from __future__ import annotations

import ipaddress

from flask import Flask, abort, current_app, request
from flask_login import current_user
from sqlalchemy import func, select

from . import audit, enrolment
from .auth_session import end_session, start_session
from .extensions import db
from .models import User


def peer_address() -> str:
    """The address that opened the connection, before ProxyFix rewrote REMOTE_ADDR."""
    original = request.environ.get("werkzeug.proxy_fix.orig", {})
    return original.get("REMOTE_ADDR") or request.environ.get("REMOTE_ADDR", "")


def from_trusted_proxy() -> bool:
    try:
        peer = ipaddress.ip_address(peer_address())
    except ValueError:
        return False
    for entry in current_app.config.get("TRUSTED_PROXIES", []):
        try:
            if peer in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            current_app.logger.warning("TRUSTED_PROXIES entry %r is not an address", entry)
    return False


def asserted_email() -> str | None:
    """The email the trusted proxy asserts, or None when the header is not to be believed."""
    config = current_app.config
    if not config.get("TRUSTED_HEADER_AUTH") or not from_trusted_proxy():
        return None
    name = config.get("TRUSTED_HEADER_NAME") or "X-Remote-User"
    if name.upper() == "REMOTE_USER":
        value = request.environ.get("REMOTE_USER", "")
    else:
        value = request.headers.get(name, "")
    value = value.strip().lower()
    return value if "@" in value and len(value) <= 254 else None


def _create_pending(email: str) -> None:
    local = email.split("@", 1)[0]
    first, _, last = local.replace("_", ".").partition(".")
    user = User(
        email=email,
        first_name=(first or local).title()[:100],
        last_name=last.replace(".", " ").title()[:100],
        role="learner",
        status="pending",
    )
    db.session.add(user)
    db.session.flush()
    enrolment.user_joined(user)
    audit.record(
        "user.sso_request",
        target=user,
        actor=user,
        summary=f"{email} arrived from the portal and awaits approval",
    )
    db.session.commit()


def sign_in_from_header():
    """before_request: sign in (or switch to) the user the trusted proxy names."""
    if request.endpoint == "static":
        return None
    email = asserted_email()
    if email is None:
        return None
    if current_user.is_authenticated and current_user.email.lower() == email:
        return None
    if current_user.is_authenticated:
        end_session()  # the portal now speaks for someone else
    user = db.session.scalar(select(User).where(func.lower(User.email) == email))
    if user is None and current_app.config.get("TRUSTED_HEADER_CREATE_USERS"):
        _create_pending(email)
        abort(403, "Your account has been requested; an administrator will approve it.")
    if user is None:
        abort(403, "There is no training account for you yet. Ask your administrator.")
    if user.status != "active":
        abort(403, "Your training account is not active. Ask your administrator.")
    start_session(user)
    db.session.commit()
    return None


def init_app(app: Flask) -> None:
    app.before_request(sign_in_from_header)
