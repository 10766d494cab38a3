"""Checking an uploaded .xlsx against fixed bounds before anything is materialised.

A 0.2 MB workbook holding one 200 MB shared string, or 15 million tiny ones, took 1.1–1.3 GB
and 16–20 s through calamine; one with cells A1 and XFD1048576 made calamine allocate the
dense range between them and abort the worker. So before calamine sees an .xlsx, its shared
strings and first sheet are inflated in chunks and scanned by regular expressions (in C:
a fraction of a second for 100,000 rows, where a Python callback per cell cost seconds):
the number of shared strings, the XML size of each string and cell, and the used range
from every cell reference and the declared dimension. Calamine then reads a range bounded
by IMPORT_MAX_ROWS × IMPORT_MAX_COLUMNS whose texts are bounded; read_table checks the
exact cell lengths afterwards.

A sheet whose cells or rows do not all name their position (allowed, rarely written) is
read here instead, by expat in small chunks: every text is measured as it arrives and only
cells holding a value are kept.

An .ods is checked the same way before calamine sees it: its content.xml is read by expat
in chunks (rows and cells only; its repeat counts, table:number-rows-repeated and
table:number-columns-repeated, are multiplied out as numbers, never as cells), so a row of
one cell repeated a million times is refused by its reach, not built. Trailing empty rows
repeated to the sheet's end, as LibreOffice writes them, reach nothing.

An .xls (BIFF8 in an OLE2 container, uncompressed: its size is the upload's) is scanned
record by record before calamine: the cells' reach, the declared dimensions, the number of
shared texts and the length of inline texts.
"""

from __future__ import annotations

import posixpath
import re
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import IO
from xml.parsers import expat

# Defaults of the IMPORT_* settings (lmsweb/config.py, README's configuration table).
MAX_COLUMNS = 50
MAX_CELL_CHARS = 1000
MAX_SHARED_STRINGS = 1_000_000
MAX_UNCOMPRESSED_MB = 100
CHUNK = 64 * 1024
# workbook.xml and its relationships are small; anything bigger is not a real workbook.
MAX_INDEX_BYTES = 4 * 1024 * 1024


class SheetError(Exception):
    """The workbook cannot be read within the limits; the message says which and why."""


@dataclass(frozen=True)
class Limits:
    rows: int = 100_000  # data rows, after the header
    columns: int = MAX_COLUMNS
    cell_chars: int = MAX_CELL_CHARS
    shared_strings: int = MAX_SHARED_STRINGS
    uncompressed_bytes: int = MAX_UNCOMPRESSED_MB * 1024 * 1024

    @classmethod
    def from_config(cls, config, rows: int) -> Limits:
        return cls(
            rows=rows,
            columns=config.get("IMPORT_MAX_COLUMNS", MAX_COLUMNS),
            cell_chars=config.get("IMPORT_MAX_CELL_CHARS", MAX_CELL_CHARS),
            shared_strings=config.get("IMPORT_MAX_SHARED_STRINGS", MAX_SHARED_STRINGS),
            uncompressed_bytes=config.get("IMPORT_MAX_UNCOMPRESSED_MB", MAX_UNCOMPRESSED_MB)
            * 1024
            * 1024,
        )

    def too_long(self, where: str) -> SheetError:
        return SheetError(
            f"{where} is too long: cells are limited to {self.cell_chars:,} characters."
        )


def column_letters(index: int) -> str:
    letters = ""
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


_REF = re.compile(r"([A-Za-z]{1,3})([0-9]{1,7})$")


def _column_index(letters: str) -> int:
    index = 0
    for ch in letters.upper():
        index = index * 26 + ord(ch) - 64
    return index


def check_cells(rows: list[tuple[int, list[str]]], limits: Limits) -> None:
    """The cell and column bounds of every row read (calamine's and CSV's). One pass in C
    over every cell's length first; the cell that breaks a bound is looked for only then."""
    widths = map(len, chain.from_iterable(cells for _, cells in rows))
    if max(widths, default=0) <= limits.cell_chars and all(
        len(cells) <= limits.columns for _, cells in rows
    ):
        return
    for line, cells in rows:
        for index, text in enumerate(cells, start=1):
            if len(text) > limits.cell_chars:
                raise limits.too_long(f"Cell {column_letters(index)}{line}")
            if index > limits.columns and text:
                raise _outside(limits, index, line)


def _outside(limits: Limits, column: int, row: int) -> SheetError:
    return SheetError(
        f"The sheet reaches column {column_letters(column)} / row {row:,}: only the first "
        f"{limits.columns} columns (A to {column_letters(limits.columns)}) and "
        f"{limits.rows:,} rows (IMPORT_MAX_ROWS) are read. Delete the cells beyond them "
        "and upload again."
    )


def _parser(
    start: Callable[[str, dict], None],
    end: Callable[[str], None],
    text: Callable[[str], None],
    namespaces: bool = False,
):
    parser = expat.ParserCreate(namespace_separator=" ") if namespaces else expat.ParserCreate()
    # Text arrives in pieces of at most this many characters, so it is measured as it comes.
    parser.buffer_text = True
    parser.buffer_size = CHUNK

    def refuse(*_args):
        raise SheetError("The workbook contains a document type declaration; it is refused.")

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    return parser


def _feed(archive: zipfile.ZipFile, name: str, parser, limit: int) -> None:
    total = 0
    try:
        with archive.open(name) as stream:
            while chunk := stream.read(CHUNK):
                total += len(chunk)
                if total > limit:
                    raise SheetError(
                        f"The workbook expands to more than {limit // (1024 * 1024)} MB; "
                        "it is refused as unsafe."
                    )
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except expat.ExpatError as exc:
        raise SheetError(f"The workbook could not be read: damaged XML in {name}.") from exc
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise SheetError("The file is not a valid spreadsheet (a damaged zip).") from exc


def _local(name: str) -> str:
    return name.rpartition(":")[2]


def _small_xml(archive: zipfile.ZipFile, name: str) -> list[tuple[str, dict]]:
    """The elements (local name, attributes) of a small part such as workbook.xml."""
    elements: list[tuple[str, dict]] = []
    parser = _parser(
        lambda tag, attrs: elements.append((_local(tag), attrs)), lambda _t: None, lambda _t: None
    )
    _feed(archive, name, parser, MAX_INDEX_BYTES)
    return elements


def _parts(archive: zipfile.ZipFile) -> tuple[str, str | None]:
    """The first sheet's part and the shared strings' part, from the workbook's relations."""
    names = set(archive.namelist())
    if "xl/workbook.xml" not in names or "xl/_rels/workbook.xml.rels" not in names:
        raise SheetError("The file is not a valid .xlsx workbook (its workbook part is missing).")
    first = next(
        (
            value
            for tag, attrs in _small_xml(archive, "xl/workbook.xml")
            if tag == "sheet"
            for key, value in attrs.items()
            if _local(key) == "id"
        ),
        None,
    )
    sheet = shared = None
    for tag, attrs in _small_xml(archive, "xl/_rels/workbook.xml.rels"):
        if tag != "Relationship":
            continue
        target = attrs.get("Target", "")
        path = target.lstrip("/") if target.startswith("/") else posixpath.join("xl", target)
        path = posixpath.normpath(path)
        if attrs.get("Id") == first:
            sheet = path
        elif attrs.get("Type", "").endswith("/sharedStrings"):
            shared = path
    if sheet is None or sheet not in names:
        raise SheetError("The workbook has no worksheet to read.")
    return sheet, shared if shared in names else None


def _shared_strings(archive: zipfile.ZipFile, name: str, limits: Limits) -> list[str]:
    strings: list[str] = []
    parts: list[str] = []
    length = 0
    # Phonetic runs (<rPh>) are readings shown above East Asian text, not the text itself.
    state = {"in_text": False, "phonetic": 0}

    def start(tag, _attrs):
        nonlocal length
        tag = _local(tag)
        if tag == "t":
            state["in_text"] = not state["phonetic"]
        elif tag == "si":
            parts.clear()
            length = 0
            if len(strings) >= limits.shared_strings:
                raise SheetError(
                    f"The workbook has more than {limits.shared_strings:,} different texts "
                    "(shared strings); it is refused."
                )
        elif tag == "rPh":
            state["phonetic"] += 1

    def end(tag):
        tag = _local(tag)
        if tag == "t":
            state["in_text"] = False
        elif tag == "si":
            strings.append("".join(parts))
        elif tag == "rPh":
            state["phonetic"] -= 1

    def text(data):
        nonlocal length
        if state["in_text"]:
            length += len(data)
            if length > limits.cell_chars:
                raise limits.too_long(f"Shared text number {len(strings) + 1:,}")
            parts.append(data)

    _feed(archive, name, _parser(start, end, text), limits.uncompressed_bytes)
    return strings


def _number(text: str) -> str:
    """A numeric cell as text: integral values without `.0` (user IDs, codes)."""
    try:
        value = float(text)
    except ValueError:
        return text
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


# Tag starts, cell references and long texts, found by the regex engine over the raw XML
# (in C, no Python code per cell): the pre-check of a 100,000-row sheet takes about what
# calamine takes to read it (0.44 and 0.42 s).
_SI = (b"si", re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?si[\s>/]"))
_CELL = (b"c", re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?c[\s>/]"))
_ROW = (b"row", re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?row[\s>/]"))
# The writers we know put `r` first; a reference written otherwise is not counted, so the
# sheet counts as one with unplaced cells and is read by the streaming reader.
_CELL_COLUMN = re.compile(rb'<c r="([A-Z]{1,3})[0-9]')
_CELL_ROW = re.compile(rb'<c r="[A-Z]{1,3}([0-9]{1,7})"')
_ROW_REF = re.compile(rb'<row r="[0-9]{1,7}"')
_DIMENSION = re.compile(rb'<(?:[A-Za-z_][\w.-]*:)?dimension\s[^>]*?\bref="([^"]*)"')


def _starts(block: bytes, tag: tuple[bytes, re.Pattern], placed: int | None = None) -> int:
    """How many `tag` elements start in `block`. A prefixed name takes the pattern. When
    every `<tag` in the block is one of the `placed` elements that name their position (a
    sheet's cells and rows as the writers we know write them), that is the count: two passes
    over the block. Otherwise the usual spellings are counted by bytes.count (5× faster than
    the pattern), and other whitespace after the name takes the pattern."""
    name, pattern = tag
    if b":" + name in block:
        return len(pattern.findall(block))
    if placed is not None and block.count(b"<" + name) == placed:
        return placed
    odd = (b"<" + name + b"\t", b"<" + name + b"\n", b"<" + name + b"\r")
    if any(spelling in block for spelling in odd):
        return len(pattern.findall(block))
    return sum(block.count(b"<" + name + end) for end in (b" ", b">", b"/>"))


@dataclass
class _Scan:
    """What a pass over one part found."""

    starts: int = 0  # elements (shared strings, or cells)
    long_text: bool = False
    refs: int = 0  # cells naming their position
    rows: int = 0
    row_refs: int = 0
    max_column: int = 0
    max_row: int = 0
    dimension: bytes = b""


def _scan(
    archive: zipfile.ZipFile, name: str, tag: tuple[bytes, re.Pattern], limits: Limits, sheet: bool
) -> _Scan:
    found = _Scan()
    # A text longer than this many bytes holds more characters than a cell may (escapes and
    # UTF-8 take at most 8 bytes a character).
    long_text = re.compile(rb">[^<]{%d}" % (limits.cell_chars * 8 + 1))
    pending = b""
    total = 0
    try:
        with archive.open(name) as stream:
            while True:
                chunk = stream.read(CHUNK * 16)
                total += len(chunk)
                if total > limits.uncompressed_bytes:
                    raise SheetError(
                        "The workbook expands to more than "
                        f"{limits.uncompressed_bytes // (1024 * 1024)} MB; it is refused as unsafe."
                    )
                data = pending + chunk
                # Scan up to the last tag start; the rest waits for the next chunk.
                cut = data.rfind(b"<") if chunk else len(data)
                if cut <= 0 and chunk:
                    if len(data) > limits.cell_chars * 8:
                        found.long_text = True
                        return found
                    pending = data
                    continue
                block, pending = data[:cut], data[cut:]
                if long_text.search(block):
                    found.long_text = True
                    return found
                found.starts += _starts(block, tag, _scan_sheet(block, found) if sheet else None)
                if not chunk:
                    break
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise SheetError("The file is not a valid spreadsheet (a damaged zip).") from exc
    return found


def _scan_sheet(block: bytes, found: _Scan) -> int:
    """Rows, references and reach of a block of the sheet; returns the cells in it that name
    their position."""
    # The pattern is only run where the name is (it tries every tag start: 136 ms a pass
    # over a 100,000-row sheet, whose writer may leave the dimension out).
    if not found.dimension and b"dimension" in block and (dimension := _DIMENSION.search(block)):
        found.dimension = dimension.group(1)
    row_refs = len(_ROW_REF.findall(block))
    found.row_refs += row_refs
    found.rows += _starts(block, _ROW, row_refs)
    columns = set(_CELL_COLUMN.findall(block))
    if columns:
        widest = max(columns, key=lambda x: (len(x), x))
        found.max_column = max(found.max_column, _column_index(widest.decode()))
    rows = _CELL_ROW.findall(block)
    found.refs += len(rows)
    if rows:
        found.max_row = max(found.max_row, max(map(int, set(rows))))
    return len(rows)


def _precheck(archive: zipfile.ZipFile, sheet: str, shared: str | None, limits: Limits) -> bool:
    """Refuse what would make calamine build too much; True when every row and cell names
    its position (then calamine's range is bounded by what was checked)."""
    if shared:
        strings = _scan(archive, shared, _SI, limits, sheet=False)
        if strings.long_text:
            raise limits.too_long("A text in the workbook")
        if strings.starts > limits.shared_strings:
            raise SheetError(
                f"The workbook has {strings.starts:,} different texts (shared strings); at "
                f"most {limits.shared_strings:,} are accepted."
            )
    cells = _scan(archive, sheet, _CELL, limits, sheet=True)
    if cells.long_text:
        raise limits.too_long("A cell of the sheet")
    if cells.max_column > limits.columns or cells.max_row > limits.rows + 1:
        raise _outside(limits, max(cells.max_column, 1), max(cells.max_row, 1))
    if cells.dimension:
        for ref in cells.dimension.decode("ascii", "replace").split(":"):
            match = _REF.match(ref.replace("$", ""))
            if match and (
                _column_index(match.group(1)) > limits.columns
                or int(match.group(2)) > limits.rows + 1
            ):
                raise _outside(limits, _column_index(match.group(1)), int(match.group(2)))
    return cells.refs == cells.starts and cells.row_refs == cells.rows


def check_xlsx(data: IO[bytes], limits: Limits) -> list[tuple[int, list[str]]] | None:
    """Check an .xlsx against `limits` without building anything (SheetError if it breaks
    one). None: calamine may read it, every cell's position was checked. Otherwise the
    sheet has cells without positions, which only a full read can place: then the first
    sheet's non-empty rows, read here as a stream, as (row number, cells as text)."""
    try:
        archive = zipfile.ZipFile(data)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SheetError("The file is not a valid spreadsheet (a damaged zip).") from exc
    with archive:
        sheet, shared_name = _parts(archive)
        if _precheck(archive, sheet, shared_name, limits):
            return None
        return _read_stream(archive, sheet, shared_name, limits)


def _read_stream(
    archive: zipfile.ZipFile, sheet: str, shared_name: str | None, limits: Limits
) -> list[tuple[int, list[str]]]:
    shared = _shared_strings(archive, shared_name, limits) if shared_name else []
    rows: list[tuple[int, list[str]]] = []
    row_no = 0
    cells: list[str] = []
    column = 0
    kind = ""
    ref = ""
    parts: list[str] = []
    length = 0
    capture = False
    phonetic = 0

    def start(tag, attrs):
        nonlocal row_no, cells, column, kind, ref, length, capture, phonetic
        tag = _local(tag)
        if tag == "c":
            ref = attrs.get("r", "")
            match = _REF.match(ref)
            column = _column_index(match.group(1)) if match else column + 1
            kind = attrs.get("t", "n")
            parts.clear()
            length = 0
        elif tag == "v" or (tag == "t" and not phonetic):
            capture = True
        elif tag == "row":
            r = attrs.get("r", "")
            row_no = int(r) if r.isascii() and r.isdigit() else row_no + 1
            cells = []
            column = 0
        elif tag == "rPh":
            phonetic += 1

    def end(tag):
        nonlocal capture, phonetic
        tag = _local(tag)
        if tag == "v" or tag == "t":
            capture = False
        elif tag == "c":
            value = _cell_value(kind, "".join(parts))
            if not value:
                return
            if column > limits.columns or row_no > limits.rows + 1:
                raise _outside(limits, column, row_no)
            if len(value) > limits.cell_chars:
                raise limits.too_long(f"Cell {ref or column_letters(column)}")
            if len(cells) < column:
                cells.extend([""] * (column - len(cells)))
            cells[column - 1] = value
        elif tag == "row" and cells:
            # Only rows holding a value are kept: however far the sheet reaches, memory
            # grows with the rows read (the header, then IMPORT_MAX_ROWS), no further.
            if len(rows) > limits.rows:
                raise SheetError(
                    f"The file has more than {limits.rows:,} rows; "
                    f"at most {limits.rows:,} are accepted."
                )
            rows.append((row_no, cells))
        elif tag == "rPh":
            phonetic -= 1

    def text(data):
        nonlocal length
        if capture:
            length += len(data)
            if length > limits.cell_chars:
                raise limits.too_long(f"Cell {ref or column_letters(column)}")
            parts.append(data)

    def _cell_value(kind: str, raw: str) -> str:
        if kind == "s":
            raw = raw.strip()
            index = int(raw) if raw.isascii() and raw.isdigit() else -1
            if not 0 <= index < len(shared):
                raise SheetError(f"Cell {ref} refers to a shared text that does not exist.")
            return shared[index].strip()
        if kind in ("inlineStr", "str", "e"):
            return raw.strip()
        if kind == "b":
            return "TRUE" if raw.strip() == "1" else "FALSE"
        return _number(raw.strip()) if raw.strip() else ""

    _feed(archive, sheet, _parser(start, end, text), limits.uncompressed_bytes)
    return rows


# --- OpenDocument spreadsheets (.ods) -----------------------------------------------------

_ODS_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_ODS_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_ODS_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"


class _Done(Exception):
    """The first table has been read: the rest of the document is not needed."""


def _repeat(attrs: dict, name: str) -> int:
    raw = attrs.get(f"{_ODS_TABLE} {name}", "1").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) > 0 else 1


def check_ods(data: IO[bytes], limits: Limits) -> None:
    """Check an .ods's first sheet against `limits` without building it (SheetError if it
    breaks one): the reach of its non-empty cells, repeat counts included, and the length
    of every text."""
    try:
        archive = zipfile.ZipFile(data)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SheetError("The file is not a valid spreadsheet (a damaged zip).") from exc
    with archive:
        if "content.xml" not in archive.namelist():
            raise SheetError("The workbook could not be read: its content.xml is missing.")
        state = {"tables": 0, "row": 0, "column": 0, "row_repeat": 1, "row_reach": 0}
        cell = {"repeat": 1, "valued": False, "length": 0, "open": False}

        def start(tag: str, attrs: dict) -> None:
            if tag == f"{_ODS_TABLE} table":
                state["tables"] += 1
                if state["tables"] > 1:
                    raise _Done
            elif tag == f"{_ODS_TABLE} table-row":
                state["row_repeat"] = _repeat(attrs, "number-rows-repeated")
                state["column"] = 0
                state["row_reach"] = 0
            elif tag in (f"{_ODS_TABLE} table-cell", f"{_ODS_TABLE} covered-table-cell"):
                cell["repeat"] = _repeat(attrs, "number-columns-repeated")
                cell["valued"] = f"{_ODS_OFFICE} value-type" in attrs
                cell["length"] = 0
                cell["open"] = True

        def end(tag: str) -> None:
            if tag in (f"{_ODS_TABLE} table-cell", f"{_ODS_TABLE} covered-table-cell"):
                cell["open"] = False
                if cell["valued"] or cell["length"]:
                    state["row_reach"] = state["column"] + cell["repeat"]
                state["column"] += cell["repeat"]
            elif tag == f"{_ODS_TABLE} table-row":
                state["row"] += state["row_repeat"]
                reach = state["row_reach"]
                if reach and (reach > limits.columns or state["row"] > limits.rows + 1):
                    raise _outside(limits, reach, state["row"])
            elif tag == f"{_ODS_TABLE} table":
                raise _Done

        def text(data: str) -> None:
            if cell["open"]:
                cell["length"] += len(data)
                if cell["length"] > limits.cell_chars:
                    where = f"{column_letters(state['column'] + 1)}{state['row'] + 1}"
                    raise limits.too_long(f"Cell {where}")

        # Namespaces resolved by expat: a document that binds the table namespace to
        # another prefix is read the same.
        parser = _parser(start, end, text, namespaces=True)
        try:
            _feed(archive, "content.xml", parser, limits.uncompressed_bytes)
        except _Done:
            return


# --- Excel 97-2003 (.xls): BIFF8 records in an OLE2 compound file --------------------------

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_END_OF_CHAIN = 0xFFFFFFFE


def _ole_stream(data: bytes, names: tuple[str, ...] = ("Workbook", "Book")) -> bytes:
    """The workbook stream of an OLE2 compound file (sectors followed through the FAT, or
    the mini FAT for a small stream); SheetError if the container is damaged."""
    damaged = SheetError("The file is not a valid .xls workbook (a damaged container).")
    if len(data) < 512 or not data.startswith(_OLE_MAGIC):
        raise damaged
    sector_shift, mini_shift = struct.unpack_from("<HH", data, 30)
    if sector_shift not in (9, 12) or mini_shift != 6:
        raise damaged
    size = 1 << sector_shift
    (fat_sectors, first_dir, _tx, cutoff, first_mini, mini_sectors, first_difat, difat_sectors) = (
        struct.unpack_from("<IIIIIIII", data, 44)
    )
    sectors = (len(data) - size) // size + 1
    if fat_sectors > sectors or mini_sectors > sectors or difat_sectors > sectors:
        raise damaged

    def sector(index: int) -> bytes:
        if index >= sectors:
            raise damaged
        return data[(index + 1) * size : (index + 2) * size]

    difat = list(struct.unpack_from("<109I", data, 76))
    following = first_difat
    for _ in range(difat_sectors):
        block = struct.unpack(f"<{size // 4}I", sector(following))
        difat.extend(block[:-1])
        following = block[-1]
    fat: list[int] = []
    for index in difat[:fat_sectors]:
        fat.extend(struct.unpack(f"<{size // 4}I", sector(index)))

    def chain(first: int, table: list[int]) -> list[int]:
        found = []
        while first != _END_OF_CHAIN:
            if first >= len(table) or len(found) > len(table):
                raise damaged  # outside the table, or a loop
            found.append(first)
            first = table[first]
        return found

    directory = b"".join(sector(i) for i in chain(first_dir, fat))
    entries = []
    for offset in range(0, len(directory) - 127, 128):
        length, kind = struct.unpack_from("<HB", directory, offset + 64)
        name = directory[offset : offset + max(min(length, 64) - 2, 0)].decode(
            "utf-16-le", "replace"
        )
        start, stream_size = struct.unpack_from("<II", directory, offset + 116)
        entries.append((name, kind, start, stream_size))
    if not entries:
        raise damaged
    found = next((e for e in entries if e[1] == 2 and e[0] in names), None)
    if found is None:
        raise SheetError("The .xls file has no workbook stream.")
    _name, _kind, start, stream_size = found
    if stream_size >= cutoff:
        stream = b"".join(sector(i) for i in chain(start, fat))
    else:
        root = entries[0]
        mini_stream = b"".join(sector(i) for i in chain(root[2], fat))
        mini_fat: list[int] = []
        for index in chain(first_mini, fat):
            mini_fat.extend(struct.unpack(f"<{size // 4}I", sector(index)))
        stream = b"".join(mini_stream[i * 64 : (i + 1) * 64] for i in chain(start, mini_fat))
    if len(stream) < stream_size:
        raise damaged
    return stream[:stream_size]


# Records of cells holding a value (row and column first); MULRK ends with its last column.
_XLS_CELLS = {0x0203, 0x027E, 0x00FD, 0x0204, 0x0205, 0x0006, 0x00D6}
_XLS_MULRK = 0x00BD
_XLS_BOF, _XLS_EOF, _XLS_SST, _XLS_LABEL, _XLS_DIMENSIONS = 0x0809, 0x000A, 0x00FC, 0x0204, 0x0200


def check_xls(data: bytes, limits: Limits) -> None:
    """Check an .xls's first sheet against `limits` before calamine builds anything: every
    cell record's position, the declared dimensions, the number of shared texts and the
    length of inline texts (BIFF8)."""
    stream = _ole_stream(data)
    position = 0
    sheets = 0
    in_first = False
    while position + 4 <= len(stream):
        kind, length = struct.unpack_from("<HH", stream, position)
        body = stream[position + 4 : position + 4 + length]
        position += 4 + length
        if kind == _XLS_BOF and len(body) >= 4:
            in_first = struct.unpack_from("<H", body, 2)[0] == 0x0010 and sheets == 0
            sheets += in_first
        elif kind == _XLS_EOF:
            in_first = False
        elif kind == _XLS_SST and len(body) >= 8:
            unique = struct.unpack_from("<I", body, 4)[0]
            if unique > limits.shared_strings:
                raise SheetError(
                    f"The workbook has {unique:,} different texts (shared strings); at most "
                    f"{limits.shared_strings:,} are accepted."
                )
        elif not in_first:
            continue
        elif kind in _XLS_CELLS or kind == _XLS_MULRK:
            if len(body) < 4:
                continue
            row, column = struct.unpack_from("<HH", body, 0)
            if kind == _XLS_MULRK and len(body) >= 6:
                column = struct.unpack_from("<H", body, len(body) - 2)[0]
            if column + 1 > limits.columns or row + 1 > limits.rows + 1:
                raise _outside(limits, column + 1, row + 1)
            long = kind == _XLS_LABEL and len(body) >= 8 and body[6] + 256 * body[7]
            if long and long > limits.cell_chars:
                raise limits.too_long(f"Cell {column_letters(column + 1)}{row + 1}")
        elif kind == _XLS_DIMENSIONS and len(body) >= 12:
            _first_row, last_row, _first_col, last_col = struct.unpack_from("<IIHH", body, 0)
            # Both are one past the last used row and column.
            if last_col > limits.columns or last_row > limits.rows + 1:
                raise _outside(limits, max(last_col, 1), max(last_row, 1))
