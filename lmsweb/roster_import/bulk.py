"""Roster import, bulk writes: many rows per statement, on either engine.

SQLite: one statement per batch reads its rows from a JSON array (`json_each`). The users
table's search index (an FTS5 table kept by triggers, 0009_substring_search) saves its
pending terms at the end of every statement, so 90,000 single-row INSERTs (an
executemany) wrote 90,000 tiny index segments and merged them: 16 of the commit's 21 CPU
seconds. The same rows in one statement cost the index about a second, and the triggers
stay the only writer of the index.
PostgreSQL: COPY for inserts (psycopg's executemany sends one statement per row); one
UPDATE ... FROM unnest(arrays) for updates.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import chain, islice
from typing import Any

from sqlalchemy import (
    ARRAY,
    Table,
    bindparam,
    cast,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import OID, REGCLASS
from sqlalchemy.exc import IntegrityError

from ..extensions import db

# Rows per statement: bounds the JSON text (SQLite) or the arrays (PostgreSQL) held at once.
BATCH = 20_000


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cycle collector off while an import's rows are read, planned and written
    (a decorator too). A file of 100,000 rows is a million or so lists, dicts and strings
    held at once: each full collection walked all of them again, 2.3 of the 12.3 seconds of
    such an import on PostgreSQL. Reference counting still frees everything these build;
    the collector is switched back on by the caller that switched it off, error or not.
    The switch is the process's. Gunicorn's sync workers and the worker run one request or
    job at a time; in the demo server (`flask lms serve`: threaded, the worker a thread)
    the other threads' cyclic garbage waits until the collector is back, seconds at most."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def batches(items: Iterable, size: int = BATCH) -> Iterator[list]:
    """Lists of `size` items from any iterable: a generator is consumed a batch at a time."""
    items = iter(items)
    while part := list(islice(items, size)):
        yield part


def json_values(values) -> Any:
    """A subquery of the values of a list, for `column IN (...)` on SQLite: one parameter
    (an IN list of 900 placeholders cost more to render than to run)."""
    return select(literal_column("value")).select_from(
        func.json_each(bindparam(None, json.dumps(list(values))))
    )


def _processors(table: Table, names: list[str]) -> list:
    """The bind processors of these columns (dates and times as SQLite stores them)."""
    dialect = db.session.get_bind().dialect
    return [table.c[name].type._cached_bind_processor(dialect) for name in names]


def _json_rows(table: Table, names: list[str], rows: list[dict[str, Any]]) -> str:
    processors = _processors(table, names)
    pairs = list(zip(names, processors, strict=True))
    return json.dumps(
        [[row[n] if p is None else p(row[n]) for n, p in pairs] for row in rows],
        ensure_ascii=False,
    )


def _from_json(names: list[str]):
    """The rows of the JSON array parameter `rows` as a subquery with these columns."""
    value = literal_column("value")
    return (
        select(*(func.json_extract(value, f"$[{i}]").label(n) for i, n in enumerate(names)))
        .select_from(func.json_each(bindparam("rows")))
        .subquery("v")
    )


def _defaults(table: Table, names: list[str]) -> dict[str, Any]:
    """The scalar Python-side defaults an INSERT would fill in (COPY and INSERT ... SELECT
    know none)."""
    return {
        c.name: c.default.arg
        for c in table.columns
        if c.name not in names and c.default is not None and c.default.is_scalar
    }


def insert_rows(table: Table, rows: Iterable[dict[str, Any]]) -> None:
    """Insert rows (dicts of one shape) in the session's transaction. A generator of rows is
    written a batch at a time, never held whole."""
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return
    rows = chain([first], rows)
    names = list(first)
    defaults = _defaults(table, names)
    names += list(defaults)
    if postgresql():
        columns = ", ".join(f'"{name}"' for name in names)
        connection = db.session.connection()
        raw = connection.connection.dbapi_connection
        try:
            with (
                raw.cursor() as cursor,
                cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN') as copy,
            ):
                for row in rows:
                    copy.write_row([row[n] if n in row else defaults[n] for n in names])
        except connection.dialect.loaded_dbapi.IntegrityError as error:
            # The driver's own error, past SQLAlchemy: raised as SQLAlchemy raises it.
            raise IntegrityError(f"COPY {table.name}", None, error) from error
        return
    source = _from_json(names)
    statement = insert(table).from_select(names, select(*source.c))
    for part in batches(rows):
        if defaults:
            part = [{**defaults, **row} for row in part]
        db.session.execute(statement, {"rows": _json_rows(table, names, part)})


def update_rows(table: Table, rows: list[dict[str, Any]]) -> None:
    """Set columns by id: rows are dicts of one shape, each with its "id"."""
    if not rows:
        return
    names = ["id", *(n for n in rows[0] if n != "id")]
    if postgresql():
        # One array per column; unnest in one SELECT list zips them back into rows.
        source = select(
            *(
                func.unnest(bindparam(f"p_{n}", type_=ARRAY(table.c[n].type))).label(n)
                for n in names
            )
        ).subquery("v")
    else:
        source = _from_json(names)
    statement = (
        update(table).where(table.c.id == source.c.id).values({n: source.c[n] for n in names[1:]})
    )
    for part in batches(rows):
        if postgresql():
            params = {f"p_{n}": [row[n] for row in part] for n in names}
        else:
            params = {"rows": _json_rows(table, names, part)}
        db.session.execute(statement, params)


def new_ids(table: Table, count: int) -> list[int]:
    """`count` ids for new rows of `table`, in increasing order. PostgreSQL: from the id
    sequence, as an INSERT would take them. SQLite: after the largest id, as SQLite itself
    would number them; the caller holds the write lock (every import runs in a BEGIN
    IMMEDIATE transaction), so no other writer can take them in between."""
    if count <= 0:
        return []
    if postgresql():
        # The sequence named once, by its oid: pg_get_serial_sequence in the select list ran
        # once a row, 225 of the 250 ms that 90,000 ids took.
        sequence = db.session.scalar(
            select(cast(func.pg_get_serial_sequence(table.name, "id"), REGCLASS).cast(OID))
        )
        return sorted(
            db.session.scalars(
                select(func.nextval(cast(bindparam("seq", sequence, OID), REGCLASS))).select_from(
                    func.generate_series(1, count)
                )
            )
        )
    last = db.session.scalar(select(func.coalesce(func.max(table.c.id), 0)))
    return list(range(last + 1, last + 1 + count))
