"""Emails go through the outbox: queued in the request's transaction, sent by a worker."""

from __future__ import annotations

from flask import current_app, render_template
from sqlalchemy import func, select

from .domain_error import DomainError
from .extensions import db
from .models import OutboundEmail, User, utcnow
from .tokens import make_token


def public_url(endpoint: str, **values) -> str:
    """An absolute link for an email: PUBLIC_BASE_URL, never the request's Host header."""
    base = current_app.config.get("PUBLIC_BASE_URL") or "http://127.0.0.1:5000"
    path = current_app.url_map.bind("localhost").build(endpoint, values)
    return base.rstrip("/") + path


def has_line_break(value: str) -> bool:
    """CR, LF (or any other control character) in a header would start a new header."""
    return any(ord(ch) < 32 or ch == "\x7f" for ch in value)


def _clean_address(address: str) -> str:
    if has_line_break(address):
        raise DomainError("An email address cannot contain line breaks.")
    return address.strip()


def _render(template: str, **context) -> dict:
    """Subject and bodies from `email/<template>.subject.txt|.txt|.html`."""
    context.setdefault("org_name", current_app.config["ORG_NAME"])
    subject = render_template(f"email/{template}.subject.txt", **context).strip()
    return {
        "subject": " ".join(subject.split()),
        "body_text": render_template(f"email/{template}.txt", **context),
        "body_html": render_template(f"email/{template}.html", **context),
    }


def queue_email(
    owner: User | None, recipient: str, kind: str, template: str, /, **context
) -> OutboundEmail:
    """Render `email/<template>.txt|.html|.subject.txt` and queue the message for `owner`."""
    message = OutboundEmail(
        user_id=owner.id if owner else None,
        recipient=_clean_address(recipient),
        kind=kind,
        status="queued",
        attempts=0,
        next_attempt_at=utcnow(),
        **_render(template, **context),
    )
    db.session.add(message)
    return message


def _link(user: User, kind: str) -> str:
    """A fresh link for an invitation or a reset (tokens expire, so never reuse an old one)."""
    if kind == "password_reset":
        return public_url("auth.reset_password", token=make_token(user, "reset"))
    if user.password_hash:
        return public_url("auth.login")
    return public_url("auth.activate", token=make_token(user, "activate"))


def queue_invitation(user: User) -> OutboundEmail:
    """Queue the activation/invitation email (or a sign-in reminder once activated)."""
    if user.status == "archived":
        raise DomainError(f"{user.name} is archived and gets no email.")
    link = _link(user, "invitation")
    message = queue_email(user, user.email, "invitation", "invitation", user=user, link=link)
    user.notified_at = utcnow()
    user.invite_status = "queued"
    user.invite_error = None
    return message


def retry(message: OutboundEmail) -> OutboundEmail:
    """Queue a failed message again, from its first attempt."""
    if message.status != "failed":
        raise DomainError("Only a failed message can be retried.")
    if message.user is not None and message.user.status == "archived":
        raise DomainError(f"{message.user.name} is archived and gets no email.")
    if has_line_break(message.recipient):
        raise DomainError("An email address cannot contain line breaks.")
    if message.user is not None and message.kind in ("invitation", "password_reset"):
        # Re-rendered with a fresh link: the one in the failed message may have expired.
        user = message.user
        link = _link(user, message.kind)
        for name, value in _render(message.kind, user=user, link=link).items():
            setattr(message, name, value)
    message.status = "queued"
    message.attempts = 0
    message.next_attempt_at = utcnow()
    if message.kind == "invitation" and message.user is not None:
        latest = db.session.scalar(
            select(func.max(OutboundEmail.id)).where(
                OutboundEmail.user_id == message.user_id, OutboundEmail.kind == "invitation"
            )
        )
        if latest == message.id:
            message.user.invite_status = "queued"
            message.user.invite_error = None
    return message


def queue_password_reset(user: User) -> OutboundEmail:
    link = _link(user, "password_reset")
    return queue_email(user, user.email, "password_reset", "password_reset", user=user, link=link)
