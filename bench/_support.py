"""Shared by the benchmarks: which databases to measure, and a bench administrator."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa

DATA = Path(__file__).resolve().parent / ".data"


def databases(sqlite_file: str, postgres_name: str, fresh: bool = False) -> list[tuple[str, str]]:
    """(engine, URL) pairs to measure: a SQLite file under bench/.data/, and a database named
    `postgres_name` on the TEST_DATABASE_URL server when that is PostgreSQL (created when
    missing; dropped and created again when `fresh`)."""
    DATA.mkdir(exist_ok=True)
    found = [("sqlite", f"sqlite:///{DATA / sqlite_file}")]
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if not url.startswith(("postgres://", "postgresql")):
        return found
    from lmsweb.config import normalise_database_url

    base = sa.make_url(normalise_database_url(url))
    server = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        if fresh:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{postgres_name}" WITH (FORCE)')
        exists = conn.scalar(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": postgres_name}
        )
        if not exists:
            conn.exec_driver_sql(f'CREATE DATABASE "{postgres_name}"')
    server.dispose()
    target = base.set(database=postgres_name).render_as_string(hide_password=False)
    found.append(("postgresql", target))
    return found


def add_admin(email: str, password: str) -> None:
    """An administrator to sign in as (inside an app context; the caller commits)."""
    from werkzeug.security import generate_password_hash

    from lmsweb.extensions import db
    from lmsweb.models import User

    if db.session.scalar(sa.select(User.id).where(User.email == email)) is None:
        db.session.add(
            User(
                email=email,
                first_name="Bench",
                last_name="Admin",
                role="admin",
                status="active",
                password_hash=generate_password_hash(password),
            )
        )
