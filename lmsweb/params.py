"""Ids and page numbers from URLs and forms, bounded to what the database can hold.

A path or query value beyond the integer column's range made SQLite raise OverflowError
and PostgreSQL refuse the statement (a 500); a Unicode digit such as "²" passes
`str.isdigit()` but not `int()`. Every id and page is parsed here instead: ASCII digits
only, 1 to 2**31 - 1 (PostgreSQL's `integer`), else "not given" (or 404 for a path).
"""

from __future__ import annotations

from flask import Flask, abort, request
from werkzeug.routing import BaseConverter, ValidationError
from wtforms.validators import NumberRange

MAX_ID = 2**31 - 1
# Enough for any selection made by hand; larger sets go by "all matching the filters".
MAX_IDS = 10_000


def parse_int(value: str | None, maximum: int = MAX_ID) -> int | None:
    """A whole number 1..maximum written in ASCII digits, else None."""
    value = (value or "").strip()
    if value.isascii() and value.isdigit() and len(value) <= len(str(maximum)):
        number = int(value)
        if 0 < number <= maximum:
            return number
    return None


def page_arg(name: str = "page") -> int:
    """The page number in the query string: 1 when absent or not a page number."""
    return parse_int(request.args.get(name)) or 1


def ids_arg(name: str, limit: int = MAX_IDS) -> list[int]:
    """The distinct valid ids in a repeated query parameter (others ignored); 400 past
    `limit`, so a crafted URL cannot build an unbounded IN list."""
    values = request.args.getlist(name)
    if len(values) > limit:
        abort(400, f"At most {limit:,} ids can be given; select by filter instead.")
    ids = (parse_int(v) for v in values)
    return list(dict.fromkeys(i for i in ids if i is not None))


def coerce_id(value) -> int:
    """For WTForms `coerce=`: a ValueError (a form error, not a 500) when out of range."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return value
    number = parse_int(str(value))
    if number is None:
        raise ValueError(f"{value!r} is not an id")
    return number


def in_range() -> NumberRange:
    """For a WTForms IntegerField holding an id or a page: 1..MAX_ID, else a form error."""
    return NumberRange(min=1, max=MAX_ID, message="Enter a number from 1 to 2,147,483,647.")


class BoundedIntegerConverter(BaseConverter):
    """`<id:name>`: ASCII digits within the database's integer range, else 404."""

    regex = r"[0-9]{1,10}"
    weight = 50
    part_isolating = True

    def to_python(self, value: str) -> int:
        number = parse_int(value)
        if number is None:
            raise ValidationError()
        return number

    def to_url(self, value) -> str:
        return str(int(value))


def _refuse_nul() -> None:
    """NUL cannot be stored or compared by PostgreSQL (it raises, a 500): refuse it in any
    query or form value before a view can pass it on."""
    sources = [request.args]
    if request.method == "POST":
        sources.append(request.form)
    for values in sources:
        for key, value in values.items(multi=True):
            if "\x00" in key or "\x00" in value:
                abort(400, "The request contains a NUL character, which is not allowed.")


def init_app(app: Flask) -> None:
    app.url_map.converters["id"] = BoundedIntegerConverter
    app.before_request(_refuse_nul)
