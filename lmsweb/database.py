"""The engine's SQLite settings and its write transactions (PostgreSQL needs neither)."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from contextvars import ContextVar

from flask import has_request_context, request
from sqlalchemy import event
from sqlalchemy.engine import Engine

_immediate: ContextVar[bool] = ContextVar("sqlite_immediate", default=False)


@contextmanager
def sqlite_write_transaction():
    """Outside a request (CLI, workers): start SQLite transactions with BEGIN IMMEDIATE."""
    token = _immediate.set(True)
    try:
        yield
    finally:
        _immediate.reset(token)


@event.listens_for(Engine, "connect")
def _sqlite_on_connect(dbapi_connection, _record):
    if isinstance(dbapi_connection, sqlite3.Connection):
        # We emit BEGIN ourselves (below): pysqlite's lazy BEGIN breaks check-then-write.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA busy_timeout = 20000")
        cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_on_begin(connection):
    if connection.dialect.name != "sqlite":
        return
    # A POST writes: take the write lock up front so a count checked is a count kept,
    # and two writers never deadlock upgrading shared locks.
    writing = _immediate.get() or (
        has_request_context() and request.method not in ("GET", "HEAD", "OPTIONS")
    )
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")
