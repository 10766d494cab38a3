"""Signed, expiring, single-use links for activation and password reset."""

from __future__ import annotations

import hashlib

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from .extensions import db
from .models import User

PURPOSES = ("activate", "reset")


class InvalidToken(Exception):
    def __init__(self, message: str, expired: bool = False):
        super().__init__(message)
        self.message = message
        self.expired = expired


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"lmsweb-{purpose}")


def _password_state(user: User) -> str:
    # Bound to the current password: once a password is set, the link stops working.
    return hashlib.sha256((user.password_hash or "none").encode()).hexdigest()[:16]


def make_token(user: User, purpose: str) -> str:
    assert purpose in PURPOSES
    return _serializer(purpose).dumps({"u": user.id, "p": _password_state(user)})


def read_token(token: str, purpose: str) -> User:
    """The user the link is for; raises InvalidToken when expired, used or forged."""
    max_age = current_app.config["ACTIVATION_MAX_AGE_DAYS"] * 86400
    try:
        data = _serializer(purpose).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise InvalidToken("This link has expired.", expired=True) from exc
    except BadSignature as exc:
        raise InvalidToken("This link is not valid.") from exc
    user = db.session.get(User, data.get("u")) if isinstance(data, dict) else None
    if user is None or user.status == "archived":
        raise InvalidToken("This link is no longer valid.")
    if purpose == "reset" and user.status != "active":
        raise InvalidToken("This link is no longer valid.")
    if data.get("p") != _password_state(user):
        raise InvalidToken("This link has already been used.")
    return user
