"""Roster import, reading: an upload becomes a Table of text cells, or a clear refusal.

Excel formats through python-calamine (a Rust reader: no XML entity expansion), after
checking the zip container of .xlsx/.ods so a zip bomb is refused before parsing; CSV with
BOM, delimiter and encoding detection. Cells become text (user IDs keep their leading
zeros; calamine's `1.0` becomes `1`, its `''` a blank)."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from operator import itemgetter
from typing import Any

from flask import current_app, has_app_context

from .. import sheet_reader
from .bulk import gc_paused

EXTENSIONS = (".xlsx", ".xls", ".ods", ".csv")
# Zip containers (.xlsx, .ods) are checked before any parsing.
MAX_ZIP_MEMBERS = 1000
ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# Field -> accepted header names, compared without case, spaces or punctuation.
FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("email", "e-mail", "email address", "e-mail address", "mail", "work email"),
    "first_name": ("first name", "firstname", "given name", "forename", "first"),
    "last_name": ("last name", "lastname", "surname", "family name", "last"),
    "user_id": (
        "user id",
        "employee id",
        "employee number",
        "employee no",
        "staff id",
        "staff number",
        "personnel number",
        "id",
    ),
    "location": ("location", "site", "office", "branch"),
    "groups": ("groups", "group", "teams", "team", "departments", "department"),
    "role": ("role",),
    "courses": ("courses", "course", "course codes", "course code"),
    "manager_email": ("manager email", "manager e-mail", "manager", "line manager email"),
}
TEMPLATE_HEADERS = ("Email", "First name", "Last name", "User ID", "Location", "Groups", "Role")


class ImportFileError(Exception):
    """The file cannot be imported at all; the message says why."""


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


_ALIASES = {_key(alias): name for name, aliases in FIELDS.items() for alias in aliases}


def check_zip(data: bytes, max_members: int = MAX_ZIP_MEMBERS, max_bytes: int | None = None):
    """Refuse a zip container with too many members or too much data once inflated.

    Declared sizes can lie, so members are inflated (and discarded) while counting."""
    if max_bytes is None:
        max_bytes = _limits(0).uncompressed_bytes
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportFileError("The file is not a valid spreadsheet (a damaged zip).") from exc
    with archive:
        members = archive.infolist()
        if len(members) > max_members:
            raise ImportFileError(
                f"The workbook has {len(members)} parts; at most {max_members} are accepted."
            )
        declared = sum(m.file_size for m in members)
        too_big = "The workbook expands to more than {} MB; it is refused as unsafe."
        limit_mb = max_bytes // (1024 * 1024)
        if declared > max_bytes:
            raise ImportFileError(too_big.format(limit_mb))
        total = 0
        try:
            for member in members:
                with archive.open(member) as stream:
                    while chunk := stream.read(1 << 20):
                        total += len(chunk)
                        if total > max_bytes:
                            raise ImportFileError(too_big.format(limit_mb))
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise ImportFileError("The file is not a valid spreadsheet (a damaged zip).") from exc


def cell_text(value: Any) -> str:
    """A cell as text: integral floats without `.0`, dates as ISO, blanks as ''."""
    if type(value) is str:  # most cells: first, and without the isinstance chain
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return (
            value.date().isoformat()
            if value.time() == datetime.min.time()
            else value.isoformat(" ")
        )
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def _limits(max_rows: int) -> sheet_reader.Limits:
    config = current_app.config if has_app_context() else {}
    return sheet_reader.Limits.from_config(config, max_rows)


def _read_excel(data: bytes, extension: str, max_rows: int) -> list[tuple[int, list[str]]]:
    """The non-empty rows as (row number, cells); .xlsx through the bounded reader."""
    if extension in (".xlsx", ".ods"):
        if not data.startswith(ZIP_MAGIC):
            raise ImportFileError(
                f"The file is not a valid {extension} workbook (was another file renamed?)."
            )
        check_zip(data)
        try:
            if extension == ".xlsx":
                streamed = sheet_reader.check_xlsx(io.BytesIO(data), _limits(max_rows))
                if streamed is not None:
                    return streamed
            else:
                sheet_reader.check_ods(io.BytesIO(data), _limits(max_rows))
        except sheet_reader.SheetError as exc:
            raise ImportFileError(str(exc)) from exc
    elif not data.startswith(OLE_MAGIC):
        raise ImportFileError("The file is not a valid .xls workbook (was another file renamed?).")
    else:
        try:
            sheet_reader.check_xls(data, _limits(max_rows))
        except sheet_reader.SheetError as exc:
            raise ImportFileError(str(exc)) from exc
    from python_calamine import CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
        if not workbook.sheet_names:
            return []
        rows = workbook.get_sheet_by_index(0).to_python(skip_empty_area=False)
    except Exception as exc:  # calamine raises its own error types for any damage
        raise ImportFileError(f"The workbook could not be read: {exc}") from exc
    return [(n, row) for n, row in enumerate(map(_texts, rows), start=1) if any(row)]


def _texts(row: list[Any]) -> list[str]:
    """A row's cells as text: a row of strings only (most rows) by one map in C, 40% of the
    time of the cell by cell test."""
    try:
        return list(map(str.strip, row))
    except TypeError:  # a number, a date or a blank (None) among them
        return [v.strip() if type(v) is str else cell_text(v) for v in row]


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data[:4096]:
        raise ImportFileError("The file is not a text CSV file.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # cp1252 leaves five bytes undefined; latin-1 maps them rather than failing.
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            return data.decode("latin-1")


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the header line most: `,`, `;`, tab or `|`."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _read_csv(data: bytes) -> list[list[str]]:
    if data.startswith((ZIP_MAGIC, OLE_MAGIC)):
        raise ImportFileError("The file is a workbook, not CSV: save it with its own extension.")
    text = decode_text(data)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text))
    try:
        return [[cell.strip() for cell in row] for row in reader]
    except csv.Error as exc:
        raise ImportFileError(f"The CSV file could not be read: {exc}") from exc


@dataclass
class Table:
    """The rows of an upload, cells as text, aligned to `fields` (recognised columns)."""

    fields: list[str]
    rows: list[list[str]]
    lines: list[int]  # the spreadsheet row number of each row (the header is row 1)
    ignored: list[str] = field(default_factory=list)

    def as_data(self) -> dict[str, Any]:
        # The rows last: a reader of the stored text finds the other members without
        # stepping over them (jobs.error_texts).
        return {
            "fields": self.fields,
            "lines": self.lines,
            "ignored": self.ignored,
            "rows": self.rows,
        }


@gc_paused()
def read_table(filename: str, data: bytes, max_rows: int) -> Table:
    """Read an upload into a Table, or raise ImportFileError with a clear reason."""
    extension = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension not in EXTENSIONS:
        raise ImportFileError("Upload an .xlsx, .xls, .ods or .csv file.")
    if not data:
        raise ImportFileError("The file is empty.")
    if extension == ".csv":
        raw = _read_csv(data)
        numbered = [(n, row) for n, row in enumerate(raw, start=1) if any(c for c in row)]
    else:
        numbered = _read_excel(data, extension, max_rows)
    try:
        sheet_reader.check_cells(numbered, _limits(max_rows))
    except sheet_reader.SheetError as exc:
        raise ImportFileError(str(exc)) from exc
    if not numbered:
        raise ImportFileError("The file is empty.")
    header_line, header = numbered[0]
    columns: dict[str, int] = {}
    ignored = []
    for index, name in enumerate(header):
        target = _ALIASES.get(_key(name))
        if target and target not in columns:
            columns[target] = index
        elif name:
            ignored.append(name)
    if "email" not in columns:
        found = ", ".join(f"“{h}”" for h in header if h) or "none"
        raise ImportFileError(f"No email column was found in the first row (columns: {found}).")
    body = numbered[1:]
    if not body:
        raise ImportFileError("The file has a header row but no users.")
    if len(body) > max_rows:
        raise ImportFileError(
            f"The file has {len(body):,} rows; at most {max_rows:,} are accepted."
        )
    fields = list(columns)
    indexes = [columns[f] for f in fields]
    width = max(indexes) + 1
    pick = itemgetter(*indexes)
    rows = [
        (
            ([pick(row)] if len(indexes) == 1 else list(pick(row)))
            if len(row) >= width
            else [row[i] if i < len(row) else "" for i in indexes]
        )
        for _, row in body
    ]
    return Table(fields=fields, rows=rows, lines=[n for n, _ in body], ignored=ignored)
