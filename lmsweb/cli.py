"""`flask lms ...`: set-up, demo data, administrators, consistency checks."""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import sys
import threading
import time
from datetime import datetime

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from . import audit, licensing, scope, user_counts
from .domain_error import DomainError
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
@click.option("--location", "locations", multiple=True, help="Scope to this location (repeatable).")
@click.option("--group", "groups", multiple=True, help="Scope to this group (repeatable).")
@with_appcontext
def create_admin(email: str, password: str | None, locations: tuple, groups: tuple):
    """Create an administrator, or promote and reset an existing user. With --location or
    --group the administrator is scoped to those users; without, organisation-wide."""
    from .scope import by_names, set_scope

    try:
        scope_locations, scope_groups = by_names(list(locations), list(groups))
    except DomainError as error:
        raise click.UsageError(error.message) from error
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.BadParameter("use at least 8 characters", param_hint="--password")
    user = _create_admin(email, password)
    before = user.scope.label if user.scope is not None else "Organisation-wide"
    set_scope(user, scope_locations, scope_groups)
    after = user.scope.label if user.scope is not None else "Organisation-wide"
    if before != after:
        user.end_sessions()
        audit.record(
            "user.scope",
            target=user,
            summary=f"Scope of {user.email}: {before} → {after} (from the CLI)",
            details={"from": before, "to": after},
        )
    db.session.commit()
    click.echo(f"Administrator {user.email} is ready ({after}).")


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
@click.option(
    "--repair",
    is_flag=True,
    help=(
        "Set drifted counters to what the records imply; rewrite drifted scope members and "
        "kept user counts."
    ),
)
@with_appcontext
def check(repair: bool):
    """Recompute license counters from the training records and compare each scope's
    members with its definition; exit 1 on drift or on a location holding more seats than
    its allocation."""
    drifts = licensing.repair_counters() if repair else licensing.pool_drift()
    for d in drifts:
        click.echo(f"DRIFT {d.code}: {d.field} stored {d.stored}, records imply {d.expected}")
    # Allocations are enforced as seats are taken; this only reports one overdrawn (which
    # --repair cannot mend: no record is taken away from anyone).
    overdrawn = licensing.allocations_exceeded()
    for o in overdrawn:
        click.echo(
            f"OVER {o.code}: {o.location} may use {o.seats}, holds {o.held} (someone moved "
            "there with their seats, or a seat was taken around licensing.py)"
        )
    # Who each administrator scope reaches, kept by triggers (0013_scope_members).
    members = _compare_kept(
        repair,
        scope.members_drift,
        scope.repair_members,
        "scopes.repair",
        "Rewrote the members of {n} scopes",
        "Rewrote the members of {n} scopes.",
    )
    # The users counted per status and role, kept by triggers (0015_user_counts).
    counts = _compare_kept(
        repair,
        user_counts.drift,
        user_counts.repair,
        "counts.repair",
        "Rewrote {n} kept user counts",
        "Rewrote the kept user counts ({n} differed).",
    )
    if repair and drifts:
        audit.record("pools.repair", summary=f"Repaired {len(drifts)} license counters")
        db.session.commit()
        click.echo(f"Repaired {len(drifts)} counters.")
        return
    if repair and (members or counts):
        return
    if drifts or overdrawn or members or counts:
        sys.exit(1)
    click.echo("License pools agree with the training records: no drift.")
    click.echo("Scope members agree with the scopes' locations and groups.")
    click.echo("The kept user counts agree with the users.")


def _compare_kept(repair: bool, drift, rewrite, action: str, summary: str, done: str) -> list[str]:
    """A table the triggers keep: print how it differs from what it is kept from (`drift`);
    with `repair`, `rewrite` it, audited as `action`. Returns the differences found."""
    lines = drift()
    for line in lines:
        click.echo(line)
    if repair and lines:
        rewrite()
        audit.record(action, summary=summary.format(n=len(lines)))
        db.session.commit()
        click.echo(done.format(n=len(lines)))
    return lines


@lms.command("figures")
@with_appcontext
def figures_command():
    """Count the dashboard's figures now, for the organisation and every administrator
    scope (a large organisation's dashboard shows these snapshots; the worker recounts
    them every few minutes)."""
    from . import figures

    if not figures.is_large():
        click.echo("A small organisation: the dashboard counts its figures on every visit.")
        return
    counted = figures.refresh_many(figures.audiences())
    db.session.commit()
    seconds = max(shown.seconds for shown in counted.values())
    scopes = len(counted) - 1
    click.echo(
        f"Counted the figures of the organisation and {scopes} administrator scopes "
        f"in {seconds:.1f} s."
    )


def served_url(host: str, port: int) -> str:
    """The address a person types to reach `flask lms serve --host H --port P`."""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104  (a wildcard is reached on loopback)
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _public_base_url(host: str, port: int) -> str:
    from .config import normalise_prefix

    configured = current_app.config.get("PUBLIC_BASE_URL")
    if configured:
        return configured
    return served_url(host, port) + normalise_prefix(current_app.config.get("URL_PREFIX", ""))


@lms.command("setup")
@click.option("--host", default="127.0.0.1", show_default=True, help="Where `serve` listens.")
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def setup(host: str, port: int):
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
    click.echo(f"  Sign in at {_public_base_url(host, port)}/login")
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

    from .worker import run_forever

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    # Without PUBLIC_BASE_URL, links in emails point where this server really listens.
    app.config["PUBLIC_BASE_URL"] = _public_base_url(host, port)
    _log_mail_to_console()
    # The demo runs the worker too (outbox, schedule, imports): no second terminal needed.
    stop = threading.Event()
    worker = threading.Thread(target=run_forever, args=(app, stop), name="worker", daemon=True)
    worker.start()
    click.echo(f"lmsweb on {served_url(host, port)}/ (Ctrl+C stops)")
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


def _parse_now(ctx, param, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M")
    except ValueError:
        raise click.BadParameter("use YYYY-MM-DDTHH:MM, e.g. 2026-12-01T08:00") from None


def _worker(once: bool, interval: float, now: datetime | None) -> None:
    from .worker import run_forever, run_once

    _log_mail_to_console()
    click.echo(_mail_destination())
    if once:
        result = run_once(now)
        click.echo(result.schedule.summary())
        click.echo(f"Imports: {result.imports} background jobs run.")
        if result.figures:
            click.echo(f"Dashboard figures recounted for {result.figures} audiences.")
        mail = result.mail
        click.echo(f"Sent {mail.sent}, will retry {mail.retried}, failed {mail.failed}.")
        for error in mail.errors:
            click.echo(f"FAILED {error}")
        return
    if now is not None:
        raise click.BadParameter("only with --once: a running worker follows the real clock")
    stop = threading.Event()
    try:
        run_forever(current_app._get_current_object(), stop, interval)  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        stop.set()


@lms.command("worker")
@click.option("--once", is_flag=True, help="One pass of everything due, drain the outbox, exit.")
@click.option(
    "--now",
    callback=_parse_now,
    metavar="YYYY-MM-DDTHH:MM",
    help="The clock the schedule sees (UTC); the default is now.",
)
@click.option("--interval", default=2.0, show_default=True, help="Seconds between polls.")
@with_appcontext
def worker(once: bool, now: datetime | None, interval: float):
    """The worker: reminders, escalations, renewals, waiting assignments, imports, the outbox."""
    _worker(once, interval, now)


@lms.command("send-mail")
@click.option("--once", is_flag=True, help="One pass of everything due, drain the outbox, exit.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between polls.")
@with_appcontext
def send_mail(once: bool, interval: float):
    """The worker under its older name (see `worker`)."""
    _worker(once, interval, None)


# Secret keys that appear in examples and tests: never acceptable in a deployment.
KNOWN_SECRET_KEYS = {
    "dev",
    "secret",
    "changeme",
    "change-me",
    "development",
    "test-secret-key-not-for-production",
}


def gunicorn_workers(environ=os.environ) -> int | None:
    """How many workers gunicorn starts, as it reads them from the environment
    (GUNICORN_CMD_ARGS, then WEB_CONCURRENCY); None when neither says."""
    args = shlex.split(environ.get("GUNICORN_CMD_ARGS", ""))
    for i, arg in enumerate(args):
        value = None
        if arg in ("-w", "--workers") and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--workers="):
            value = arg.partition("=")[2]
        elif arg.startswith("-w") and len(arg) > 2:
            value = arg[2:]
        if value is not None and value.isdigit():
            return int(value)
    concurrency = environ.get("WEB_CONCURRENCY", "").strip()
    return int(concurrency) if concurrency.isdigit() else None


def deploy_problems(app, workers: int | None = None) -> tuple[list[str], list[str]]:
    """(problems, warnings) of the app's deployment settings; `workers`: how many
    gunicorn workers will serve it (None: unknown)."""
    config = app.config
    problems: list[str] = []
    warnings: list[str] = []
    if app.debug or config.get("DEBUG"):
        problems.append("debug mode is on (FLASK_DEBUG): it exposes an interactive debugger")
    key = config.get("SECRET_KEY") or ""
    if not key:
        problems.append("SECRET_KEY is not set")
    elif key.lower() in KNOWN_SECRET_KEYS or len(key) < 32:
        problems.append("SECRET_KEY is a default or too short: use 32+ random characters")
    public_url = config.get("PUBLIC_BASE_URL") or ""
    if not public_url:
        problems.append("PUBLIC_BASE_URL is not set: links in emails need it")
    https = public_url.startswith("https://")
    if public_url and not https:
        warnings.append("PUBLIC_BASE_URL is not https")
    if not config.get("SESSION_COOKIE_HTTPONLY"):
        problems.append("session cookies are not HttpOnly")
    if https and not config.get("SESSION_COOKIE_SECURE"):
        problems.append("session cookies are not Secure behind https (SECURE_COOKIES=1)")
    if config.get("CROSS_SITE_COOKIES") and (
        not config.get("SESSION_COOKIE_SECURE")
        or str(config.get("SESSION_COOKIE_SAMESITE")).lower() != "none"
    ):
        problems.append("CROSS_SITE_COOKIES needs session cookies SameSite=None; Secure")
    if any("*" in origin for origin in config.get("FRAME_ANCESTORS", [])):
        problems.append("FRAME_ANCESTORS contains a wildcard: list the portal origins")
    if config.get("TRUSTED_HEADER_AUTH") and not config.get("TRUSTED_PROXIES"):
        problems.append("TRUSTED_HEADER_AUTH is on but TRUSTED_PROXIES is empty")
    if str(config.get("RATELIMIT_STORAGE_URI", "")).startswith("memory://"):
        if workers is not None and workers > 1:
            warnings.append(
                f"gunicorn runs {workers} workers and RATELIMIT_STORAGE_URI is memory://: "
                f"each worker counts sign-in attempts alone, so the real limit is {workers} "
                "times LOGIN_ATTEMPTS; share the counts with "
                "RATELIMIT_STORAGE_URI=redis://host:6379"
            )
        else:
            warnings.append(
                "RATELIMIT_STORAGE_URI is memory://: each process counts sign-in attempts alone"
            )
    # The policy the app really sends, whatever produced it.
    from .config import normalise_prefix

    health = normalise_prefix(config.get("URL_PREFIX", "")) + "/healthz"
    csp = app.test_client().get(health).headers.get("Content-Security-Policy", "")
    directives = {
        part.split()[0].lower(): part.split()[1:] for part in csp.split(";") if part.split()
    }
    if "frame-ancestors" not in directives:
        problems.append("the Content-Security-Policy has no frame-ancestors")
    if directives.get("object-src") != ["'none'"]:
        problems.append("the Content-Security-Policy lacks object-src 'none'")
    return problems, warnings


@lms.command("check-deploy")
@click.option(
    "--workers",
    type=click.IntRange(1),
    help="gunicorn workers you will run (default: GUNICORN_CMD_ARGS or WEB_CONCURRENCY).",
)
@with_appcontext
def check_deploy(workers: int | None):
    """Check the settings a production deployment needs; exit 1 on any problem."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    problems, warnings = deploy_problems(app, workers or gunicorn_workers())
    for warning in warnings:
        click.echo(f"WARNING {warning}")
    for problem in problems:
        click.echo(f"FAIL {problem}")
    if problems:
        sys.exit(1)
    click.echo("Deployment settings look right.")


@lms.group("scim-token")
def scim_token():
    """Bearer tokens for SCIM provisioning clients."""


@scim_token.command("create")
@click.option("--name", required=True, help="What the token is for, e.g. the directory.")
@click.option(
    "--location",
    "locations",
    multiple=True,
    help="Scope the token to this location (repeatable); without --location or --group "
    "it is organisation-wide.",
)
@click.option(
    "--group", "groups", multiple=True, help="Scope the token to this group (repeatable)."
)
@with_appcontext
def scim_token_create(name: str, locations: tuple[str, ...], groups: tuple[str, ...]):
    """Create a SCIM token; it is printed once, as the last line."""
    from . import scim_tokens
    from .scope import by_names

    try:
        found_locations, found_groups = by_names(list(locations), list(groups))
    except DomainError as error:
        db.session.rollback()
        raise click.UsageError(error.message) from error
    try:
        row, token = scim_tokens.create(name, None, found_locations, found_groups)
    except DomainError as error:
        db.session.rollback()
        raise click.BadParameter(error.message, param_hint="--name") from error
    db.session.commit()
    reach = f"scoped to {row.scope.label}" if row.scope else "organisation-wide"
    click.echo(f"SCIM token “{row.name}” created ({reach}). Copy it now: it is not shown again.")
    click.echo(token)


@scim_token.command("revoke")
@click.option("--name", required=True, help="The token's name.")
@with_appcontext
def scim_token_revoke(name: str):
    """Revoke a SCIM token by name."""
    from . import scim_tokens
    from .models import ScimToken

    row = db.session.scalar(select(ScimToken).where(ScimToken.name == name))
    if row is None:
        raise click.BadParameter(f"no token named {name!r}", param_hint="--name")
    if not scim_tokens.revoke(row, None):
        click.echo(f"SCIM token “{name}” was already revoked.")
        return
    db.session.commit()
    click.echo(f"SCIM token “{name}” revoked.")
