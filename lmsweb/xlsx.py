"""Excel output shared by every export: streamed write-only workbooks, safe cells."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

# Text starting with one of these could be taken for a formula (formula injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
# Control characters are not allowed in the XML of a workbook.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def safe_text(value: str) -> str:
    return _CONTROL.sub("", value)


def cell(sheet, value: Any, number_format: str | None = None) -> WriteOnlyCell:
    """A write-only cell. Strings are always text cells (never formulas); those that look
    like formulas also get Excel's quote prefix, so editing the cell keeps them text."""
    if isinstance(value, str):
        text = safe_text(value)
        c = WriteOnlyCell(sheet, value=text)
        c.data_type = "s"
        if text.startswith(FORMULA_START):
            c.quotePrefix = True
        return c
    c = WriteOnlyCell(sheet, value=value)
    if number_format:
        c.number_format = number_format
    elif isinstance(value, datetime):
        c.number_format = "yyyy-mm-dd hh:mm"
    elif isinstance(value, date):
        c.number_format = "yyyy-mm-dd"
    return c


# Text that may go to openpyxl as it is: not formula-looking, no control character.
_UNSAFE = re.compile(r"^[=+\-@\t\r\n]|[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _value(sheet, value: Any) -> Any:
    """What to append for `value`: the plain value where openpyxl already writes it safely
    (a str not starting with "=" is a text cell; a date gets yyyy-mm-dd), else a cell.
    Building a cell object for every value more than doubled the time of a large export."""
    kind = type(value)
    if kind is str:
        return value if _UNSAFE.search(value) is None else cell(sheet, value)
    if value is None or kind is int or kind is float or kind is date:
        return value
    return cell(sheet, value)


def write_workbook(
    target,
    title: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    widths: Sequence[int] | None = None,
) -> int:
    """Write one sheet (frozen, filterable header) to `target` (path or file); returns rows."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31])
    sheet.freeze_panes = "A2"
    for index, width in enumerate(widths or [], start=1):
        sheet.column_dimensions[_column_letter(index)].width = width
    bold = Font(bold=True)
    header_cells = []
    for name in headers:
        c = cell(sheet, name)
        c.font = bold
        header_cells.append(c)
    sheet.append(header_cells)
    written = 0
    for row in rows:
        sheet.append([_value(sheet, value) for value in row])
        written += 1
    sheet.auto_filter.ref = f"A1:{_column_letter(len(headers))}{written + 1}"
    workbook.save(target)
    return written


def _column_letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index)
