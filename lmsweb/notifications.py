"""Emails go through the outbox: queued in the request's transaction, sent by a worker."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, render_template
from jinja2 import meta
from sqlalchemy import func, insert, select, update

from .domain_error import DomainError
from .extensions import db
from .models import OutboundEmail, User, utcnow
from .tokens import make_token

TOKEN_SLOT = "TOKEN-SLOT"  # noqa: S105 (a placeholder in a URL, not a secret)
CHUNK = 500  # rows per statement: far below SQLite's and PostgreSQL's parameter limits


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
    if user.password_hash or not current_app.config.get("PASSWORD_LOGIN", True):
        return public_url("auth.login")
    return public_url("auth.activate", token=make_token(user, "activate"))


class _InvitationRenderer:
    """The invitation for many users: the templates are loaded once, not per user."""

    def __init__(self) -> None:
        env = current_app.jinja_env
        # What queue_email gives the templates (config and the like are Jinja globals); not
        # the whole request context, which Jinja would copy for each of 30,000 renders.
        self.context: dict[str, Any] = {"org_name": current_app.config["ORG_NAME"]}
        self.subject = env.get_template("email/invitation.subject.txt")
        self.text = env.get_template("email/invitation.txt")
        self.html = env.get_template("email/invitation.html")
        # A subject that names no per-user variable is the same for everyone: render it once.
        self.fixed_subject = None
        if not {"user", "link"} & _variables(env, "email/invitation.subject.txt"):
            self.fixed_subject = " ".join(self.subject.render(self.context).split())
        self.login_link = public_url("auth.login")
        # Built once with a slot for each user's token: url building per user is the slow part.
        self.activate_link = public_url("auth.activate", token=TOKEN_SLOT)

    def message(self, user, now) -> dict[str, Any]:
        if has_line_break(user.email):
            raise DomainError("An email address cannot contain line breaks.")
        if user.password_hash:
            link = self.login_link
        else:
            link = self.activate_link.replace(TOKEN_SLOT, make_token(user, "activate"))
        context = {**self.context, "user": user, "link": link}
        return {
            "user_id": user.id,
            "recipient": user.email.strip(),
            "kind": "invitation",
            "subject": self.fixed_subject or " ".join(self.subject.render(context).split()),
            "body_text": self.text.render(context),
            "body_html": self.html.render(context),
            "status": "queued",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }


def _variables(env, name: str) -> set[str]:
    source = env.loader.get_source(env, name)[0]
    return meta.find_undeclared_variables(env.parse(source))


@dataclass
class Invitations:
    """What `queue_invitations` did, by user id."""

    queued: dict[int, int] = field(default_factory=dict)  # user id -> the queued email's id
    archived: list[int] = field(default_factory=list)
    unusable: list[int] = field(default_factory=list)  # an address no header can carry


def queue_invitations(users: Iterable) -> Invitations:
    """Queue the invitation (or a sign-in reminder once activated) for each of `users`
    that may get email, and mark them invited. `users` are `User`s or rows with their
    id, status, email, names and password hash. One user or thirty thousand, this is the
    one place that sets what an invitation leaves on its user."""
    renderer = _InvitationRenderer()
    now = utcnow()
    done = Invitations()
    messages = []
    for user in users:
        if user.status == "archived":
            done.archived.append(user.id)
            continue
        try:
            messages.append(renderer.message(user, now))
        except DomainError:
            done.unusable.append(user.id)
    insert_returning = insert(OutboundEmail).returning(OutboundEmail.id, OutboundEmail.user_id)
    for start in range(0, len(messages), CHUNK):
        for email_id, user_id in db.session.execute(
            insert_returning, messages[start : start + CHUNK]
        ):
            done.queued[user_id] = email_id
    ids = list(done.queued)
    for start in range(0, len(ids), CHUNK):
        db.session.execute(
            update(User)
            .where(User.id.in_(ids[start : start + CHUNK]))
            .values(notified_at=now, invite_status="queued", invite_error=None)
            .execution_options(synchronize_session=False)
        )
    # Set-based UPDATEs bypass the identity map: forget the stale copies of those users.
    for user_id in ids:
        user = db.session.identity_map.get((User, (user_id,), None))
        if user is not None:
            db.session.expire(user)
    return done


def queue_invitation(user: User) -> OutboundEmail:
    """`queue_invitations` for one user, refusing what it would skip."""
    done = queue_invitations([user])
    if done.archived:
        raise DomainError(f"{user.name} is archived and gets no email.")
    if done.unusable:
        raise DomainError("An email address cannot contain line breaks.")
    return db.session.get(OutboundEmail, done.queued[user.id])


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
