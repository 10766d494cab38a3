"""Excel output shared by every export: a workbook streamed as it is written, safe cells.

openpyxl's write-only mode needed 17.5 s for 100,000 rows and wrote the whole file before
the first byte could be sent; a zip of sheet XML written row by row is ~5× faster
(shared/PERF-NOTES.md) and its bytes leave as soon as a batch of rows is compressed, so a
download starts at once and memory stays bounded whatever the number of rows.

Safety: strings are always inline text cells (never formulas); those that look like
formulas also get Excel's quote prefix, so editing the cell keeps them text; characters
XML 1.0 cannot hold are removed.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import tempfile
import threading
import traceback
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import IO, Any
from urllib.parse import quote

from flask import Response, current_app, stream_with_context
from sqlalchemy import Connection, Float, Integer, Select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from .extensions import db

MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Text starting with one of these could be taken for a formula (formula injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
# Characters XML 1.0 cannot hold (C0 controls but tab/CR/LF, lone surrogates, U+FFFE/F).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Rows compressed before their bytes are handed on: small enough to start sending at once,
# large enough that a chunk is not a few bytes.
BATCH_ROWS = 500
_EPOCH = datetime(1899, 12, 30)
_EPOCH_DAY = _EPOCH.date()

# Style indexes in styles.xml below.
_BOLD, _DAY, _TIME, _QUOTED = 1, 2, 3, 4


class excel_day(FunctionElement):
    """A date or timestamp column as Excel's day number (days since 1899-12-30), computed by
    the database: no date object is made per cell. For a column of kind "d"."""

    type = Integer()
    inherit_cache = True


class excel_time(FunctionElement):
    """A timestamp column as Excel's serial date and time, for a column of kind "s"."""

    type = Float()
    inherit_cache = True


@compiles(excel_day)
def _excel_day_sqlite(element, compiler, **kw):
    # julianday(1899-12-30 00:00) is 2415018.5; the day is the floor (serials are positive).
    return f"CAST(julianday({compiler.process(element.clauses, **kw)}) - 2415018.5 AS INTEGER)"


@compiles(excel_day, "postgresql")
def _excel_day_postgresql(element, compiler, **kw):
    return f"(CAST({compiler.process(element.clauses, **kw)} AS DATE) - DATE '1899-12-30')"


@compiles(excel_time)
def _excel_time_sqlite(element, compiler, **kw):
    return f"(julianday({compiler.process(element.clauses, **kw)}) - 2415018.5)"


@compiles(excel_time, "postgresql")
def _excel_time_postgresql(element, compiler, **kw):
    return (
        f"(EXTRACT(EPOCH FROM CAST({compiler.process(element.clauses, **kw)} AS TIMESTAMP)) "
        "/ 86400.0 + 25569)"
    )


# SQLite reads an export's pages through a memory map (the OS's page cache, mapped), not
# with a system call (pread) each: the users export at 1,000,000 users reads ~5 million pages
# at random (each user's row, groups and records), and those calls were a third to a half of
# its query's CPU time (sys 8.3 of 16.4 s; mapped: 0.1 of 12.3 s). SQLite caps it at its own
# maximum (2 GB unless built otherwise); past that, pages are read as before.
SQLITE_MMAP_BYTES = 1 << 31


def stream_rows(
    query: Select, batch: int = 2000, connection: Connection | None = None
) -> Iterator[Any]:
    """The query's rows through Core (no ORM row processing), from a server-side cursor on
    PostgreSQL, and on SQLite through a memory map for the time of the export. On the
    request's connection unless one is given."""
    connection = connection if connection is not None else db.session.connection()
    mapped = None
    if connection.dialect.name == "sqlite":
        mapped = connection.exec_driver_sql("PRAGMA mmap_size").scalar()
        connection.exec_driver_sql(f"PRAGMA mmap_size = {SQLITE_MMAP_BYTES}")
    result = None
    ahead = connection.dialect.name == "postgresql"
    if ahead:
        # Half batches, one read ahead: at most a batch and a half in memory, as one batch was.
        batch = max(batch // 2, 1)
    try:
        result = connection.execute(query.execution_options(stream_results=True, yield_per=batch))
        if ahead:
            for rows in _read_ahead(result.partitions()):
                yield from rows
        else:
            yield from result
    finally:
        if result is not None and not connection.closed:
            result.close()  # a server-side cursor left open by an abandoned download
        # As it was, for the pooled connection's next user (unless the request's connection
        # is already gone: a download abandoned at teardown).
        if mapped is not None and not connection.closed:
            connection.exec_driver_sql(f"PRAGMA mmap_size = {int(mapped)}")


_END = object()


def _read_ahead(batches: Iterator[Any], ahead: int = 1) -> Iterator[Any]:
    """PostgreSQL: the cursor's next batches fetched by a thread while this one writes the
    rows it has. The server prepares a batch only when it is asked for it, so without this
    the two took turns; the thread waits on the network with the GIL released. (On SQLite
    a thread gains nothing: stepping gives the GIL back and takes it again for every row.)
    The caller's connection is used by the thread alone until the last batch is handed
    over, or until it stops (an abandoned download): this generator waits for it to end."""
    handed: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def fetch() -> None:
        try:
            for rows in batches:
                while not stop.is_set():
                    try:
                        handed.put(rows, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handed.put(_END)
        except BaseException as error:  # noqa: BLE001 - raised again in the writer's thread
            handed.put(error)

    reader = threading.Thread(target=fetch, name="xlsx-read-ahead", daemon=True)
    reader.start()
    try:
        while (item := handed.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # make room, should the reader wait to hand over a batch
            with contextlib.suppress(queue.Empty):
                handed.get(timeout=0.1)
        reader.join()


class QueryRows:
    """A sheet's rows exactly as its query returns them (every column ready to write). The
    writer may have such a sheet read and written by a process of its own while it writes
    the sheets before it (`_SheetProcess`); otherwise they stream here from `stream_rows`."""

    def __init__(self, query: Select, batch: int = 2000) -> None:
        self.query, self.batch = query, batch

    def __iter__(self) -> Iterator[Any]:
        return stream_rows(self.query, self.batch)


def safe_text(value: str) -> str:
    return _CONTROL.sub("", value)


def _escape(text: str) -> str:
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def column_letter(index: int) -> str:
    """1 -> A, 27 -> AA."""
    letters = ""
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


# Text that needs more than wrapping: escapes, removed characters, a quote prefix (formula
# start) or preserved space at either end.
_PLAIN = re.compile(r"[&<>\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]|^[=+\-@\s]|\s$")


def _text_cell(ref: str, value: str, style: int = 0) -> str:
    text = _CONTROL.sub("", value) if _CONTROL.search(value) else value
    if style == 0 and text.startswith(FORMULA_START):
        style = _QUOTED
    space = ' xml:space="preserve"' if text[:1].isspace() or text[-1:].isspace() else ""
    s = f' s="{style}"' if style else ""
    return f'<c r="{ref}" t="inlineStr"{s}><is><t{space}>{_escape(text)}</t></is></c>'


def _cell(ref: str, value: Any) -> str:
    kind = type(value)
    if kind is str:
        return _text_cell(ref, value)
    if kind is int or kind is float or kind is Decimal:
        return f'<c r="{ref}"><v>{value}</v></c>'
    if kind is bool:
        return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, datetime):
        delta = value.replace(tzinfo=None) - _EPOCH
        serial = delta.days + delta.seconds / 86400 + delta.microseconds / 86_400_000_000
        return f'<c r="{ref}" s="{_TIME}"><v>{serial!r}</v></c>'
    if isinstance(value, date):
        return f'<c r="{ref}" s="{_DAY}"><v>{(value - _EPOCH_DAY).days}</v></c>'
    return _text_cell(ref, str(value))


def _sheet_start(headers: Sequence[str], widths: Sequence[int] | None) -> str:
    cols = "".join(
        f'<col min="{i}" max="{i}" width="{w}" customWidth="1"/>'
        for i, w in enumerate(widths or [], start=1)
    )
    header = "".join(
        _text_cell(f"{column_letter(i)}1", name, _BOLD) for i, name in enumerate(headers, start=1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<sheetViews><sheetView workbookViewId="0">'
        '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
        '<selection pane="bottomLeft"/></sheetView></sheetViews>'
        '<sheetFormatPr defaultRowHeight="15"/>'
        + (f"<cols>{cols}</cols>" if cols else "")
        + f'<sheetData><row r="1">{header}</row>'
    )


def _content_types(sheets: int) -> str:
    sheet_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.sheet.main+xml"/>'
        + "".join(
            f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="{sheet_type}"/>'
            for n in range(1, sheets + 1)
        )
        + '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.styles+xml"/>'
        "</Types>"
    )


_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)


def _workbook_rels(sheets: int) -> str:
    kind = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        + "".join(
            f'<Relationship Id="rId{n}" Type="{kind}/worksheet" Target="worksheets/sheet{n}.xml"/>'
            for n in range(1, sheets + 1)
        )
        + f'<Relationship Id="rId{sheets + 1}" Type="{kind}/styles" Target="styles.xml"/>'
        "</Relationships>"
    )


_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>'
    '<numFmt numFmtId="165" formatCode="yyyy-mm-dd hh:mm"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="5"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="49" fontId="0" fillId="0" borderId="0" xfId="0" quotePrefix="1" '
    'applyNumberFormat="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)


def _sheet_name(title: str) -> str:
    return _escape(safe_text(title)[:31]).replace('"', "&quot;")


def _workbook_xml(names: Sequence[str], last_refs: Sequence[str]) -> str:
    sheets = "".join(
        f'<sheet name="{name}" sheetId="{n}" r:id="rId{n}"/>'
        for n, name in enumerate(names, start=1)
    )
    filters = "".join(
        f'<definedName name="_xlnm._FilterDatabase" localSheetId="{n}" hidden="1">\''
        f"{name.replace(chr(39), chr(39) * 2)}'!{last_ref}</definedName>"
        for n, (name, last_ref) in enumerate(zip(names, last_refs, strict=True))
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        f"<sheets>{sheets}</sheets><definedNames>{filters}</definedNames></workbook>"
    )


class _Sink:
    """A write-only file for ZipFile that keeps the bytes until they are taken."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


@dataclass
class Sheet:
    """One sheet of a streamed workbook. `kinds`, one letter per column, lets the writer
    skip the per-cell type dispatch: "t" text (str or None), "n" number, "d" date, "s"
    date and time (a date/datetime, or already an Excel serial number, e.g. from
    `excel_day`). Without it each cell's type is looked at."""

    title: str
    headers: Sequence[str]
    rows: Iterable[Sequence[Any]]
    widths: Sequence[int] | None = None
    kinds: str | None = None


def _serial(value: Any, day: bool) -> Any:
    if isinstance(value, datetime):
        if day:
            return (value.date() - _EPOCH_DAY).days
        delta = value.replace(tzinfo=None) - _EPOCH
        return repr(delta.days + delta.seconds / 86400 + delta.microseconds / 86_400_000_000)
    if isinstance(value, date):
        return (value - _EPOCH_DAY).days
    return value


def _cell_source(kind: str, index: int, letter: str) -> str:
    """The f-string source of one cell of a typed row, its value being `v{index}`."""
    v = f"v{index}"
    if kind == "t":
        cell = f"""f'<c r="{letter}{{n}}" t="inlineStr"><is><t>{{{v}}}</t></is></c>'"""
        return f"({cell} if {v} else '')"
    if kind == "n":
        return f"""('' if {v} is None else f'<c r="{letter}{{n}}"><v>{{{v}}}</v></c>')"""
    style, number, day = (_DAY, "int", True) if kind == "d" else (_TIME, "float", False)
    # The database computed the serial number (excel_day/excel_time), or a date object is
    # converted here.
    value = f"{v} if type({v}) is {number} else _serial({v}, {day})"
    return (
        f"""('' if {v} is None else f'<c r="{letter}{{n}}" s="{style}"><v>{{{value}}}</v></c>')"""
    )


def _row_writer(kinds: str, letters: list[str]) -> Callable[[str, Sequence[Any]], str | None]:
    """A function (row number as text, row) -> the row's XML, or None when a text of the row
    is not plain (the caller then writes it cell by cell). Generated once per sheet from the
    column kinds, so a row is one f-string: no call or type test per cell (a third of the
    writer's time at 100,000 rows), and the row number is formatted once, not once a cell.
    The source holds only names made here: letters and kinds."""
    if not kinds or set(kinds) - set("tnds"):
        raise ValueError(f"column kinds must be letters of 'tnds': {kinds!r}")
    names = [f"v{i}" for i in range(len(kinds))]
    texts = [f"v{i}" for i, kind in enumerate(kinds) if kind == "t"]
    escape = "".join(f"\n        {t} = _escape({t}) if {t} else {t}" for t in texts)
    cells = " + ".join(
        _cell_source(kind, i, letter)
        for i, (kind, letter) in enumerate(zip(kinds, letters, strict=True))
    )
    source = f"""
def write(n, row):
    {", ".join(names)}, = row
    plain = _plainness([t for t in ({", ".join(texts)},) if t])
    if plain == _MARKUP:{escape or chr(10) + "        pass"}
    elif plain != _PLAIN_TEXT:
        return None
    return f'<row r="{{n}}">' + {cells} + '</row>'
"""
    namespace: dict[str, Any] = {
        "_escape": _escape,
        "_serial": _serial,
        "_plainness": _plainness,
        "_MARKUP": _MARKUP,
        "_PLAIN_TEXT": _PLAIN_TEXT,
    }
    exec(compile(source, f"<xlsx row writer {kinds}>", "exec"), namespace)  # noqa: S102
    return namespace["write"]


# A row's texts are either written as they are, or after escaping &, < and > (common in
# names: "Health & Safety"), or need the cell-by-cell path (removed characters, a formula's
# quote prefix, preserved spaces).
_PLAIN_TEXT, _MARKUP, _SPECIAL = 0, 1, 2
# Characters that need more than escaping (XML cannot hold them, or tab/CR/LF which a quote
# prefix or preserved space may concern); \x1f is left out: it separates the joined texts.
_NOT_PLAIN = re.compile(r"[\x00-\x1e\ud800-\udfff\ufffe\uffff]")


def _plainness(texts: list[str]) -> int:
    """How a row's texts may be written: one pattern search and a few substring tests over
    the texts joined, not a search per cell."""
    joined = "\x1f" + "\x1f".join(texts) + "\x1f"
    if (
        _NOT_PLAIN.search(joined) is not None
        or joined.count("\x1f") != len(texts) + 1
        or "\x1f=" in joined
        or "\x1f+" in joined
        or "\x1f-" in joined
        or "\x1f@" in joined
        or "\x1f " in joined
        or " \x1f" in joined
    ):
        return _SPECIAL
    if "&" in joined or "<" in joined or ">" in joined:
        return _MARKUP
    return _PLAIN_TEXT


def _row_batches(sheet: Sheet, letters: list[str]) -> Iterator[tuple[int, str]]:
    """The sheet's rows as (rows so far, their XML), BATCH_ROWS rows at a time. With declared
    column kinds a row goes through its generated writer (cell by cell only when a text
    needs it)."""
    kinds = sheet.kinds or ""
    write = _row_writer(kinds, letters) if kinds else None
    number = 1
    batch: list[str] = []
    append = batch.append
    for row in sheet.rows:
        number += 1
        if write is None:
            append(_any_row(letters, row, number))
        else:
            append(write(str(number), row) or _any_row(letters, row, number, kinds))
        if len(batch) == BATCH_ROWS:
            yield number - 1, "".join(batch)
            batch.clear()
    yield number - 1, "".join(batch)


def _any_row(letters: list[str], row: Sequence[Any], number: int, kinds: str = "") -> str:
    cells = []
    for index, (letter, value) in enumerate(zip(letters, row, strict=False)):
        if value is None or value == "":
            continue
        kind = kinds[index] if kinds else ""
        if kind in ("d", "s"):
            style = _DAY if kind == "d" else _TIME
            value = _serial(value, kind == "d")
            cells.append(f'<c r="{letter}{number}" s="{style}"><v>{value}</v></c>')
        # Most cells are plain text: one pattern check, then one f-string.
        elif type(value) is str and _PLAIN.search(value) is None:
            cells.append(f'<c r="{letter}{number}" t="inlineStr"><is><t>{value}</t></is></c>')
        else:
            cells.append(_cell(f"{letter}{number}", value))
    return f'<row r="{number}">' + "".join(cells) + "</row>"


def _sheet_xml(sheet: Sheet, letters: list[str], written: list[int]) -> Iterator[bytes]:
    """One sheet's XML, encoded, a batch of rows at a time; its number of rows is appended to
    `written` at the end."""
    yield _sheet_start(sheet.headers, sheet.widths).encode()
    count = 0
    for count, xml in _row_batches(sheet, letters):  # noqa: B007 - the last count is kept
        yield xml.encode()
    yield f'</sheetData><autoFilter ref="A1:{letters[-1]}{count + 1}"/></worksheet>'.encode()
    written.append(count)


def _letters(sheet: Sheet) -> list[str]:
    return [column_letter(i) for i in range(1, len(sheet.headers) + 1)]


def _member(index: int) -> str:
    return f"xl/worksheets/sheet{index}.xml"


def _new_archive(target) -> zipfile.ZipFile:
    return zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1)


def _in_processes(sheets: Sequence[Sheet]) -> set[int]:
    """The indexes of the sheets a process of their own writes, beside the first: those
    whose rows are a query's (`QueryRows`), when this system can fork and the database is
    one another process can open (not SQLite in memory). EXPORT_SHEET_PROCESSES = False
    writes every sheet here."""
    candidates = {
        index
        for index, sheet in enumerate(sheets, start=1)
        if index > 1 and isinstance(sheet.rows, QueryRows)
    }
    if not candidates or not hasattr(os, "fork"):
        return set()
    url = db.engine.url
    in_memory = url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")
    if in_memory or not current_app.config.get("EXPORT_SHEET_PROCESSES", True):
        return set()
    return candidates


class _SheetProcess:
    """A sheet written by a forked process into a zip of its own (an unnamed temporary
    file) while this process writes the sheets before it; its member is then copied into
    the workbook as it is. Two sheets of 1,000,000 rows each took ~12 s one after the
    other; side by side, on two cores, they take as long as the longer one.

    The process reads on a connection of its own (the inherited ones are left untouched, as
    SQLAlchemy asks after a fork), so it reads the database as of its start: the same
    moment as the sheets here, within milliseconds. It ends with os._exit: nothing
    inherited (the request, its connection, the server's sockets) is closed or flushed."""

    def __init__(self, sheet: Sheet, index: int) -> None:
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self.rows = 0
        self.pid: int | None = os.fork()
        if self.pid == 0:
            code = 1
            try:
                self._write(sheet, index)
                code = 0
            except BaseException:  # noqa: BLE001 - reported, and the parent refuses the file
                traceback.print_exc()
            finally:
                os._exit(code)

    def _write(self, sheet: Sheet, index: int) -> None:
        rows = sheet.rows
        assert isinstance(rows, QueryRows)
        db.engine.dispose(close=False)  # new connections here; the inherited stay the parent's
        written: list[int] = []
        with db.engine.connect() as connection, _new_archive(self.file) as archive:
            mine = replace(sheet, rows=stream_rows(rows.query, rows.batch, connection))
            with archive.open(_member(index), "w", force_zip64=True) as part:
                for xml in _sheet_xml(mine, _letters(sheet), written):
                    part.write(xml)
            archive.comment = str(written[0]).encode()
        self.file.flush()

    def copy_into(self, archive: zipfile.ZipFile, sink: _Sink) -> Iterator[bytes]:
        """Wait for the process, then copy its member into `archive` (whose file is `sink`),
        yielding the bytes as they are copied; then `rows` is the sheet's number of rows."""
        assert self.pid is not None
        try:
            _pid, status = os.waitpid(self.pid, 0)
        except ChildProcessError:  # reaped already (SIGCHLD ignored): the file tells
            status = 0
        self.pid = None
        self.file.seek(0)
        try:
            if status != 0:
                raise zipfile.BadZipFile(f"exit status {status}")
            with zipfile.ZipFile(self.file) as written:
                info, end = written.infolist()[0], written.start_dir
                self.rows = int(written.comment)
        except (zipfile.BadZipFile, ValueError, IndexError) as error:
            raise RuntimeError("A sheet's process failed; its error is in the log.") from error
        self.file.seek(0)
        info.header_offset = archive.fp.tell()  # type: ignore[union-attr]
        while end > 0:
            chunk = self.file.read(min(end, 1 << 20))
            end -= len(chunk)
            archive.fp.write(chunk)  # type: ignore[union-attr]
            if data := sink.take():
                yield data
        # The member is the archive's now: its central directory entry is written at close.
        archive.filelist.append(info)
        archive.NameToInfo[info.filename] = info
        archive.start_dir = archive.fp.tell()  # type: ignore[union-attr]
        archive._didModify = True  # noqa: SLF001

    def close(self) -> None:
        """Stop the process if it still runs (a download abandoned), and drop its file."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.pid = None
        self.file.close()


def stream_sheets(sheets: Sequence[Sheet], written: list[int] | None = None) -> Iterator[bytes]:
    """Sheets (each with a frozen, filterable header) as the bytes of an .xlsx, yielded as
    rows are written: one sheet after the other, each from its own row iterator (a later
    sheet of a query's rows may be written meanwhile by a process of its own). If `written`
    is given, each sheet's number of rows is appended to it at the end."""
    sink = _Sink()
    # The sink cannot seek, so zipfile writes sizes in data descriptors after each member.
    archive = _new_archive(sink)
    archive.writestr("[Content_Types].xml", _content_types(len(sheets)))
    archive.writestr("_rels/.rels", _ROOT_RELS)
    archive.writestr("xl/_rels/workbook.xml.rels", _workbook_rels(len(sheets)))
    archive.writestr("xl/styles.xml", _STYLES)
    processes: dict[int, _SheetProcess] = {}
    try:
        for index in _in_processes(sheets):
            processes[index] = _SheetProcess(sheets[index - 1], index)
        last_refs, counts = [], []
        for index, sheet in enumerate(sheets, start=1):
            letters = _letters(sheet)
            if index in processes:
                yield from processes[index].copy_into(archive, sink)
                counts.append(processes[index].rows)
            else:
                with archive.open(_member(index), "w", force_zip64=True) as part:
                    for xml in _sheet_xml(sheet, letters, counts):
                        part.write(xml)
                        if data := sink.take():
                            yield data
            last_refs.append(f"$A$1:${letters[-1]}${counts[-1] + 1}")
    finally:
        for process in processes.values():
            process.close()
    archive.writestr(
        "xl/workbook.xml", _workbook_xml([_sheet_name(s.title) for s in sheets], last_refs)
    )
    archive.close()
    if written is not None:
        written.extend(counts)
    yield sink.take()


def stream_workbook(
    title: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    widths: Sequence[int] | None = None,
    written: list[int] | None = None,
    kinds: str | None = None,
) -> Iterator[bytes]:
    """One sheet (frozen, filterable header) as the bytes of an .xlsx, yielded as rows are
    written. If `written` is given, the number of rows is appended to it at the end."""
    return stream_sheets([Sheet(title, headers, rows, widths, kinds)], written)


def write_workbook(
    target: str | IO[bytes],
    title: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    widths: Sequence[int] | None = None,
) -> int:
    """Write one sheet to `target` (a path or binary file); returns the number of rows."""
    return write_sheets(target, [Sheet(title, headers, rows, widths)])[0]


def write_sheets(target: str | IO[bytes], sheets: Sequence[Sheet]) -> list[int]:
    """Write the sheets to `target` (a path or binary file); returns each one's rows."""
    if isinstance(target, str):
        with open(target, "wb") as handle:
            return write_sheets(handle, sheets)
    written: list[int] = []
    for chunk in stream_sheets(sheets, written):
        target.write(chunk)
    return written


def download(filename: str, chunks: Iterator[bytes]) -> Response:
    """A streamed .xlsx attachment: the generator runs inside the request's context (the
    database session stays open) and its bytes are sent as they come."""
    response = Response(stream_with_context(chunks), mimetype=MIMETYPE)
    plain = re.sub(r'[^\x20-\x7e]|["\\]', "", filename) or "export.xlsx"
    disposition = f'attachment; filename="{plain}"'
    if plain != filename:
        disposition += f"; filename*=UTF-8''{quote(filename, safe='')}"
    response.headers["Content-Disposition"] = disposition
    return response
