"""The outbox worker: claim due messages, send them over one SMTP connection, record the result.

A batch is claimed in a short transaction (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so several
workers never claim the same row; SQLite: `BEGIN IMMEDIATE`, one writer at a time) that
marks it `sending` with a lease; SMTP happens outside any transaction; the outcome of the
whole batch is written in a second short transaction, together with the users' invitation
state. A worker that dies mid-batch leaves `sending` rows whose lease expires: they are
claimed again (at-least-once delivery; never lost).

Without MAIL_SERVER, messages are appended to a development mailbox (mbox) under instance/
and only recipient and subject are logged: the body carries a sign-in link, which is a
secret, so it is never written to a log.
"""

from __future__ import annotations

import email.policy
import logging
import mailbox
import os
import smtplib
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes
from pathlib import Path

from flask import current_app
from flask_mail import Connection, Message
from sqlalchemy import bindparam, exists, or_, select, update
from sqlalchemy.orm import aliased

from .database import sqlite_write_transaction
from .extensions import db
from .models import OutboundEmail, User, utcnow
from .notifications import has_line_break

log = logging.getLogger("lmsweb.mailer")

BATCH_SIZE = 100
LEASE = timedelta(minutes=5)
MAX_BACKOFF = timedelta(hours=6)
ARCHIVED_REASON = "Not sent: the user was archived after the message was queued."
BAD_ADDRESS_REASON = "Not sent: the address contains a line break (header injection refused)."


@dataclass
class Claimed:
    """A claimed message, copied out of the session so no transaction stays open."""

    id: int
    user_id: int | None
    kind: str
    recipient: str
    subject: str
    body_text: str
    body_html: str
    attempts: int
    refusal: str | None = None  # why it must not be sent (its user is archived)


@dataclass
class Outcome:
    message_id: int
    user_id: int | None
    kind: str
    status: str  # sent, queued (retry later) or failed
    attempts: int
    error: str | None = None
    next_attempt_at: datetime | None = None


@dataclass
class BatchResult:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: BatchResult) -> None:
        self.claimed += other.claimed
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed
        self.errors += other.errors


def backoff(attempts: int) -> timedelta:
    """Delay before attempt `attempts + 1`: base, 2×base, 4×base, … capped."""
    base = current_app.config.get("MAIL_RETRY_BASE_SECONDS", 60)
    return min(timedelta(seconds=base * 2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def claim(batch_size: int = BATCH_SIZE, now: datetime | None = None) -> list[Claimed]:
    """Take up to `batch_size` due messages for this worker (a committed lease)."""
    now = now or utcnow()
    db.session.rollback()  # start a fresh transaction, so SQLite begins it IMMEDIATE
    with sqlite_write_transaction():
        due = or_(OutboundEmail.status == "queued", OutboundEmail.status == "sending")
        query = (
            select(OutboundEmail, User.status)
            .outerjoin(User, User.id == OutboundEmail.user_id)
            .where(due, OutboundEmail.next_attempt_at <= now)
            .order_by(OutboundEmail.next_attempt_at, OutboundEmail.id)
            .limit(batch_size)
        )
        if db.engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=OutboundEmail)
        rows = db.session.execute(query).all()
        claimed = [
            Claimed(message.id, message.user_id, message.kind, message.recipient,
                    message.subject, message.body_text, message.body_html or "", message.attempts,
                    refusal=ARCHIVED_REASON if user_status == "archived" else None)
            for message, user_status in rows
        ]  # fmt: skip
        if claimed:
            db.session.execute(
                update(OutboundEmail)
                .where(OutboundEmail.id.in_([c.id for c in claimed]))
                .values(status="sending", next_attempt_at=now + LEASE)
                .execution_options(synchronize_session=False)
            )
        db.session.commit()
    return claimed


def _write_outcomes(outcomes: list[Outcome], now: datetime) -> None:
    """Messages and their users' invitation state, in the caller's transaction."""
    if not outcomes:
        return
    table = OutboundEmail.__table__
    db.session.execute(
        update(table)
        .where(table.c.id == bindparam("mid"))
        .values(
            status=bindparam("st"),
            attempts=bindparam("att"),
            last_error=bindparam("err"),
            next_attempt_at=bindparam("nxt"),
            sent_at=bindparam("sent"),
        ),
        [
            {
                "mid": o.message_id,
                "st": o.status,
                "att": o.attempts,
                "err": o.error,
                "nxt": o.next_attempt_at or now,
                "sent": now if o.status == "sent" else None,
            }
            for o in outcomes
        ],
    )
    invitations = [o for o in outcomes if o.kind == "invitation" and o.user_id is not None]
    if not invitations:
        return
    # Only the user's latest invitation speaks for them: an older one failing late must
    # not overwrite a newer one's state.
    users, newer = User.__table__, aliased(OutboundEmail)
    db.session.execute(
        update(users)
        .where(
            users.c.id == bindparam("uid"),
            ~exists().where(
                newer.user_id == bindparam("uid"),
                newer.kind == "invitation",
                newer.id > bindparam("mid"),
            ),
        )
        .values(invite_status=bindparam("st"), invite_error=bindparam("err")),
        [
            {"uid": o.user_id, "mid": o.message_id, "st": o.status, "err": o.error}
            for o in invitations
        ],
    )


class SMTPConnection(Connection):
    """Flask-Mail's connection, always to the configured server, with a socket timeout."""

    def __enter__(self):
        self.host = self.configure_host()
        self.num_emails = 0
        return self

    def configure_host(self):
        timeout = current_app.config.get("MAIL_TIMEOUT", 30)
        cls = smtplib.SMTP_SSL if self.mail.use_ssl else smtplib.SMTP
        host = cls(self.mail.server, self.mail.port, timeout=timeout)
        if self.mail.use_tls:
            host.starttls()
        if self.mail.username and self.mail.password:
            host.login(self.mail.username, self.mail.password)
        return host


# Flask-Mail serialises with email.policy.SMTP, which re-parses every header through the
# header registry: 3× slower than compat32 for the same bytes (its headers are already
# encoded by Flask-Mail). The worker's throughput is bound by this, so use compat32 + CRLF.
_WIRE_POLICY = email.policy.compat32.clone(linesep="\r\n")


class OutboxMessage(Message):
    def as_bytes(self) -> bytes:
        return self._message().as_bytes(policy=_WIRE_POLICY)


def _message(c: Claimed) -> Message:
    return OutboxMessage(
        subject=c.subject,
        recipients=[c.recipient],
        body=c.body_text,
        html=c.body_html or None,
        sender=current_app.config.get("MAIL_DEFAULT_SENDER"),
    )


def dev_mailbox_path() -> Path:
    return Path(current_app.instance_path) / "dev-mailbox.mbox"


def _write_dev_mailbox(batch: list[Claimed]) -> None:
    path = dev_mailbox_path()
    if not path.exists():
        # 0600: the bodies carry sign-in links.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    box = mailbox.mbox(path)
    box.lock()
    try:
        for c in batch:
            box.add(message_from_bytes(_message(c).as_bytes()))
            log.info("Mail (no MAIL_SERVER) to %s: %r written to %s", c.recipient, c.subject, path)
        box.flush()
    finally:
        box.unlock()
        box.close()


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return " ".join(text.split())[:500]


def _deliver(batch: list[Claimed], now: datetime) -> list[Outcome]:
    """Send each message over one SMTP connection for the whole batch."""
    max_attempts = current_app.config.get("MAIL_MAX_ATTEMPTS", 5)
    outcomes: list[Outcome] = []

    def failed(c: Claimed, error: str, final: bool = False) -> Outcome:
        attempts = c.attempts + 1
        if final or attempts >= max_attempts:
            return Outcome(c.id, c.user_id, c.kind, "failed", attempts, error)
        return Outcome(c.id, c.user_id, c.kind, "queued", attempts, error, now + backoff(attempts))

    sendable = []
    for c in batch:
        if c.refusal:
            outcomes.append(failed(c, c.refusal, final=True))
        elif has_line_break(c.recipient) or has_line_break(c.subject):
            outcomes.append(failed(c, BAD_ADDRESS_REASON, final=True))
        else:
            sendable.append(c)
    if not sendable:
        return outcomes

    if not current_app.config.get("MAIL_SERVER"):
        _write_dev_mailbox(sendable)
        return outcomes + [
            Outcome(c.id, c.user_id, c.kind, "sent", c.attempts + 1) for c in sendable
        ]

    state = current_app.extensions["mail"]
    connection: SMTPConnection | None = None
    try:
        for i, c in enumerate(sendable):
            try:
                if connection is None:
                    connection = SMTPConnection(state).__enter__()
                connection.send(_message(c))
            except smtplib.SMTPException as exc:
                error = _error_text(exc)
                if not isinstance(exc, (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError)):
                    # This message refused (a bad recipient, say): the session goes on.
                    log.warning("Mail to %s not sent: %s", c.recipient, error)
                    outcomes.append(failed(c, error, final=_permanent(exc)))
                    continue
                outcomes += _unavailable(sendable[i:], error, failed)
                break
            except OSError as exc:  # refused, unreachable, timed out
                outcomes += _unavailable(sendable[i:], _error_text(exc), failed)
                break
            else:
                outcomes.append(Outcome(c.id, c.user_id, c.kind, "sent", c.attempts + 1))
    finally:
        _close(connection)
    return outcomes


def _unavailable(waiting: list[Claimed], error: str, failed) -> list[Outcome]:
    """The server is unreachable or went away: the rest of the batch waits for its next
    attempt rather than timing out message by message."""
    log.warning("SMTP unavailable, %d messages wait: %s", len(waiting), error)
    return [failed(c, error) for c in waiting]


def _permanent(exc: smtplib.SMTPException) -> bool:
    """A 5xx answer (no such mailbox, refused) will not change by retrying."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return getattr(exc, "smtp_code", 0) >= 500


def _close(connection: SMTPConnection | None) -> None:
    """Close quietly (the server may already be gone); always returns None."""
    if connection is not None and connection.host is not None:
        try:
            connection.host.quit()
        except (smtplib.SMTPException, OSError):
            connection.host.close()
    return None


def send_batch(batch_size: int = BATCH_SIZE, now: datetime | None = None) -> BatchResult:
    """Claim one batch of due messages, send it, and record every outcome."""
    now = now or utcnow()
    batch = claim(batch_size, now)
    result = BatchResult(claimed=len(batch))
    if not batch:
        return result
    outcomes = _deliver(batch, now)
    with sqlite_write_transaction():
        db.session.rollback()
        _write_outcomes(outcomes, utcnow())
        db.session.commit()
    for o in outcomes:
        if o.status == "sent":
            result.sent += 1
        elif o.status == "queued":
            result.retried += 1
        else:
            result.failed += 1
            result.errors.append(f"#{o.message_id}: {o.error}")
    return result


def drain(batch_size: int = BATCH_SIZE, now: datetime | None = None) -> BatchResult:
    """Send batches until nothing is due (a retry scheduled later waits for a later run)."""
    total = BatchResult()
    while True:
        result = send_batch(batch_size, now)
        total.add(result)
        if result.claimed == 0:
            return total


def run_forever(app, stop: threading.Event, interval: float = 2.0) -> None:
    """The worker loop for `flask lms send-mail` and the demo server's background thread."""
    with app.app_context():
        while not stop.is_set():
            try:
                drain()
            except Exception:  # noqa: BLE001 - a bad moment (database busy) must not end the loop
                log.exception("Outbox worker: batch failed; trying again shortly")
                db.session.rollback()
            finally:
                db.session.remove()
            stop.wait(interval)
