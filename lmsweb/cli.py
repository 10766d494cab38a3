"""`flask lms ...`: set-up, demo data, administrators, consistency checks."""

from __future__ import annotations

import logging
import secrets
import sys
import threading
import time

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from . import audit, licensing
from .extensions import db
from .models import User, utcnow


@click.group()
def lms():
    """lmsweb administration."""


def _create_admin(email: str, password: str, first: str = "Admin", last: str = "User") -> User:
    email = email.strip().lower()
    user = db.session.scalar(select(User).where(func.lower(User.email) == email))
    if user is None:
        user = User(email=email, first_name=first, last_name=last)
        db.session.add(user)
    now = utcnow()
    user.role = "admin"
    user.status = "active"
    user.password_hash = generate_password_hash(password)
    user.approved_at = user.approved_at or now
    user.activated_at = user.activated_at or now
    user.archived_at = None
    db.session.flush()
    audit.record(
        "user.create_admin", target=user, summary=f"Administrator {email} set up from the CLI"
    )
    return user


@lms.command("create-admin")
@click.option("--email", required=True, help="The administrator's email address.")
@click.option("--password", default=None, help="Prompted for when omitted.")
@with_appcontext
def create_admin(email: str, password: str | None):
    """Create an administrator, or promote and reset an existing user."""
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.BadParameter("use at least 8 characters", param_hint="--password")
    user = _create_admin(email, password)
    db.session.commit()
    click.echo(f"Administrator {user.email} is ready.")


@lms.command("seed-demo")
@click.option("--users", default=300, show_default=True, type=click.IntRange(0, 1_000_000))
@click.option("--seed", default=7, show_default=True, help="Random seed, for repeatable data.")
@with_appcontext
def seed_demo_command(users: int, seed: int):
    """Insert a demo organisation: locations, groups, courses, users, training records."""
    from .seed import seed_demo

    started = time.perf_counter()
    counts = seed_demo(users, seed=seed)
    db.session.commit()
    click.echo(
        f"Seeded {counts['users']} users and {counts['assignments']} training records "
        f"in {time.perf_counter() - started:.1f} s."
    )


@lms.command("check")
@click.option("--repair", is_flag=True, help="Set drifted counters to what the records imply.")
@with_appcontext
def check(repair: bool):
    """Recompute license counters from the training records; exit 1 on drift."""
    drifts = licensing.repair_counters() if repair else licensing.pool_drift()
    for d in drifts:
        click.echo(f"DRIFT {d.code}: {d.field} stored {d.stored}, records imply {d.expected}")
    if repair and drifts:
        audit.record("pools.repair", summary=f"Repaired {len(drifts)} license counters")
        db.session.commit()
        click.echo(f"Repaired {len(drifts)} counters.")
        return
    if drifts:
        sys.exit(1)
    click.echo("License pools agree with the training records: no drift.")


@lms.command("setup")
@with_appcontext
def setup():
    """Apply migrations; on an empty database seed the demo and print the admin sign-in."""
    from flask_migrate import upgrade

    upgrade()
    if db.session.scalar(select(func.count()).select_from(User)):
        admin = db.session.scalar(
            select(User).where(User.role == "admin", User.status == "active").order_by(User.id)
        )
        if admin is not None:
            click.echo(
                f"Sign in as {admin.email} (the password was printed on first start; "
                f"`flask lms create-admin --email {admin.email}` sets a new one)."
            )
        return
    from .seed import seed_demo

    password = secrets.token_urlsafe(12)
    admin = _create_admin("admin@example.com", password)
    counts = seed_demo(current_app.config.get("DEMO_USERS", 300))
    db.session.commit()
    click.echo(f"Demo organisation created: {counts['users']} users.")
    click.echo("")
    click.echo("  Sign in at /login")
    click.echo(f"    email:    {admin.email}")
    click.echo(f"    password: {password}")
    click.echo("  (shown once; `flask lms create-admin --email admin@example.com` resets it)")
    click.echo("")


@lms.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def serve(host: str, port: int):
    """Serve for a demo or development (use gunicorn in production)."""
    from werkzeug.serving import run_simple

    from .mailer import run_forever

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    _log_mail_to_console()
    # The demo drains the outbox too, so invitations go out without a second terminal.
    stop = threading.Event()
    worker = threading.Thread(target=run_forever, args=(app, stop), name="outbox", daemon=True)
    worker.start()
    click.echo(f"lmsweb on http://{host}:{port}/ (Ctrl+C stops)")
    click.echo(_mail_destination())
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
    finally:
        stop.set()
        worker.join(timeout=10)


def _log_mail_to_console() -> None:
    logger = logging.getLogger("lmsweb.mailer")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _mail_destination() -> str:
    from .mailer import dev_mailbox_path

    server = current_app.config.get("MAIL_SERVER")
    if server:
        return f"Outbox: sending through {server}:{current_app.config['MAIL_PORT']}."
    return f"Outbox: no MAIL_SERVER, so messages are written to {dev_mailbox_path()}."


@lms.command("send-mail")
@click.option("--once", is_flag=True, help="Send everything due now, then exit.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between polls.")
@with_appcontext
def send_mail(once: bool, interval: float):
    """The outbox worker: send queued emails, retrying failures with backoff."""
    from .mailer import drain, run_forever

    _log_mail_to_console()
    click.echo(_mail_destination())
    if once:
        result = drain()
        click.echo(f"Sent {result.sent}, will retry {result.retried}, failed {result.failed}.")
        for error in result.errors:
            click.echo(f"FAILED {error}")
        return
    stop = threading.Event()
    try:
        run_forever(current_app._get_current_object(), stop, interval)  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        stop.set()
