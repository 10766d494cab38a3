"""SCIM clients' bearer tokens: created once, stored as a hash, revoked, throttled.

A token is organisation-wide, or scoped to locations and/or groups like a scoped
administrator (its own `Scope` row): it then sees and provisions only those people."""

from __future__ import annotations

import hashlib
import secrets

from flask import current_app, g
from sqlalchemy import select

from . import audit, scope, throttle
from .extensions import db
from .licensing import DomainError
from .models import Group, Location, ScimToken, User, utcnow

# Recognisable in logs and secret scanners; the random part carries 256 bits.
TOKEN_PREFIX = "lms_scim_"  # noqa: S105 - a label, not a secret
# last_used_at is written at most this often per token, not on every request of a sync.
_TOUCH_SECONDS = 60


def _digest(token: str) -> str:
    # A fast hash is enough: the token is random, not a password someone chose.
    return hashlib.sha256(token.encode()).hexdigest()


def create(
    name: str,
    created_by: User | None,
    locations: list[Location] | None = None,
    groups: list[Group] | None = None,
) -> tuple[ScimToken, str]:
    """A new token named `name`, scoped to `locations` and `groups` when any are given
    (else organisation-wide); returns the row and the token (shown once, never stored)."""
    name = " ".join((name or "").split())
    if not name:
        raise DomainError("Give the token a name, e.g. the directory it is for.")
    if len(name) > 100:
        raise DomainError("Use at most 100 characters for the token's name.")
    if db.session.scalar(select(ScimToken.id).where(ScimToken.name == name)) is not None:
        raise DomainError(f"A token named “{name}” already exists; choose another name.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ScimToken(
        name=name,
        token_hash=_digest(token),
        prefix=token[: len(TOKEN_PREFIX) + 3],
        created_by_id=created_by.id if created_by else None,
        created_at=utcnow(),
    )
    row.scope = scope.new_scope(locations or [], groups or [])
    db.session.add(row)
    db.session.flush()
    reach = row.scope.label if row.scope else "organisation-wide"
    audit.record(
        "scim_token.create",
        actor=created_by,
        summary=f"Created SCIM token “{name}” ({reach})",
        details={
            "scim_token": name,
            "scope": {
                "locations": [loc.name for loc in row.scope.locations],
                "groups": [group.name for group in row.scope.groups],
            }
            if row.scope
            else None,
        },
    )
    return row, token


def revoke(row: ScimToken, actor: User | None) -> bool:
    """Revoke a token; False when it already was."""
    if row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    audit.record(
        "scim_token.revoke",
        actor=actor,
        summary=f"Revoked SCIM token “{row.name}”",
        details={"scim_token": row.name},
    )
    return True


def bearer_token(header: str | None) -> str | None:
    scheme, _, value = (header or "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def find(token: str) -> ScimToken | None:
    """The active token with this value, or None."""
    row = db.session.scalar(select(ScimToken).where(ScimToken.token_hash == _digest(token)))
    if row is None or row.revoked_at is not None:
        return None
    return row


def touch(row: ScimToken) -> None:
    """Record the use, at most once a minute (a sync sends thousands of requests)."""
    now = utcnow()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() >= _TOUCH_SECONDS:
        row.last_used_at = now
        db.session.commit()


def current() -> ScimToken:
    """The token of this SCIM request (set by the bearer check)."""
    return g.scim_token


def rate_limited(row: ScimToken) -> bool:
    """Count this request against the token's budget; True when it is spent."""
    return not throttle.spend(current_app.config["SCIM_RATE_LIMIT"], "scim-token", str(row.id))
