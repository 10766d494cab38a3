"""Emails go through the outbox: queued in the request's transaction, sent by a worker."""

from __future__ import annotations

from flask import current_app, render_template

from .extensions import db
from .licensing import DomainError
from .models import OutboundEmail, User, utcnow
from .tokens import make_token


def public_url(endpoint: str, **values) -> str:
    """An absolute link for an email: PUBLIC_BASE_URL, never the request's Host header."""
    base = current_app.config.get("PUBLIC_BASE_URL") or "http://127.0.0.1:5000"
    path = current_app.url_map.bind("localhost").build(endpoint, values)
    return base.rstrip("/") + path


def _clean_address(address: str) -> str:
    if any(ch in address for ch in "\r\n"):
        raise DomainError("An email address cannot contain line breaks.")
    return address.strip()


def queue_email(
    user: User | None, recipient: str, kind: str, template: str, /, **context
) -> OutboundEmail:
    """Render `email/<template>.txt|.html|.subject.txt` and queue the message."""
    context.setdefault("org_name", current_app.config["ORG_NAME"])
    subject = render_template(f"email/{template}.subject.txt", **context).strip()
    message = OutboundEmail(
        user_id=user.id if user else None,
        recipient=_clean_address(recipient),
        kind=kind,
        subject=" ".join(subject.split()),
        body_text=render_template(f"email/{template}.txt", **context),
        body_html=render_template(f"email/{template}.html", **context),
        status="queued",
        attempts=0,
        next_attempt_at=utcnow(),
    )
    db.session.add(message)
    return message


def queue_invitation(user: User) -> OutboundEmail:
    """Queue the activation/invitation email (or a sign-in reminder once activated)."""
    if user.status == "archived":
        raise DomainError(f"{user.name} is archived and gets no email.")
    if user.password_hash:
        link = public_url("auth.login")
    else:
        link = public_url("auth.activate", token=make_token(user, "activate"))
    message = queue_email(user, user.email, "invitation", "invitation", user=user, link=link)
    user.notified_at = utcnow()
    return message


def queue_password_reset(user: User) -> OutboundEmail:
    link = public_url("auth.reset_password", token=make_token(user, "reset"))
    return queue_email(user, user.email, "password_reset", "password_reset", user=user, link=link)
