"""The audit log: one event per administrative action, in the same transaction."""

from __future__ import annotations

from typing import Any

from flask_login import current_user

from .extensions import db
from .models import AuditEvent, User


def record(
    action: str,
    *,
    summary: str = "",
    target: Any = None,
    target_user: User | None = None,
    actor: User | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit event to the current session (the caller commits with its change)."""
    if actor is None and current_user and getattr(current_user, "is_authenticated", False):
        actor = current_user._get_current_object()  # type: ignore[attr-defined]
    if target_user is None and isinstance(target, User):
        target_user = target
    event = AuditEvent(
        actor_id=actor.id if actor else None,
        action=action,
        target_type=type(target).__name__.lower() if target is not None else "",
        target_id=getattr(target, "id", None),
        target_user_id=target_user.id if target_user else None,
        summary=summary,
        details=details or {},
    )
    db.session.add(event)
    return event
